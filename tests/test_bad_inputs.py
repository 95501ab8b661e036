"""A hostile but fair user, case by case (issue 10): every failure is one stderr line and the
right exit code (2 bad input, 3 a failed run), nothing is written, the inputs are unchanged,
and input errors are found early.

How early is shown without monkeypatching: the early cases also pass a forget list naming a
row the data does not have (`99999`), an error found only once the data is loaded. Reporting
the early error instead proves its check ran before any data loading (and so before any audit
or training).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FORGET_CLASS, invoke

SMALL_ROWS = 60  # rows of the small data sets: every case loads in well under a second
MIXED_ROWS = (5, 17)  # rows of the mixed-size set that are 12x12 instead of 8x8


# ---- helpers ---------------------------------------------------------------------------------



def unlearn_small(cli, model: Path, small: dict, forget: Path, out: Path, *extra: object):
    """`rfau unlearn` on the small data set (the shape most cases share)."""
    return invoke(cli, "unlearn", "-m", model, "-d", small["train"], "--test-data", small["test"], "-f", forget,
                  "-o", out, *extra)

def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """Every file and directory under `roots`: content hash (files) and permission bits."""
    out = {}
    for root in roots:
        for path in sorted([root, *root.rglob("*")]):
            mode = path.lstat().st_mode & 0o7777
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[str(path)] = (digest, mode)
    return out


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one line: no traceback, no blank line before it
    assert lines[0].startswith("rfau: error: ")
    assert result.stdout == ""
    return lines[0]


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def copy_ckpt(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def image_table(images: list[np.ndarray], labels: list[int]):
    import datasets
    from PIL import Image

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a, mode="L") for a in images], "label": labels}, features=features
    )


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(digits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small digits sets (train, test), a mixed-size one, empty ones, and a checkpoint with an
    image processor that resizes to 8x8."""
    import datasets

    root = tmp_path_factory.mktemp("small")
    train = datasets.load_from_disk(str(digits[0])).select(range(SMALL_ROWS))
    test = datasets.load_from_disk(str(digits[1])).select(range(SMALL_ROWS))
    train.save_to_disk(str(root / "train"))
    test.save_to_disk(str(root / "test"))
    images = [np.asarray(im, dtype=np.uint8) for im in train["image"]]
    for row in MIXED_ROWS:
        images[row] = np.kron(images[row], np.ones((3, 3), dtype=np.uint8))[:12, :12]
    image_table(images, list(train["label"])).save_to_disk(str(root / "mixed"))
    image_table([], []).save_to_disk(str(root / "empty"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"image": pa.array([], pa.binary()), "label": pa.array([], pa.int64())}), root / "empty.parquet"
    )
    return {
        "train": root / "train",
        "test": root / "test",
        "mixed": root / "mixed",
        "empty": root / "empty",
        "empty_parquet": root / "empty.parquet",
        "root": root,
    }


@pytest.fixture(scope="module")
def resizing_ckpt(resnet_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits ResNet with an image processor that resizes every image to 8x8."""
    from transformers import ViTImageProcessor

    ckpt = copy_ckpt(resnet_ckpt, tmp_path_factory.mktemp("resizing") / "ckpt")
    ViTImageProcessor(size={"height": 8, "width": 8}, do_normalize=False, do_rescale=True).save_pretrained(str(ckpt))
    return ckpt


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has exited: a run killed by SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start = start_time(proc.pid)
    proc.communicate(b"")
    return proc.pid, start


def start_time(pid: int) -> int:
    from rfau_cli.checkpoint import _start_time

    return _start_time(pid)


# ---- the cases -------------------------------------------------------------------------------
#
# Each case builds its inputs under `tmp` and returns (argv overrides, expected exit code,
# needle of the one error line, whether it must fail before the data is loaded).

POISON = "99999\n"  # a row the data does not have: found only once the data is loaded


def _truncated(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "truncated")
    data = (bad / "model.safetensors").read_bytes()
    write(bad / "model.safetensors", data[: len(data) // 2])
    return {"--model": bad}


def _random_bytes(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "random")
    write(bad / "model.safetensors", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return {"--model": bad}


def _empty_weights(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "empty-weights")
    write(bad / "model.safetensors", b"")
    return {"--model": bad}


def _invalid_config(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "badconfig")
    write(bad / "config.json", (bad / "config.json").read_text()[:-20])
    return {"--model": bad}


def _label_mismatch(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "labels")
    config = json.loads((bad / "config.json").read_text())
    config["id2label"] = {str(i): str(i) for i in range(5)}
    config["label2id"] = {str(i): i for i in range(5)}
    config["num_labels"] = 5
    write(bad / "config.json", json.dumps(config))
    return {"--model": bad}


def _pickle(tmp: Path, ckpt: Path) -> dict:
    bad = tmp / "pickled"
    write(bad / "config.json", (ckpt / "config.json").read_text())
    write(bad / "pytorch_model.bin", b"not loaded, ever")
    return {"--model": bad}


def _unknown_model_type(tmp: Path, ckpt: Path) -> dict:
    bad = copy_ckpt(ckpt, tmp / "unknown-type")
    config = json.loads((bad / "config.json").read_text())
    config["model_type"] = "no-such-model"
    write(bad / "config.json", json.dumps(config))
    return {"--model": bad}


# name: (builder(tmp, ckpt, small) -> overrides, forget text, code, needle, early)
CASES = {
    # the list
    "unicode digit, sample": (lambda t, c, s: {}, "1\n\u00b2\n", "line 2: '\u00b2' is not a row index", False),
    "unicode digit, class": (
        lambda t, c, s: {"--by": "class"},
        "# classes\n\u00b2\n",
        "line 2: unknown class '\u00b2'",
        False,
    ),
    "truncated weights": (lambda t, c, s: _truncated(t, c), POISON, "is not a valid safetensors file", True),
    "random-bytes weights": (lambda t, c, s: _random_bytes(t, c), POISON, "is not a valid safetensors file", True),
    "empty weights file": (lambda t, c, s: _empty_weights(t, c), POISON, "is not a valid safetensors file", True),
    "invalid config.json": (lambda t, c, s: _invalid_config(t, c), POISON, "config.json is not valid JSON", True),
    "unknown model_type": (lambda t, c, s: _unknown_model_type(t, c), POISON, "transformers cannot build", True),
    "label count vs head": (
        lambda t, c, s: _label_mismatch(t, c),
        POISON,
        "has 5 labels but the weights' classifier head",
        True,
    ),
    "empty save_to_disk data": (lambda t, c, s: {"--data": s["empty"]}, "1\n", "has no rows", False),
    "empty parquet data": (lambda t, c, s: {"--data": s["empty_parquet"]}, "1\n", "has no rows", False),
    "mixed image sizes, no processor": (
        lambda t, c, s: {"--data": s["mixed"]},
        "1\n",
        f"row {MIXED_ROWS[0]} is 12x12",
        False,
    ),
    "taps out of range": (
        lambda t, c, s: {"--taps": "99"},
        POISON,
        "--taps 99: the model returns 3 hidden states",
        True,
    ),
    "taps that select nothing": (lambda t, c, s: {"--taps": ","}, POISON, "--taps selects no feature", True),
    "unknown target module": (
        lambda t, c, s: {"--target-modules": "nonexistent"},
        POISON,
        "matched no body module",
        True,
    ),
    "one unknown target module": (
        lambda t, c, s: {"--target-modules": "convolution,nonexistent"},
        POISON,
        "--target-modules nonexistent matched no body module",
        True,
    ),
    "unwritable --out parent": (lambda t, c, s: {"--out": Path("/sys/rfau-out")}, POISON, "cannot write --out", True),
    "missing --out parent": (
        lambda t, c, s: {"--out": t / "nope" / "out"},
        POISON,
        "parent directory of --out does not exist",
        True,
    ),
    # cases that already behaved
    "missing model": (lambda t, c, s: {"--model": t / "nope"}, POISON, "model not found", True),
    "pickle checkpoint": (lambda t, c, s: _pickle(t, c), POISON, "pickle", True),
    "unknown row": (lambda t, c, s: {}, "1\n99999\n", "line 2: '99999' is not a row index", False),
    "unknown class": (lambda t, c, s: {"--by": "class"}, "eleven\n", "line 1: unknown class 'eleven'", False),
    "empty forget list": (lambda t, c, s: {}, "# nothing\n\n", "lists no ids", False),
    "forget list is the whole data": (
        lambda t, c, s: {"--by": "class"},
        "\n".join(map(str, range(10))),
        "whole training data",
        False,
    ),
    "sample mode without --test-data": (lambda t, c, s: {"--test-data": None}, POISON, "needs --test-data", True),
    "bad --save": (lambda t, c, s: {"--save": "zip"}, POISON, "--save must be", True),
    "unknown method": (lambda t, c, s: {"--method": "magic"}, POISON, "unknown method 'magic'", True),
    "missing data": (lambda t, c, s: {"--data": t / "absent"}, "1\n", "--data not found", False),
    "unknown id column": (lambda t, c, s: {"--id-column": "nope"}, "1\n", "--id-column 'nope' not in data", False),
}


def _unwritable(path: str) -> bool:
    """Whether even this user (root included) cannot create a directory in `path`."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(dir=path))
    except OSError:
        return True
    return False  # pragma: no cover


UNWRITABLE = _unwritable("/sys")
if not UNWRITABLE:  # pragma: no cover - no unwritable directory to point at
    CASES.pop("unwritable --out parent")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_early_and_writes_nothing(case, resnet_ckpt, small, ws, cli) -> None:
    build, forget_text, needle, early = CASES[case]
    tmp = ws.parent
    overrides = build(tmp, resnet_ckpt, small)
    forget = write(tmp / "forget.txt", forget_text)
    args = {
        "--model": resnet_ckpt,
        "--data": small["train"],
        "--test-data": small["test"],
        "--forget": forget,
        "--out": ws / "out",
        "--by": "sample",
    }
    args.update(overrides)
    argv = [str(x) for k, v in args.items() if v is not None for x in (k, v)]
    before = snapshot(tmp, resnet_ckpt, small["root"])
    result = invoke(cli, "unlearn", *argv, "--quiet")
    line = one_error_line(result, 2)
    assert needle in line, line
    if early:
        assert "99999" not in line  # the data-level error was never reached
    assert snapshot(tmp, resnet_ckpt, small["root"]) == before  # nothing written, inputs unchanged


def test_existing_out_is_refused_and_untouched(resnet_ckpt, small, ws, cli) -> None:
    out = write(ws / "out" / "keep.txt", "mine").parent
    forget = write(ws.parent / "forget.txt", POISON)
    before = snapshot(ws.parent)
    result = unlearn_small(cli, resnet_ckpt, small, forget, out, "-q")
    assert "already exists" in one_error_line(result, 2)
    assert snapshot(ws.parent) == before


def test_concurrent_run_to_the_same_out_is_refused(resnet_ckpt, small, ws, cli, live_pid) -> None:
    """Another live run holds `.out.tmp-PID-START-*`: the second run fails at once (exit 2)."""
    claim = ws / f".out.tmp-{live_pid}-{start_time(live_pid)}-abc123"
    write(claim / "partial.bin", b"theirs")
    forget = write(ws.parent / "forget.txt", POISON)
    before = snapshot(ws.parent)
    result = unlearn_small(cli, resnet_ckpt, small, forget, ws / "out", "-q")
    assert f"being written by another rfau run (pid {live_pid})" in one_error_line(result, 2)
    assert snapshot(ws.parent) == before  # their temporary directory is untouched


def test_a_relative_out_is_not_taken_for_another_runs(resnet_ckpt, small, ws, cli, monkeypatch) -> None:
    """`--out out` from the directory it goes into, with mkdtemp giving absolute paths as it does
    from Python 3.12 on: the run's own claim (`./.out.tmp-*` when listed) is not another run's."""
    import os
    import tempfile

    plain = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: os.path.abspath(plain(*a, **k)))
    monkeypatch.chdir(ws)
    forget = write(ws.parent / "forget.txt", f"{FORGET_CLASS}\n")
    result = unlearn_small(cli, resnet_ckpt, small, forget, Path("out"), "--by", "class", "--epochs", "1", "-q")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in ws.iterdir()) == ["out"] and (ws / "out" / "report.json").is_file()


def test_stale_temporaries_of_dead_runs_are_removed(resnet_ckpt, small, ws, cli) -> None:
    """A run killed during save (SIGKILL) leaves `.out.tmp-PID-*`; the next run to that --out removes it."""
    pid, start = dead_process()
    stale = write(ws / f".out.tmp-{pid}-{start}-dead01" / "model.safetensors", b"half").parent
    other = write(ws / ".other.tmp-1-0-keep01" / "x", b"not ours").parent  # another --out's: kept
    forget = write(ws.parent / "forget.txt", "1\n99999\n")
    result = unlearn_small(cli, resnet_ckpt, small, forget, ws / "out", "-q")
    one_error_line(result, 2)
    assert not stale.exists()
    assert other.exists()
    assert sorted(p.name for p in ws.iterdir()) == [other.name]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_fails_before_loading(resnet_ckpt, small, ws, cli) -> None:
    forget = write(ws.parent / "forget.txt", POISON)
    result = unlearn_small(cli, resnet_ckpt, small, forget, ws / "out", "--device", "cuda", "-q")
    assert "--device cuda: no CUDA device" in one_error_line(result, 2)
    assert list(ws.iterdir()) == []


def test_unexpected_exception_exits_3_in_one_line(resnet_ckpt, small, ws, cli, monkeypatch) -> None:
    """Any exception that is not an rfau error: exit 3 (never 1, which means a failed gate), one
    line naming it; --debug or RFAU_DEBUG=1 adds the traceback. Nothing is left behind."""
    from failing_method import MESSAGE

    from rfau_cli import methods

    monkeypatch.setitem(methods.REGISTRY, "boom", ("failing_method", "fails on purpose"))
    forget = write(ws.parent / "forget.txt", f"{FORGET_CLASS}\n")
    args = [
        "-m",
        resnet_ckpt,
        "-d",
        small["train"],
        "--by",
        "class",
        "-f",
        forget,
        "-o",
        ws / "out",
        "--method",
        "boom",
        "--save",
        "merged",
        "-q",
    ]
    before = snapshot(ws.parent)
    result = invoke(cli, "unlearn", *args)
    assert one_error_line(result, 3) == f"rfau: error: RuntimeError: {MESSAGE}"
    assert snapshot(ws.parent) == before

    result = invoke(cli, "--debug", "unlearn", *args)
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1] == f"rfau: error: RuntimeError: {MESSAGE}"
    monkeypatch.setenv("RFAU_DEBUG", "1")
    result = invoke(cli, "unlearn", *args)
    assert result.exit_code == 3 and "Traceback" in result.stderr
    assert snapshot(ws.parent) == before


def test_mixed_image_sizes_work_when_the_processor_resizes(resizing_ckpt, small, cli) -> None:
    result = invoke(
        cli,
        "audit",
        "-m",
        resizing_ckpt,
        "-d",
        small["mixed"],
        "--test-data",
        small["test"],
        "-f",
        write(small["root"] / "f-mixed.txt", f"{MIXED_ROWS[0]}\n{MIXED_ROWS[1]}\n"),
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sizes"]["forget"] == 2


def test_bom_and_crlf_sample_list(resnet_ckpt, small, tmp_path, cli) -> None:
    """A forget list saved by a Windows editor: UTF-8 byte-order mark and CRLF line ends."""
    forget = write(tmp_path / "ids.txt", "\ufeff3\r\n7\r\n# comment\r\n11\r\n".encode())
    result = invoke(
        cli,
        "audit",
        "-m",
        resnet_ckpt,
        "-d",
        small["train"],
        "--test-data",
        small["test"],
        "-f",
        forget,
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sizes"]["forget"] == 3


def test_stdin_on_a_terminal_says_it_is_waiting(capfd) -> None:
    """`-f -` with a terminal on stdin: one stderr line says what it waits for (a real pty)."""
    import pty

    from rfau_cli.data import read_forget_list

    master, slave = pty.openpty()
    saved = sys.stdin
    try:
        os.write(master, b"3\n5\n\x04")  # two ids, then Ctrl-D
        sys.stdin = os.fdopen(slave, "r", closefd=False)
        forget = read_forget_list("-")
    finally:
        sys.stdin.close()
        sys.stdin = saved
        os.close(master)
        os.close(slave)
    assert forget.ids == ("3", "5")
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "reading forget ids from stdin" in err


def test_same_seed_gives_byte_identical_outputs(resnet_ckpt, small, tmp_path, cli) -> None:
    """Two runs, in two processes with different hash seeds (set iteration order), give the same
    files byte for byte, adapter_config.json included; outputs follow the umask. The forget list
    is a class list with a BOM and CRLF line ends (item: such lists work in class mode)."""
    forget = write(tmp_path / "classes.txt", f"\ufeff{FORGET_CLASS}\r\n".encode())
    args = [
        "unlearn",
        "-m",
        resnet_ckpt,
        "-d",
        small["train"],
        "--test-data",
        small["test"],
        "--by",
        "class",
        "-f",
        forget,
        "--epochs",
        "1",
        "--seed",
        "3",
        "-q",
        "--json",
    ]
    old_umask = os.umask(0o027)
    try:
        first = invoke(cli, *args, "-o", tmp_path / "a")
        env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
        second = subprocess.run(
            [sys.executable, "-m", "rfau_cli", *map(str, args), "-o", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).parent,
        )
    finally:
        os.umask(old_umask)
    assert first.exit_code == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["forget_classes"] == [FORGET_CLASS]
    assert a["outputs"]["sha256"] == b["outputs"]["sha256"]
    assert "adapter/adapter_config.json" in a["outputs"]["sha256"]
    config = json.loads((tmp_path / "a" / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])
    for path in [tmp_path / "a", *(tmp_path / "a").rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("command", ["audit", "retrain", "bench"])
def test_other_commands_refuse_corrupt_weights_and_unwritable_out(command, resnet_ckpt, small, ws, cli) -> None:
    """The same checks guard every command: corrupt weights before any data is read; for the
    commands that write a directory, an --out that cannot be written."""
    tmp = ws.parent
    forget = write(tmp / "forget.txt", POISON)
    common = ["-d", small["train"], "--test-data", small["test"], "-f", forget, "-q"]
    bad = _truncated(tmp, resnet_ckpt)["--model"]
    before = snapshot(tmp, resnet_ckpt)
    out = [] if command == "audit" else ["-o", ws / "out"]
    result = invoke(cli, command, "-m", bad, *common, *out)
    assert "is not a valid safetensors file" in one_error_line(result, 2)
    if command != "audit" and UNWRITABLE:
        result = invoke(cli, command, "-m", resnet_ckpt, *common, "-o", "/sys/rfau-out")
        assert "cannot write --out /sys/rfau-out" in one_error_line(result, 2)
    assert snapshot(tmp, resnet_ckpt) == before
