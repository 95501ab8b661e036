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
MAX_FORGOTTEN_ACC = 0.02  # the "forgotten": <= 2% accuracy
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
    again = _json(invoke(cli, "unlearn", "--model", root / "o1", "--forget", second, "--out", root / "o2", *common))
    both = root / "both.txt"
    both.write_text(f"{FORGET_CLASS}\n{SECOND_CLASS}\n")
    # The original, audited with both classes as forgotten: its accuracy on the kept classes.
    original = _json(invoke(cli, "audit", "--model", resnet_ckpt, "--forget", both, *common[:-2], "--json", "-q"))
    return SimpleNamespace(root=root, o1=root / "o1", o2=root / "o2", first=first, second=again, original=original,
                           forget2=second)


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
    # test rows of classes 3 and 5, and every training row of both (forget_all)
    assert after["test_forget"]["acc"] <= MAX_FORGOTTEN_ACC
    assert after["forget"]["acc"] <= MAX_FORGOTTEN_ACC
    assert after["forget_all"]["acc"] <= MAX_FORGOTTEN_ACC
    sizes = after["sizes"]
    first_rows = two_classes.first["forget_count"]
    assert sizes["forget_all"] == first_rows + two_classes.second["forget_count"]
    # earlier rows stay out of D_r: the retain pool shrank by the first request's rows
    assert sizes["retain_total"] == two_classes.first["metrics"]["after"]["sizes"]["retain_total"] - sizes["forget"]
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
