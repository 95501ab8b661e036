"""`rfau retrain` end to end on digits: the reference forgets by never seeing D_f."""

from __future__ import annotations

import json

from conftest import FORGET_CLASS, invoke

from rfau_cli.checkpoint import CONFIG_FILE, MODEL_FILE, REPORT_FILE
from rfau_cli.report import REPORT_KEYS


def test_retrain_class_from_scratch(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    train, test = digits
    out = tmp_path / "retrained"
    result = invoke(
        cli, "retrain", "--model", resnet_ckpt, "--data", train, "--forget", class_forget_file, "--by", "class",
        "--test-data", test, "--epochs", 2, "--out", out, "--json", "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    report = json.loads((out / REPORT_FILE).read_text())
    assert printed == report
    records = ["ledger.json", "README.md"]  # the ledger and the model card (tests/test_ledger.py)
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, MODEL_FILE, REPORT_FILE, *records])
    assert report["ledger"][-1]["method"] == "retrain"
    assert set(REPORT_KEYS) <= set(report)
    assert report["command"] == "retrain" and report["method"] == "retrain"
    assert report["training"]["init"] == "scratch"
    assert report["settings"]["epochs"] == 2 and report["settings"]["batch_size"] == 64
    assert report["forget_classes"] == [FORGET_CLASS]
    after = report["metrics"]["after"]
    assert after["forget"]["acc"] == 0.0
    assert after["test_forget"]["acc"] == 0.0
    assert after["retain"]["acc"] > 0.5  # two epochs from scratch already learn the kept digits
    assert report["metrics"]["before"]["forget"]["acc"] > 0.9


def test_retrain_from_init_checkpoint(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    train, test = digits
    out = tmp_path / "from-init"
    result = invoke(
        cli, "retrain", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class",
        "--test-data", test, "--init", resnet_ckpt, "--epochs", 1, "-o", out, "--json", "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["training"]["init"] == str(resnet_ckpt)
    assert list(report["training"]["init_sha256"]) == [MODEL_FILE]


def test_retrain_bad_init_is_input_error(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    train, test = digits
    out = tmp_path / "never"
    result = invoke(
        cli, "retrain", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class",
        "--test-data", test, "--init", tmp_path / "missing", "-o", out,
    )
    assert result.exit_code == 2
    assert "model not found" in result.stderr
    assert not out.exists()


def test_retrain_existing_out_is_input_error(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    train, test = digits
    result = invoke(
        cli, "retrain", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class", "-o", tmp_path
    )
    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_retrain_summary_names_its_output_dir(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    """Without --out the reference lands in rfau-out/<sha12>-retrain/: the summary must say where."""
    train, test = digits
    out = tmp_path / "reference"
    result = invoke(
        cli, "retrain", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--by", "class",
        "--test-data", test, "--epochs", 1, "-o", out, "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    printed = "".join(result.stdout.split())  # rich may wrap a long path
    assert f"outputsin{out}:" in printed and "model.safetensors" in printed
