"""`rfau audit` end to end: real digits models, real `rfau unlearn` outputs, the CLI and the engine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke

from rfau_cli.gates import flatten

AUC_MARGIN = 0.1  # measured gaps 0.15-0.36 over four seeds: see the fixture's docstring


def audit_json(cli, *args: object) -> dict:
    result = invoke(cli, "audit", *args, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def base_args(ckpt: Path, digits: tuple[Path, Path], forget: Path, *extra: object) -> list[object]:
    return ["--model", ckpt, "--data", digits[0], "--forget", forget, "--test-data", digits[1], *extra]


@pytest.fixture(scope="module")
def unlearned(
    resnet_ckpt: Path, digits: tuple[Path, Path], class_forget_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """`rfau unlearn --by class` saved as adapter only and as merged weights (same seed)."""
    from typer.testing import CliRunner

    root, out = tmp_path_factory.mktemp("unlearned"), {}
    for save in ("adapter", "merged"):
        out[save] = root / save
        result = invoke(
            CliRunner(),
            "unlearn",
            "--model",
            resnet_ckpt,
            "--data",
            digits[0],
            "--forget",
            class_forget_file,
            "--by",
            "class",
            "--save",
            save,
            "--out",
            out[save],
            "--quiet",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
    return out


def test_loss_attack_auc_separates_original_from_retrained(cli, overfit):
    """The original model remembers D_f; the retrained one does not. --reference adds the gap."""
    result = audit_json(
        cli,
        "--model",
        overfit.original,
        "--data",
        overfit.data[0],
        "--forget",
        overfit.forget,
        "--test-data",
        overfit.data[1],
        "--reference",
        overfit.retrained,
        "--original",
        overfit.original,
    )
    mine, theirs = result["metrics"], result["reference"]["metrics"]
    assert mine["mia"]["loss_auc"] > 0.6
    assert mine["mia"]["loss_auc"] > theirs["mia"]["loss_auc"] + AUC_MARGIN
    assert mine["forget"]["acc"] == 1.0
    gap = result["reference"]["gap"]
    assert gap["avg_gap_keys"] == ["forget.ua", "retain.acc", "test.acc", "mia.efficacy"]
    pp = [100 * abs(flatten(mine)[k] - flatten(theirs)[k]) for k in gap["avg_gap_keys"]]
    assert gap["avg_gap_pp"] == pytest.approx(np.mean(pp))
    # fractions in percentage points, losses in nats
    assert gap["forget"]["acc"] == pytest.approx(100 * abs(mine["forget"]["acc"] - theirs["forget"]["acc"]))
    assert gap["forget"]["loss"] == pytest.approx(abs(mine["forget"]["loss"] - theirs["forget"]["loss"]))
    assert gap["mia"]["loss_auc"] == pytest.approx(100 * abs(mine["mia"]["loss_auc"] - theirs["mia"]["loss_auc"]))
    # the original against itself, the reference against the original
    assert result["original"]["forget_agreement"] == 1.0
    assert result["original"]["retain_feature_distance"] == pytest.approx(0.0, abs=1e-9)
    assert result["reference"]["original"]["retain_feature_distance"] > 0


def test_class_unlearn_output_is_audited_as_forgotten(cli, unlearned, resnet_ckpt, digits, class_forget_file):
    result = audit_json(
        cli, *base_args(unlearned["adapter"], digits, class_forget_file, "--by", "class", "--original", resnet_ckpt)
    )
    metrics = result["metrics"]
    assert metrics["forget"]["acc"] <= 0.05
    assert metrics["mia"]["efficacy"] >= 0.9
    assert metrics["test_retain"]["acc"] >= 0.9
    assert result["original"]["retain_agreement"] >= 0.95
    assert result["inputs"]["adapter"] == str(unlearned["adapter"].resolve())
    assert result["sizes"]["test_forget"] + result["sizes"]["test_retain"] == result["sizes"]["test"]


def test_adapter_merged_and_base_plus_adapter_give_the_same_numbers(
    cli, unlearned, resnet_ckpt, digits, class_forget_file
):
    forms = {
        "adapter_dir": base_args(unlearned["adapter"], digits, class_forget_file),
        "merged_dir": base_args(unlearned["merged"], digits, class_forget_file),
        "base_plus_adapter": base_args(resnet_ckpt, digits, class_forget_file, "--adapter", unlearned["adapter"]),
    }
    results = {name: audit_json(cli, *args, "--by", "class") for name, args in forms.items()}
    numbers = {name: flatten(r["metrics"]) for name, r in results.items()}
    reference = numbers["adapter_dir"]
    # Merged float32 weights differ from base + adapter by ~1e-7, so continuous numbers agree to
    # 1e-4. The attacks' numbers are fractions of rows on which a fitted classifier or threshold
    # decides: a row that sits on the decision boundary may flip, so they agree to one row.
    one_row = 1.0 / results["adapter_dir"]["sizes"]["forget"]
    for name, values in numbers.items():
        assert values.keys() == reference.keys(), name
        for key, value in values.items():
            tolerance = one_row + 1e-9 if key.startswith("mia.") else 1e-4
            assert value == pytest.approx(reference[key], abs=tolerance), (name, key)


def test_passing_gate_exits_0(cli, resnet_ckpt, digits, sample_forget_file):
    result = invoke(
        cli,
        "audit",
        *base_args(resnet_ckpt, digits, sample_forget_file),
        "--attacks",
        "loss",
        "--require",
        "test.acc>=0.5",
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    assert "PASS test.acc>=0.5" in result.stdout


def test_failing_gate_exits_1_and_names_it(cli, resnet_ckpt, digits, sample_forget_file, tmp_path):
    out = tmp_path / "audit.json"
    result = invoke(
        cli,
        "audit",
        *base_args(resnet_ckpt, digits, sample_forget_file),
        "--attacks",
        "loss",
        "--require",
        "forget.acc<=0.02",
        "--require",
        "test.acc>=0.5",
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 1
    assert "FAIL forget.acc<=0.02" in result.stdout and "PASS test.acc>=0.5" in result.stdout
    assert "1 of 2 gate(s) failed: forget.acc<=0.02" in result.stderr
    written = json.loads(out.read_text())
    assert written["passed"] is False
    assert [g["passed"] for g in written["gates"]] == [False, True]


def test_malformed_gate_exits_2_before_any_work(cli, tmp_path):
    out = tmp_path / "audit.json"
    # The paths do not exist: a gate typo is reported before they are even looked at.
    result = invoke(
        cli,
        "audit",
        "--model",
        tmp_path / "none",
        "--data",
        tmp_path / "none",
        "--forget",
        tmp_path / "none",
        "--test-data",
        tmp_path / "none",
        "--require",
        "forget.acc=<0.02",
        "--out",
        out,
    )
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "invalid gate expression 'forget.acc=<0.02'" in result.stderr
    assert not out.exists()


def test_unknown_gate_key_exits_2_listing_valid_keys(cli, resnet_ckpt, digits, sample_forget_file, tmp_path):
    out = tmp_path / "audit.json"
    result = invoke(
        cli,
        "audit",
        *base_args(resnet_ckpt, digits, sample_forget_file),
        "--attacks",
        "loss",
        "--require",
        "forget.accuracy<=0.1",
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 2
    assert "unknown gate key 'forget.accuracy'" in result.stderr
    assert "valid keys:" in result.stderr and "forget.acc," in result.stderr and "mia.loss_auc" in result.stderr
    assert not out.exists()


def test_json_output_file_and_same_seed_same_numbers(cli, resnet_ckpt, digits, sample_forget_file, tmp_path):
    args = base_args(resnet_ckpt, digits, sample_forget_file, "--seed", 3)
    first = invoke(cli, "audit", *args, "--json", "--out", tmp_path / "a.json")
    assert first.exit_code == 0, first.stderr
    result = json.loads(first.stdout)
    assert json.loads((tmp_path / "a.json").read_text()) == result
    assert "D_f" in first.stderr  # the table goes to stderr with --json
    assert (result["schema_version"], result["tool"], result["command"]) == (1, "rfau", "audit")
    assert result["settings"]["seed"] == 3 and result["settings"]["attacks"] == ["svc", "loss", "logreg"]
    sizes = result["sizes"]
    assert sizes["forget"] == 134 and sizes["test"] == 449
    assert sizes["retain"] == min(sizes["retain_total"], max(sizes["test"], result["settings"]["retain_sample_max"]))
    # forget_all: no ledger, = D_f; test_others: no class the request takes 30% of, = test
    assert set(result["metrics"]) == {"forget", "forget_all", "retain", "test", "test_others", "mia"}
    assert result["metrics"]["forget_all"] == result["metrics"]["forget"]
    assert result["settings"]["concentrated_classes"] == []
    assert result["metrics"]["test_others"] == result["metrics"]["test"]
    assert set(result["metrics"]["mia"]) >= {
        "efficacy",
        "svc",
        "loss_auc",
        "loss_tpr_at_1pct_fpr",
        "loss_tpr_at_0.1pct_fpr",
        "logreg_acc",
    }
    assert all(isinstance(v, float) and math.isfinite(v) for v in flatten(result["metrics"]).values())
    again = audit_json(cli, *args)
    assert again["metrics"] == result["metrics"] and again["sizes"] == result["sizes"]


def test_existing_out_file_is_refused(cli, tmp_path):
    out = tmp_path / "audit.json"
    out.write_text("{}")
    result = invoke(
        cli,
        "audit",
        "--model",
        tmp_path,
        "--data",
        tmp_path,
        "--forget",
        tmp_path,
        "--test-data",
        tmp_path,
        "--out",
        out,
    )
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert out.read_text() == "{}"
