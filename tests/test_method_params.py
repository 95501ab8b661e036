"""Typed method parameters (`--set key=value`, `rfau methods --verbose`) and the checks every
settings object runs when it is built (issue 10, items 2 and 5)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import invoke

from rfau_cli.errors import InputError
from rfau_cli.methods import REGISTRY, method_class
from rfau_cli.settings import DataSettings, MethodSettings, RuntimeSettings, UnlearnConfig, parse_sets


def unlearn(cli, resnet_ckpt: Path, digits: tuple[Path, Path], forget: Path, out: Path, *extra: object):
    return invoke(
        cli, "unlearn", "--model", resnet_ckpt, "--data", digits[0], "--forget", forget, "--by", "class",
        "--test-data", digits[1], "--out", out, "--quiet", "--json", *extra,
    )


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rfau: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


# ---- --set through the CLI -------------------------------------------------------------------


def test_set_changes_the_parameter_and_the_report_records_it(cli, resnet_ckpt, digits, class_forget_file, tmp_path):
    # SSD with a selection of 1e12 dampens (next to) nothing: the value reached the method. Not
    # exactly nothing: a weight the retained rows give no gradient at all (I_r = 0) passes any
    # selection; a fixture model trained on an H200 machine had 0.01% of such weights, this
    # machine's none.
    out = tmp_path / "ssd"
    result = unlearn(cli, resnet_ckpt, digits, class_forget_file, out, "--method", "ssd", "--set", "selection=1e12")
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["selection"] == 1e12 and report["settings"]["dampening"] == 1.0
    default = unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "default", "--method", "ssd")
    assert default.exit_code == 0, default.stderr
    usual = json.loads(default.stdout)["training"]["ssd_dampened_fraction"]
    assert report["training"]["ssd_dampened_fraction"] <= min(1e-3, usual / 10), usual
    assert "sets" not in report["settings"] and "params" not in report["settings"]


def test_set_parses_to_the_field_type(cli, resnet_ckpt, digits, class_forget_file, tmp_path):
    out = tmp_path / "scrub"
    result = unlearn(cli, resnet_ckpt, digits, class_forget_file, out, "--method", "scrub", "--epochs", "1",
                     "--set", "kd_t=2", "--set", "msteps=0", "--set", "msteps=1")  # the last one wins
    assert result.exit_code == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["kd_t"] == 2.0 and isinstance(settings["kd_t"], float)
    assert settings["msteps"] == 1 and isinstance(settings["msteps"], int)
    assert settings["ce_weight"] == 0.1


@pytest.mark.parametrize(
    "method,sets,needles",
    [
        ("scrub", ["kd=3"], ["--set kd:", "kd_t, msteps, ce_weight"]),
        ("finetune", ["l1=0.1"], ["--set l1:", "valid: none"]),
        ("scrub", ["msteps=1.5"], ["msteps", "not a valid int"]),
        ("scrub", ["kd_t=warm"], ["kd_t", "not a valid float"]),
        ("scrub", ["kd_t=0"], ["kd_t", "greater than 0"]),
        ("salun", ["saliency=2"], ["saliency", "at most 1"]),
        ("rfau", ["min_steps"], ["--set takes key=value"]),
    ],
)
def test_bad_set_exits_2_and_writes_nothing(
    cli, resnet_ckpt, digits, class_forget_file, tmp_path, method, sets, needles
):
    out = tmp_path / "out"
    args = [x for s in sets for x in ("--set", s)]
    line = one_line(unlearn(cli, resnet_ckpt, digits, class_forget_file, out, "--method", method, *args))
    for needle in needles:
        assert needle in line, line
    assert list(tmp_path.iterdir()) == []


def test_bench_set_key_no_chosen_method_has_exits_2(cli, resnet_ckpt, digits, class_forget_file, tmp_path):
    out = tmp_path / "bench"
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        digits[0],
        "-f",
        class_forget_file,
        "--by",
        "class",
        "--test-data",
        digits[1],
        "-o",
        out,
        "--methods",
        "finetune,scrub",
        "--set",
        "l1=0.1",
    )
    line = one_line(result)
    assert "--set l1" in line and "kd_t" in line
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        digits[0],
        "-f",
        class_forget_file,
        "--by",
        "class",
        "--test-data",
        digits[1],
        "-o",
        out,
        "--methods",
        "finetune,scrub",
        "--set",
        "kd_t=x",
    )
    assert "kd_t" in one_line(result)
    assert list(tmp_path.iterdir()) == []


def test_bench_applies_a_set_only_to_methods_that_have_it():
    from rfau_cli.commands.bench import sets_for

    sets = (("kd_t", "2"), ("saliency", "0.3"))
    assert sets_for(sets, method_class("scrub")) == (("kd_t", "2"),)
    assert sets_for(sets, method_class("bad-teacher")) == (("kd_t", "2"),)
    assert sets_for(sets, method_class("finetune")) == ()


# ---- rfau methods --verbose --------------------------------------------------------------------


def test_methods_verbose_lists_parameters(cli):
    result = invoke(cli, "methods", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert "--set min_steps=50" in result.stdout and "(int)" in result.stdout
    rfau_epochs = method_class("rfau").default_epochs
    assert "--set kd_t=4.0" in result.stdout and f"--epochs {rfau_epochs} --lr 0.001" in result.stdout
    for name in REGISTRY:
        assert name in result.stdout


def test_methods_verbose_imports_no_torch():
    code = (
        "import sys; from rfau_cli.cli import app; "
        "sys.argv = ['rfau', 'methods', '--verbose']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "min_steps" in result.stdout


# ---- Typer choices: a usage error is one line, exit 2 --------------------------------------------


@pytest.mark.parametrize(
    "flag,value,needle",
    [
        ("--by", "foo", "--by must be sample or class, not 'foo'"),
        ("--save", "zip", "--save must be adapter, merged or both, not 'zip'"),
        ("--device", "tpu", "--device must be auto, cpu or cuda, not 'tpu'"),
        ("--precision", "fp16", "--precision must be auto, fp32 or bf16, not 'fp16'"),
        ("--rank", "abc", "--rank"),
    ],
)
def test_choices_are_usage_errors_in_one_line(cli, tmp_path, flag, value, needle):
    # The paths do not exist: the flag is refused before anything is read.
    result = invoke(
        cli,
        "unlearn",
        "-m",
        tmp_path / "nope",
        "-d",
        tmp_path / "nope",
        "-f",
        tmp_path / "nope",
        "-o",
        tmp_path / "out",
        flag,
        value,
    )
    assert needle in one_line(result)
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_one_line(cli):
    assert "No such option" in one_line(invoke(cli, "methods", "--bogus"))


# ---- settings checks (__post_init__) and the epoch cap ---------------------------------------------


@pytest.mark.parametrize(
    "build,needle",
    [
        (lambda: MethodSettings(epochs=0), "--epochs must be at least 1"),
        (lambda: MethodSettings(batch_size=0), "--batch-size must be at least 1"),
        (lambda: MethodSettings(rank=0), "--rank must be at least 1"),
        (lambda: MethodSettings(retain_ratio=-1), "--retain-ratio must be 0 or more"),
        (lambda: MethodSettings(lr=0.0), "--lr must be positive"),
        (lambda: MethodSettings(lr=float("nan")), "--lr must be positive"),
        (lambda: RuntimeSettings(cache_mb=-1), "--cache-mb must be 0 or more"),
        (lambda: RuntimeSettings(workers=-1), "--workers must be 0 or more"),
        (lambda: RuntimeSettings(device="tpu"), "--device must be"),
        (lambda: RuntimeSettings(precision="fp16"), "--precision must be"),
        (lambda: DataSettings(Path("d"), "f", by="row"), "--by must be"),
        (lambda: UnlearnConfig(Path("m"), Path("o"), DataSettings(Path("d"), "f"), save="zip"), "--save must be"),
        (lambda: parse_sets(["=3"]), "--set takes key=value"),
    ],
)
def test_settings_check_themselves(build, needle):
    with pytest.raises(InputError, match=needle.replace("-", r"\-")):
        build()


def test_resolved_settings_hold_typed_params():
    rfau = method_class("rfau")
    settings = MethodSettings(sets=(("min_steps", "7"),)).resolved(rfau)
    assert settings.params.min_steps == 7 and settings.params.sample_epochs == 60
    assert (settings.epochs, settings.lr, settings.epochs_from_user) == (rfau.default_epochs, 1e-3, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.params.min_steps = 1  # type: ignore[misc]
    assert MethodSettings(epochs=3, lr=0.5).resolved(method_class("scrub")).params.kd_t == 4.0


def test_retain_ratio_defaults_to_the_methods_choice_for_the_mode():
    """RFAU's sample mode pairs each forget batch with 2 retain batches (cheaper steps for its
    gentler pull, docs/results.md), class mode and every other method with DESIGN.md's 4; a
    user's --retain-ratio always wins."""
    rfau, scrub = method_class("rfau"), method_class("scrub")
    assert MethodSettings().resolved(rfau, "sample").retain_ratio == 2
    assert MethodSettings().resolved(rfau, "class").retain_ratio == 4
    assert MethodSettings().resolved(scrub, "sample").retain_ratio == 4
    assert MethodSettings(retain_ratio=8).resolved(rfau, "sample").retain_ratio == 8
    assert MethodSettings(retain_ratio=0).resolved(rfau, "class").retain_ratio == 0


def _epochs(name: str, by: str, forget_rows: int, epochs: int | None = None) -> int:
    from rfau_cli.methods.loop import epochs_to_run

    method = method_class(name)()
    settings = MethodSettings(epochs=epochs).resolved(method)
    splits = SimpleNamespace(by=by, forget=np.arange(forget_rows), retain=np.arange(forget_rows, 1000))
    ctx = SimpleNamespace(settings=settings, params=settings.params, splits=splits)
    return epochs_to_run(method, ctx)


def test_epoch_cap_reads_the_typed_params():
    # 30 rows at batch 32: one step an epoch, so 50 min steps need 50 epochs.
    assert _epochs("rfau", "class", 30) == 50
    assert _epochs("rfau", "sample", 30) == 400  # sample mode: at least 400 steps
    assert _epochs("rfau", "sample", 404) == 60  # 13 steps an epoch: 60 epochs are 780 steps
    cap = method_class("rfau").default_epochs  # 10 steps an epoch: the cap already exceeds 50 steps
    assert _epochs("rfau", "class", 320) == cap
    assert _epochs("rfau", "class", 30, epochs=3) == 3  # a given --epochs is never raised
    assert _epochs("rfau-full", "sample", 30) == 10  # no min_steps, no sample_epochs of its own
