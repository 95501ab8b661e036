"""The CLI boundary: bad input is one stderr line and exit 2 with nothing written; a run that
fails later is exit 3 with no output; `rfau --help` imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FORGET_CLASS, invoke


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def _assert_usage_error(result, where: Path, before: set[str], needle: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rfau: error:"), result.stderr
    assert needle in lines[0]
    assert result.stdout == ""
    assert _entries(where) == before, "something was written"


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_inputs_exit_2_and_write_nothing(resnet_ckpt, digits, ws, cli) -> None:
    train, test = digits
    cases = {
        "missing model": (
            ["--model", ws.parent / "nope", "--forget", _write(ws.parent / "f1", "1\n")],
            "model not found",
        ),
        "unknown row": (["--forget", _write(ws.parent / "f2", "1\n99999\n")], "'99999' is not a row index"),
        "unknown class": (
            ["--by", "class", "--forget", _write(ws.parent / "f3", "eleven\n")],
            "unknown class 'eleven'",
        ),
        "empty list": (["--forget", _write(ws.parent / "f4", "# nothing\n\n")], "lists no ids"),
        "whole data": (
            ["--by", "class", "--forget", _write(ws.parent / "f5", "\n".join(map(str, range(10))))],
            "whole training data",
        ),
        "missing forget": (["--forget", ws.parent / "absent.txt"], "--forget file not found"),
        "sample without test": (
            ["--forget", _write(ws.parent / "f6", "1\n"), "--test-data", None],
            "needs --test-data",
        ),
        "bad save": (["--forget", _write(ws.parent / "f7", "1\n"), "--save", "zip"], "--save must be"),
        "unknown method": (
            ["--forget", _write(ws.parent / "f8", "1\n"), "--method", "magic"],
            "unknown method 'magic'",
        ),
        "bad target modules": (
            ["--forget", _write(ws.parent / "f9", "1\n"), "--target-modules", "nonexistent"],
            "matched no body module",
        ),
    }
    for override, needle in cases.values():
        args = {"--model": resnet_ckpt, "--data": train, "--test-data": test, "--out": ws / "out", "--by": "sample"}
        extra = []
        for key, value in zip(override[::2], override[1::2]):
            if key in args:
                args[key] = value
            else:
                extra += [key, value]
        flat = [str(x) for k, v in args.items() if v is not None for x in (k, v)] + [str(x) for x in extra]
        before = _entries(ws)
        result = invoke(cli, "unlearn", *flat, "--quiet")
        _assert_usage_error(result, ws, before, needle)


def test_label_column_mismatch(resnet_ckpt, ws, cli) -> None:
    import datasets
    import numpy as np

    table = datasets.Dataset.from_dict({"image": [np.zeros((8, 8), dtype=np.uint8)] * 4, "label": [0, 1, 2, 12]})
    table.save_to_disk(str(ws.parent / "bad"))
    forget = _write(ws.parent / "f.txt", "0\n")
    before = _entries(ws)
    result = invoke(
        cli,
        "unlearn",
        "--model",
        resnet_ckpt,
        "--data",
        ws.parent / "bad",
        "--test-data",
        ws.parent / "bad",
        "--forget",
        forget,
        "--out",
        ws / "out",
        "--quiet",
    )
    _assert_usage_error(result, ws, before, "outside the model's 10 classes")


def test_pickle_checkpoint_refused(resnet_ckpt, digits, ws, cli) -> None:
    import shutil

    pickled = ws.parent / "pickled"
    pickled.mkdir()
    shutil.copy(resnet_ckpt / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    forget = _write(ws.parent / "f.txt", "1\n")
    before = _entries(ws)
    result = invoke(
        cli,
        "unlearn",
        "--model",
        pickled,
        "--data",
        digits[0],
        "--test-data",
        digits[1],
        "--forget",
        forget,
        "--out",
        ws / "out",
        "--quiet",
    )
    _assert_usage_error(result, ws, before, "pickle")
    result = invoke(
        cli,
        "unlearn",
        "--model",
        pickled / "pytorch_model.bin",
        "--data",
        digits[0],
        "--test-data",
        digits[1],
        "--forget",
        forget,
        "--out",
        ws / "out",
        "--quiet",
    )
    _assert_usage_error(result, ws, before, "pickle")


def test_existing_out_refused_and_untouched(resnet_ckpt, digits, ws, cli) -> None:
    out = ws / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    forget = _write(ws.parent / "f.txt", f"{FORGET_CLASS}\n")
    before = _entries(ws)
    result = invoke(
        cli,
        "unlearn",
        "--model",
        resnet_ckpt,
        "--data",
        digits[0],
        "--by",
        "class",
        "--forget",
        forget,
        "--out",
        out,
        "--quiet",
    )
    _assert_usage_error(result, ws, before, "already exists")
    assert _entries(out) == {"keep.txt"}


def test_failed_run_exits_3_and_leaves_nothing(resnet_ckpt, digits, ws, cli) -> None:
    """An absurd learning rate makes the loss non-finite: exit 3, no --out, no temp dir."""
    forget = _write(ws.parent / "f.txt", f"{FORGET_CLASS}\n")
    before = _entries(ws)
    result = invoke(
        cli,
        "unlearn",
        "--model",
        resnet_ckpt,
        "--data",
        digits[0],
        "--by",
        "class",
        "--forget",
        forget,
        "--out",
        ws / "out",
        "--quiet",
        "--lr",
        "1e30",
        "--epochs",
        "3",
    )
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "loss became" in result.stderr
    assert _entries(ws) == before


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from rfau_cli.cli import main\n"
        "sys.argv = ['rfau', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['torch', 'transformers', 'peft', 'datasets', 'accelerate', 'sklearn', 'numpy']\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY=\n" in out, out
    assert "unlearn" in out


def test_methods_lists_without_torch() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom rfau_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['methods'])\nprint(r.output)\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    assert out.startswith("rfau ")


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "rfau_cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("rfau ")


def test_json_report_parses(resnet_ckpt, digits, tmp_path, cli) -> None:
    forget = _write(tmp_path / "f.txt", f"{FORGET_CLASS}\n")
    result = invoke(
        cli,
        "unlearn",
        "--model",
        resnet_ckpt,
        "--data",
        digits[0],
        "--by",
        "class",
        "--forget",
        forget,
        "--out",
        tmp_path / "out",
        "--json",
        "--epochs",
        "1",
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["command"] == "unlearn"  # stdout holds the JSON and nothing else
