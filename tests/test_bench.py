"""`rfau bench` end to end on digits: files, columns, and a failing method that does not stop it."""

from __future__ import annotations

import json

import pytest
from conftest import invoke

from rfau_cli.bench import BENCH_JSON, BENCH_MD, BENCH_PNG, REFERENCE
from rfau_cli.bench_render import HEADER

METHODS = ("rfau", "finetune")


@pytest.fixture(scope="module")
def reference(digits, resnet_ckpt, class_forget_file, tmp_path_factory):
    """A (short) retrain without digit 3, the given reference of the bench."""
    from typer.testing import CliRunner

    train, test = digits
    out = tmp_path_factory.mktemp("reference") / "retrained"
    result = invoke(
        CliRunner(), "retrain", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class",
        "--test-data", test, "--epochs", 2, "-o", out, "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    return out


def test_bench_two_methods_with_reference(cli, digits, resnet_ckpt, class_forget_file, reference, tmp_path):
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class", "--test-data", test,
        "--methods", ",".join(METHODS), "--reference", reference, "--epochs", 1, "-o", out, "--json", "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == sorted([BENCH_JSON, BENCH_MD, BENCH_PNG, "runs"])
    assert json.loads((out / BENCH_JSON).read_text()) == printed
    assert (out / BENCH_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed["reference"] == {"source": "checkpoint", "path": str(reference)}
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{m}-s0" for m in METHODS)

    summary = {row["method"]: row for row in printed["summary"]}
    assert list(summary) == [REFERENCE, *METHODS]
    assert summary[REFERENCE]["avg_gap_pp"]["mean"] == 0.0
    for name in METHODS:
        row = summary[name]
        assert row["status"] == "ok" and row["seeds_ok"] == 1
        for key in ("ua", "ra", "ta", "mia_efficacy", "loss_auc", "avg_gap_pp", "time_s", "peak_memory_mib", "trainable_parameters"):
            assert row[key]["mean"] is not None, (name, key)
        assert row["avg_gap_pp"]["std"] is None  # one seed: no spread
    assert summary["rfau"]["trainable_parameters"]["mean"] < summary["finetune"]["trainable_parameters"]["mean"]
    run = next(r for r in printed["runs"] if r["method"] == "rfau")
    assert run["gap"]["avg_gap_keys"][0] == "forget.ua" and len(run["gap"]["avg_gap_keys"]) == 4

    table = (out / BENCH_MD).read_text().splitlines()
    header = next(line for line in table if line.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(HEADER)
    for title in ("UA", "RA", "TA", "MIA-efficacy", "loss-attack AUC", "avg gap to retrain", "time", "peak memory", "trainable params"):
        assert title in header
    assert sum(line.startswith(("| rfau", "| finetune", "| retrain")) for line in table) == 3


def test_bench_failing_method_is_reported_and_others_complete(cli, digits, resnet_ckpt, class_forget_file, tmp_path, monkeypatch):
    from rfau_cli import methods

    from failing_method import MESSAGE

    monkeypatch.setitem(methods.REGISTRY, "boom", ("failing_method", "fails on purpose"))
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class", "--test-data", test,
        "--methods", "boom,finetune", "--retrain-epochs", 1, "--epochs", 1, "-o", out,
    )
    assert result.exit_code == 0, result.stderr
    assert "boom" in result.stdout and "failed" in result.stdout  # the rich table
    data = json.loads((out / BENCH_JSON).read_text())
    summary = {row["method"]: row for row in data["summary"]}
    assert summary["boom"]["status"] == "failed"
    assert summary["boom"]["errors"] == [f"seed 0: RuntimeError: {MESSAGE}"]
    assert summary["finetune"]["status"] == "ok" and summary["finetune"]["avg_gap_pp"]["mean"] is not None
    assert summary[REFERENCE]["status"] == "ok" and summary[REFERENCE]["time_s"]["mean"] > 0
    assert data["reference"]["source"] == "retrain"
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["finetune-s0", "retrain-s0"]
    assert "boom seed 0: RuntimeError: " + MESSAGE in (out / BENCH_MD).read_text()


@pytest.mark.parametrize(
    "extra,message",
    [
        (("--methods", "nope"), "unknown method"),
        (("--methods", "retrain"), "is the reference"),
        (("--seeds", "0,0"), "distinct"),
        (("--seeds", "a"), "integers"),
    ],
)
def test_bench_bad_input_is_exit_2_and_writes_nothing(cli, digits, resnet_ckpt, class_forget_file, tmp_path, extra, message):
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--test-data", test, "-o", out, *extra)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_bench_needs_test_data(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", digits[0], "-f", class_forget_file, "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert "--test-data" in result.stderr
