"""One request after another: the ledger, provenance in the weights, `rfau verify`, `rfau ledger`,
the model card (issue 9, items 2-4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FORGET_CLASS, invoke
from typer.testing import CliRunner

from rfau_cli.checkpoint import ADAPTER_SUBDIR, ADAPTER_WEIGHTS_FILE, MODEL_FILE, REPORT_FILE
from rfau_cli.ledger import LEDGER_FILE
from rfau_cli.model_card import CARD_FILE
from rfau_cli.provenance import METADATA_KEYS

SECOND_CLASS = 5
MAX_FORGOTTEN_ACC = 0.01  # forgotten: <= 1% accuracy (the bar is 2%)
MAX_KEPT_DROP = 0.02  # the other classes within 2 points of the original


def _json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def two_classes(resnet_ckpt, digits, class_forget_file, tmp_path_factory) -> SimpleNamespace:
    """Class 3 forgotten from the digits ResNet, then class 5 from that output."""
    root = tmp_path_factory.mktemp("ledger")
    second = root / "class5.txt"
    second.write_text(f"{SECOND_CLASS}\n")
    cli = CliRunner()
    common = ("--data", digits[0], "--test-data", digits[1], "--by", "class", "--quiet", "--json")
    first = _json(
        invoke(cli, "unlearn", "--model", resnet_ckpt, "--forget", class_forget_file, "--out", root / "o1", *common)
    )
    gates = ("--require", f"forget_all.acc<={MAX_FORGOTTEN_ACC}", "--require", "test_retain.acc>=0.9")
    again = _json(
        invoke(cli, "unlearn", "--model", root / "o1", "--forget", second, "--out", root / "o2", *common, *gates)
    )
    both = root / "both.txt"
    both.write_text(f"{FORGET_CLASS}\n{SECOND_CLASS}\n")
    # The original, audited with both classes as forgotten: its accuracy on the kept classes.
    original = _json(invoke(cli, "audit", "--model", resnet_ckpt, "--forget", both, *common[:-2], "--json", "-q"))
    # The second output, audited on class 3 alone: the first request's class after the second.
    class3 = _json(invoke(cli, "audit", "--model", root / "o2", "--forget", class_forget_file, *common))
    return SimpleNamespace(root=root, o1=root / "o1", o2=root / "o2", first=first, second=again, original=original,
                           forget2=second, class3=class3)


def test_second_request_writes_two_entry_chained_ledger(two_classes) -> None:
    first, second = two_classes.first["ledger"], two_classes.second["ledger"]
    assert [e["request"] for e in second] == [1, 2] and len(first) == 1
    assert second[0] == first[0]  # carried forward unchanged
    assert [e["forget_classes"] for e in second] == [[FORGET_CLASS], [SECOND_CLASS]]
    assert [e["forget_ids"] for e in second] == [[str(FORGET_CLASS)], [str(SECOND_CLASS)]]
    # chain: the second request read exactly the weights the first wrote
    assert second[1]["input_sha256"] == second[0]["output_sha256"] == first[0]["output_files_sha256"][MODEL_FILE]
    assert second[1]["built_from"].startswith("merged")
    on_disk = json.loads((two_classes.o2 / LEDGER_FILE).read_text())["ledger"]
    assert on_disk == json.loads((two_classes.o2 / REPORT_FILE).read_text())["ledger"]
    assert two_classes.second["forget_classes"] == [SECOND_CLASS]
    assert two_classes.second["forget_classes_all"] == [FORGET_CLASS, SECOND_CLASS]


def test_both_classes_forgotten_others_kept(two_classes) -> None:
    after = two_classes.second["metrics"]["after"]
    # the training rows of class 5 (this request) and of class 3 (the first: the second run
    # trained against its rows again, so it cannot come back), the test rows of both
    assert after["forget"]["acc"] <= MAX_FORGOTTEN_ACC
    assert two_classes.class3["metrics"]["forget"]["acc"] <= MAX_FORGOTTEN_ACC, two_classes.class3["metrics"]["forget"]
    assert after["forget_all"]["acc"] <= MAX_FORGOTTEN_ACC
    assert after["test_forget"]["acc"] <= MAX_FORGOTTEN_ACC
    sizes = after["sizes"]
    first_rows = two_classes.first["forget_count"]
    assert sizes["forget_all"] == first_rows + two_classes.second["forget_count"]
    # earlier rows stay out of D_r: the retain pool shrank by the first request's rows
    assert sizes["retain_total"] == two_classes.first["metrics"]["after"]["sizes"]["retain_total"] - sizes["forget"]
    # Within 2 points of the original (this fixture: -1.4). Over six training seeds of the ResNet
    # the two requests cost 0.0-1.4 points (benchmarks/class_draws.py --two-requests); with class
    # mode's full pull, before it was halved, 0.9-6.3, and this bound held on one draw of six.
    kept_before = two_classes.original["metrics"]["test_retain"]["acc"]
    assert after["test_retain"]["acc"] >= kept_before - MAX_KEPT_DROP, (after["test_retain"], kept_before)


def test_verify_passes_then_fails_after_one_byte(two_classes, tmp_path, cli) -> None:
    for out in (two_classes.o1, two_classes.o2):
        result = invoke(cli, "verify", out)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "OK" in result.stdout
    copy = tmp_path / "copy"
    shutil.copytree(two_classes.o2, copy)
    weights = copy / MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # a tensor byte, not the header
    weights.write_bytes(bytes(data))
    result = invoke(cli, "verify", copy, "--json")
    assert result.exit_code == 1
    verdict = json.loads(result.stdout)
    assert not verdict["passed"] and MODEL_FILE in verdict["first_mismatch"]
    assert MODEL_FILE in result.stderr
    # the tampered output is refused as the input of a next request (exit 2, nothing written)
    again = invoke(
        cli, "unlearn", "--model", copy, "--data", tmp_path, "--forget", two_classes.forget2, "--by", "class",
        "--out", tmp_path / "next", "--quiet",
    )
    assert again.exit_code == 2 and "rfau verify" in again.stderr
    assert not (tmp_path / "next").exists()


def test_verify_catches_edited_card_and_metadata(two_classes, tmp_path, cli) -> None:
    from rfau_cli.provenance import SEED_KEY, add_metadata

    card = tmp_path / "card"
    shutil.copytree(two_classes.o1, card)
    (card / CARD_FILE).write_text((card / CARD_FILE).read_text() + "\nextra claim\n")
    assert invoke(cli, "verify", card).exit_code == 1
    meta = tmp_path / "meta"
    shutil.copytree(two_classes.o1, meta)
    add_metadata(meta / ADAPTER_SUBDIR / ADAPTER_WEIGHTS_FILE, {SEED_KEY: "7"})
    result = invoke(cli, "verify", meta, "--json")
    assert result.exit_code == 1
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["passed"]]
    # the file's hash changed (first mismatch), and its metadata no longer agrees with the report
    assert any(c["check"] == "metadata" and "rfau.seed" in c["problem"] for c in failed), failed


def test_verify_and_ledger_refuse_non_outputs(resnet_ckpt, tmp_path, cli) -> None:
    for target in (resnet_ckpt, tmp_path / "missing", resnet_ckpt / MODEL_FILE):
        for command in ("verify", "ledger"):
            result = invoke(cli, command, target)
            assert result.exit_code == 2, (command, target, result.stdout)
            assert result.stderr.count("\n") == 1


def test_weights_carry_provenance_and_load(two_classes) -> None:
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForImageClassification

    report, ledger = two_classes.second, two_classes.second["ledger"]
    for path in (two_classes.o2 / MODEL_FILE, two_classes.o2 / ADAPTER_SUBDIR / ADAPTER_WEIGHTS_FILE):
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata()
        assert set(METADATA_KEYS) <= set(meta) and meta["format"] == "pt"
        assert meta["rfau.input_sha256"] == ledger[-1]["input_sha256"]
        assert meta["rfau.forget_sha256"] == report["inputs"]["forget_list_sha256"]
        assert (meta["rfau.method"], meta["rfau.seed"], meta["rfau.ledger_length"]) == ("rfau", "0", "2")
    merged = AutoModelForImageClassification.from_pretrained(str(two_classes.o2)).eval()
    base = AutoModelForImageClassification.from_pretrained(str(two_classes.o1))
    adapted = PeftModel.from_pretrained(base, str(two_classes.o2 / ADAPTER_SUBDIR)).eval()
    x = torch.rand(4, merged.config.num_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(merged(pixel_values=x).logits, adapted(pixel_values=x).logits, atol=1e-4)


def test_ledger_command_and_card(two_classes, cli) -> None:
    result = invoke(cli, "ledger", two_classes.o2)
    assert result.exit_code == 0, result.stderr
    for entry in two_classes.second["ledger"]:
        assert entry["forget_sha256"][:12] in result.stdout and entry["output_sha256"][:12] in result.stdout
    listed = _json(invoke(cli, "ledger", two_classes.o2, "--json"))["ledger"]
    assert listed == two_classes.second["ledger"]
    card = (two_classes.o2 / CARD_FILE).read_text()
    front = card.split("---")[1]
    assert "base_model:" in front and "library_name: transformers" in front
    assert "- machine-unlearning" in front and "- rfau" in front
    assert two_classes.second["inputs"]["forget_list_sha256"] in card
    assert "| accuracy on every row forgotten so far |" in card


def test_gates_and_audit_see_forget_all(two_classes, digits, cli) -> None:
    """`rfau audit` of an output with a ledger scores every request's rows (forget_all)."""
    args = ("--data", digits[0], "--test-data", digits[1], "--by", "class", "--quiet", "--json")
    result = invoke(
        cli, "audit", "--model", two_classes.o2, "--forget", two_classes.forget2, *args,
        "--require", f"forget_all.acc<={MAX_FORGOTTEN_ACC}",
    )
    audit = _json(result)
    assert audit["passed"]
    assert audit["sizes"]["forget_all"] == two_classes.second["metrics"]["after"]["sizes"]["forget_all"]
    failing = invoke(cli, "audit", "--model", two_classes.o1, "--forget", two_classes.forget2, *args,
                     "--require", "forget_all.acc<=0.02")
    assert failing.exit_code == 1  # o1 still knows class 5: forget_all = classes 3 and 5


def test_sample_requests_from_an_adapter_output(resnet_ckpt, digits, tmp_path, cli) -> None:
    """A sample request on an adapter-only output: the first request's rows stay out of D_r,
    and the adapter written is both requests' in one, on the original base."""
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    rng = np.random.default_rng(1)
    rows = rng.choice(1000, 60, replace=False)
    first_ids, second_ids = sorted(rows[:30].tolist()), sorted(rows[25:].tolist())  # 5 ids in both
    for name, ids in (("f1.txt", first_ids), ("f2.txt", second_ids)):
        (tmp_path / name).write_text("\n".join(map(str, ids)) + "\n")
    common = ("--data", digits[0], "--test-data", digits[1], "--epochs", "1", "--quiet", "--json")
    first = _json(invoke(cli, "unlearn", "-m", resnet_ckpt, "-f", tmp_path / "f1.txt", "-o", tmp_path / "a",
                         "--save", "adapter", *common))
    second = _json(invoke(cli, "unlearn", "-m", tmp_path / "a", "-f", tmp_path / "f2.txt", "-o", tmp_path / "b",
                          *common))
    n = first["inputs"]["data_rows"]
    sizes = second["metrics"]["after"]["sizes"]
    assert sizes["forget_all"] == len(set(first_ids) | set(second_ids)) == 60
    assert sizes["retain_total"] == n - 60  # the first request's rows never re-enter D_r
    assert [e["forget_ids"] for e in second["ledger"]] == [list(map(str, first_ids)), list(map(str, second_ids))]
    assert second["ledger"][1]["input_sha256"] == first["ledger"][0]["output_sha256"]
    assert second["ledger"][1]["built_from"].startswith("rfau adapter output merged")
    assert invoke(cli, "verify", tmp_path / "b").exit_code == 0
    config = json.loads((tmp_path / "b" / ADAPTER_SUBDIR / "adapter_config.json").read_text())
    assert config["r"] == 16  # rank 8 + rank 8, side by side
    assert Path(config["base_model_name_or_path"]) == Path(resnet_ckpt).resolve()
    merged = AutoModelForImageClassification.from_pretrained(str(tmp_path / "b")).eval()
    base = AutoModelForImageClassification.from_pretrained(str(resnet_ckpt))
    adapted = PeftModel.from_pretrained(base, str(tmp_path / "b" / ADAPTER_SUBDIR)).eval()
    x = torch.rand(4, merged.config.num_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(merged(pixel_values=x).logits, adapted(pixel_values=x).logits, atol=1e-4)


def test_gates_are_in_the_report_and_the_card(two_classes) -> None:
    """`unlearn --require`: every gate's verdict is recorded in report.json and the model card."""
    gates = two_classes.second["gates"]
    assert [g["expr"] for g in gates] == [f"forget_all.acc<={MAX_FORGOTTEN_ACC}", "test_retain.acc>=0.9"]
    after = two_classes.second["metrics"]["after"]
    assert [g["actual"] for g in gates] == [after["forget_all"]["acc"], after["test_retain"]["acc"]]
    assert all(g["passed"] for g in gates) and set(gates[0]) == {"expr", "key", "op", "value", "actual", "passed"}
    assert json.loads((two_classes.o2 / REPORT_FILE).read_text())["gates"] == gates
    assert two_classes.first["gates"] == []
    card = (two_classes.o2 / CARD_FILE).read_text()
    assert "## Gates" in card and "`test_retain.acc>=0.9`" in card
    assert "## Gates" not in (two_classes.o1 / CARD_FILE).read_text()


def test_summary_shows_every_request_so_far(two_classes, capsys) -> None:
    from rfau_cli.summary import print_unlearn_summary

    print_unlearn_summary(two_classes.second, two_classes.o2)
    second = capsys.readouterr().out
    assert "D_f, all requests" in second and "request 2 of the ledger" in second
    assert str(two_classes.o2.name) in second  # where the output went
    print_unlearn_summary(two_classes.first)
    assert "all requests" not in capsys.readouterr().out  # one request: D_f is everything


def test_sample_request_after_a_class_request_leaves_its_test_rows_out(two_classes, digits, tmp_path, cli) -> None:
    """The earlier class's test rows are no non-members any more: not in the test rows the
    method sets its sample targets from, nor in the audit's."""
    from rfau_cli.checkpoint import resolve_checkpoint
    from rfau_cli.job import prepare_job
    from rfau_cli.progress import Progress
    from rfau_cli.settings import DataSettings, RuntimeSettings

    ids = tmp_path / "ids.txt"
    ids.write_text("0\n1\n2\n4\n")
    data = DataSettings(Path(digits[0]), str(ids), test_data=Path(digits[1]))
    job = prepare_job(resolve_checkpoint(two_classes.o1), data, RuntimeSettings("cpu", "fp32"), 0, Progress(True))
    test_labels = job.splits.for_training().test_labels
    all_test = two_classes.first["metrics"]["after"]["sizes"]["test"]
    assert FORGET_CLASS not in test_labels and 0 < len(test_labels) < all_test
    report = _json(invoke(cli, "unlearn", "-m", two_classes.o1, "-f", ids, "-d", digits[0], "--test-data", digits[1],
                          "--epochs", "1", "-o", tmp_path / "s", "--quiet", "--json"))
    assert report["metrics"]["after"]["sizes"]["test"] == len(test_labels)
    assert report["metrics"]["after"]["forget_all"]["acc"] <= 4 / report["metrics"]["after"]["sizes"]["forget_all"]


def _strip_ledger(out: Path) -> None:
    """An output as rfau wrote it before it kept a ledger: report.json without one, no ledger.json or card."""
    report = json.loads((out / REPORT_FILE).read_text())
    del report["ledger"]
    (out / REPORT_FILE).write_text(json.dumps(report))
    (out / LEDGER_FILE).unlink()
    (out / CARD_FILE).unlink()


def test_verify_and_ledger_explain_an_output_without_a_ledger(two_classes, tmp_path, cli) -> None:
    old = tmp_path / "old"
    shutil.copytree(two_classes.o1, old)
    _strip_ledger(old)
    result = invoke(cli, "verify", old)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "before outputs carried a ledger" in line and "files match" in line
    listed = invoke(cli, "ledger", old)
    assert listed.exit_code == 2 and "before outputs carried one" in listed.stderr


def _tamper(case: str, out: Path) -> None:
    if case == "ledger.json not JSON":
        (out / LEDGER_FILE).write_text('{"ledger": [1, 2')
    elif case == "ledger.json ids edited":
        ledger = json.loads((out / LEDGER_FILE).read_text())
        ledger["ledger"][0]["forget_ids"] = ["0"]
        (out / LEDGER_FILE).write_text(json.dumps(ledger))
    elif case == "a request dropped from both":
        for name in (LEDGER_FILE, REPORT_FILE):
            record = json.loads((out / name).read_text())
            record["ledger"] = record["ledger"][1:]
            (out / name).write_text(json.dumps(record))
    elif case == "an entry of the wrong shape":
        for name in (LEDGER_FILE, REPORT_FILE):
            record = json.loads((out / name).read_text())
            record["ledger"][0]["forget_ids"] = 3
            (out / name).write_text(json.dumps(record))
    elif case == "report.json missing":
        (out / REPORT_FILE).unlink()
    elif case == "report.json and ledger.json missing":
        (out / REPORT_FILE).unlink()
        (out / LEDGER_FILE).unlink()
    elif case == "ledger removed":
        _strip_ledger(out)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("ledger.json not JSON", "ledger.json is not valid JSON"),
        ("ledger.json ids edited", "ledger.json differs from report.json's ledger"),
        ("a request dropped from both", "written after 2 request(s), its ledger lists 1"),
        ("an entry of the wrong shape", "request 1 of the ledger has no valid 'forget_ids'"),
        ("report.json missing", "no report.json, so it is not a complete rfau output"),
        ("report.json and ledger.json missing", "but its ledger is missing"),
        ("ledger removed", "but its ledger is missing"),
    ],
)
def test_a_tampered_input_ledger_is_refused(case, expected, two_classes, digits, tmp_path, cli) -> None:
    """An earlier output whose records were edited or lost cannot answer the next request: its
    earlier requests would silently stop being kept out of D_r. Exit 2, one line, nothing written."""
    model = tmp_path / "model"
    shutil.copytree(two_classes.o2, model)
    _tamper(case, model)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(cli, "unlearn", "-m", model, "-f", two_classes.forget2, "-d", digits[0], "--by", "class",
                    "-o", tmp_path / "next")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
