"""Performance machinery, with real components and no timing asserts: the encoded-input cache
gives exactly the encoder's tensors, its DataLoader fallback gives the same unlearning, the
teacher is never run twice on a row, and the epoch count and stop reason are what the report
says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from conftest import invoke

from rfau_cli.input_cache import InputCache
from rfau_cli.methods.base import FitContext, is_flat
from rfau_cli.methods.loop import _Cursor
from rfau_cli.methods.rfau import RFAU


def _job(model: Path, digits: tuple[Path, Path], forget: Path, cache_mb: int = 2048, by: str = "class") -> Any:
    from rfau_cli.checkpoint import resolve_checkpoint
    from rfau_cli.job import prepare_job
    from rfau_cli.progress import Progress
    from rfau_cli.settings import DataSettings, RuntimeSettings

    data = DataSettings(digits[0], str(forget), by=by, test_data=digits[1])
    return prepare_job(
        resolve_checkpoint(model), data, RuntimeSettings(quiet=True, cache_mb=cache_mb), 0, Progress(True)
    )


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_cache_returns_the_encoders_tensors(resnet_ckpt, digits, class_forget_file) -> None:
    """Cached, partly cached, planned (DataLoader) and test-table batches are bit-identical to
    a fresh Encoder call on the same rows."""
    job = _job(resnet_ckpt, digits, class_forget_file)
    splits, enc = job.splits, job.encoder
    rng = np.random.default_rng(0)
    for budget in (1 << 30, 300 * 264, 0):  # everything, about 300 rows, nothing
        cache = InputCache(
            enc,
            splits.train,
            splits.labels,
            splits.test,
            splits.test_labels,
            budget_bytes=budget,
            priority=[(False, splits.forget)],
        )
        for _ in range(3):  # first encoding, then served from the store
            rows = rng.choice(len(splits.labels), 40, replace=False)
            _same(cache.get(rows), enc(splits.train, rows, splits.labels))
            _same(cache.get(splits.forget[:33]), enc(splits.train, splits.forget[:33], splits.labels))
        test_rows = np.arange(0, len(splits.test_labels), 7)
        _same(cache.get(test_rows, test=True), enc(splits.test, test_rows, splits.test_labels))
        chunks = [rng.choice(len(splits.labels), 32, replace=False) for _ in range(5)]
        for chunk, got in zip(chunks, cache.iterate(chunks)):
            _same(got, enc(splits.train, chunk, splits.labels))
        if budget == 0:
            assert cache.stats.rows_served == 0 and cache.stats.loader_batches == 5
        elif budget == 1 << 30:
            assert cache.stats.slots == len(splits.labels) + len(splits.test_labels)


def test_cursor_peek_is_what_take_returns() -> None:
    cursor = _Cursor(np.arange(10), np.random.default_rng(0))
    cursor.take(7)
    ahead = cursor.peek(25)
    assert np.array_equal(np.concatenate([cursor.take(5), cursor.take(20)]), ahead)
    plain = _Cursor(np.arange(10), np.random.default_rng(0))
    plain.take(7)
    assert np.array_equal(plain.take(25), ahead)  # peeking does not change the walk


def _unlearn(cli, model: Path, digits: tuple[Path, Path], forget: Path, out: Path, *extra: object) -> dict:
    result = invoke(
        cli,
        "unlearn",
        "--model",
        model,
        "--data",
        digits[0],
        "--test-data",
        digits[1],
        "--forget",
        forget,
        "--by",
        "class",
        "--out",
        out,
        "--quiet",
        "--json",
        "--save",
        "adapter",
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_no_cache_and_workers_give_the_same_unlearning(resnet_ckpt, digits, class_forget_file, tmp_path, cli) -> None:
    """--cache-mb 0 encodes every batch through the DataLoader (in process, then with two
    worker processes): the adapter is byte-identical to the cached run's."""
    runs = {
        name: _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / name, "--epochs", "2", *flags)
        for name, flags in (
            ("cached", ()),
            ("loader", ("--cache-mb", "0")),
            ("workers", ("--cache-mb", "0", "--workers", "2")),
        )
    }
    adapters = {name: r["outputs"]["sha256"]["adapter_model.safetensors"] for name, r in runs.items()}
    assert len(set(adapters.values())) == 1, adapters
    cached, loader = runs["cached"]["caches"]["inputs"], runs["loader"]["caches"]["inputs"]
    assert cached["rows_served"] > 0 and cached["rows_encoded"] <= cached["slots"]  # each row encoded once
    assert loader["slots"] == 0 and loader["rows_served"] == 0 and loader["loader_batches"] > 0
    assert runs["workers"]["settings"]["workers"] == 2 and runs["loader"]["settings"]["cache_mb"] == 0
    assert runs["cached"]["metrics"]["after"] == runs["workers"]["metrics"]["after"]


def test_teacher_runs_once_per_row(resnet_ckpt, digits, class_forget_file, tmp_path, cli, monkeypatch) -> None:
    """Every training row goes through the teacher at most once, forget rows included."""
    seen: list[np.ndarray] = []
    teacher = FitContext.teacher

    def counting(self: FitContext, batch: dict[str, Any]) -> Any:
        seen.append(np.asarray(batch["rows"]))  # class mode: the teacher sees training rows only
        return teacher(self, batch)

    monkeypatch.setattr(FitContext, "teacher", counting)
    report = _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "out", "--epochs", "3")
    rows = np.concatenate(seen)
    assert len(rows) == len(np.unique(rows)), "a row went through the teacher twice"
    stats = report["caches"]["teacher"]
    assert stats["rows_served"] > 0 and stats["forwards"] == len(seen)
    assert stats["rows_computed"] <= report["inputs"]["data_rows"]


def test_explicit_epochs_are_not_raised(resnet_ckpt, digits, class_forget_file, tmp_path, cli) -> None:
    """--epochs 1 runs exactly one epoch (RFAU's min_steps applies to its default only)."""
    report = _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "out", "--epochs", "1")
    training = report["training"]
    n_forget, batch = report["forget_count"], report["settings"]["batch_size"]
    assert training["epochs_requested"] == training["epochs_run"] == training["epochs"] == 1
    assert training["epochs_source"] == "user" and len(training["history"]) == 1
    assert training["steps"] == -(-n_forget // batch) < report["settings"]["min_steps"]
    assert training["stop_reason"] == "epochs cap (1)"


def test_a_large_sample_request_takes_larger_batches(resnet_ckpt, digits, tmp_path, cli) -> None:
    """RFAU's sample mode without --batch-size: 400 forgotten rows (over the 213 that the default
    epoch cap and step minimum meet at) go in batches of 56, so an epoch is 8 steps, not 13; the
    report says so. A user's --batch-size is used as given."""
    forget = tmp_path / "forget.txt"
    forget.write_text("\n".join(map(str, range(0, 1200, 3))) + "\n")  # 400 rows
    grown = _unlearn(cli, resnet_ckpt, digits, forget, tmp_path / "auto", "--by", "sample", "--epochs", "1")
    given = _unlearn(
        cli, resnet_ckpt, digits, forget, tmp_path / "given", "--by", "sample", "--epochs", "1", "--batch-size", "32"
    )
    assert grown["forget_count"] == 400
    assert (grown["training"]["batch_size"], grown["training"]["batch_size_source"]) == (56, "method default")
    assert grown["settings"]["batch_size"] == 56 and grown["training"]["steps"] == 8
    assert (given["training"]["batch_size"], given["training"]["batch_size_source"]) == (32, "user")
    assert given["training"]["steps"] == 13


def test_sample_batch_grows_with_the_request_only() -> None:
    """The rule itself: 32 up to 213 rows, then the batch at which 60 epochs give at least 400 steps
    (a multiple of 8, rounded down), never over 64; class mode, a user's batch and a zero step
    minimum as given."""
    from types import SimpleNamespace

    from rfau_cli.settings import MethodSettings

    def batch(rows: int, by: str = "sample", **given: Any) -> int:
        settings = MethodSettings(**given).resolved(RFAU, by)
        return RFAU().batch_size_for(settings, SimpleNamespace(by=by, forget=np.arange(rows)))

    assert [batch(n) for n in (30, 213, 250, 270, 405, 426, 427, 1078, 100_000)] == [32, 32, 32, 40, 56, 56, 64, 64, 64]
    assert batch(1078, "class") == 32
    assert batch(1078, batch_size=16) == 16
    assert batch(1078, sets=(("sample_min_steps", "0"),)) == 32
    assert batch(1078, sets=(("sample_epochs", "20"),)) == 48  # 1078 x 20 / 400 = 54 -> 48


class _StopsAtTwo(RFAU):
    """RFAU that declares itself converged after its second epoch."""

    name: ClassVar[str] = "rfau"

    def stop_reason(self, ctx: FitContext, record: dict[str, float]) -> str | None:
        return "converged: test criterion" if record["epoch"] == 2 else None


def test_stop_reason_ends_training_and_is_recorded(resnet_ckpt, digits, class_forget_file, tmp_path) -> None:
    from rfau_cli.commands.unlearn import run_unlearn
    from rfau_cli.settings import DataSettings, MethodSettings, RuntimeSettings, UnlearnConfig

    cfg = UnlearnConfig(
        model=resnet_ckpt,
        out=tmp_path / "out",
        data=DataSettings(digits[0], str(class_forget_file), by="class", test_data=digits[1]),
        save="adapter",
        hparams=MethodSettings(epochs=5),
        runtime=RuntimeSettings(quiet=True),
    )
    report = run_unlearn(cfg, method=_StopsAtTwo())
    training = report["training"]
    assert training["stop_reason"] == "converged: test criterion"
    assert training["epochs_run"] == 2 and training["epochs_cap"] == 5 and len(training["history"]) == 2


def test_is_flat() -> None:
    history = [{"retain": v} for v in (1.0, 0.5, 0.30, 0.301, 0.299)]
    assert is_flat(history, "retain", window=3)
    assert not is_flat(history[:4], "retain", window=3)
    assert not is_flat(history[:2], "retain", window=3)  # too few epochs to say


def test_retain_batches_come_from_a_bounded_pool(
    resnet_ckpt, digits, class_forget_file, tmp_path, cli, monkeypatch
) -> None:
    """Forget-driven methods draw retain batches from a seeded pool of RETAIN_POOL rows, so a
    run touches (encodes, sends through the teacher) the same number of rows whatever |D|."""
    import rfau_cli.methods.loop as loop

    taken: list[np.ndarray] = []
    take = _Cursor.take

    def recording(self: _Cursor, n: int) -> np.ndarray:
        rows = take(self, n)
        taken.append(rows)
        return rows

    monkeypatch.setattr(loop, "RETAIN_POOL", 64)
    monkeypatch.setattr(_Cursor, "take", recording)
    report = _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "out", "--epochs", "3")
    drawn = np.unique(np.concatenate(taken))
    assert len(drawn) == 64  # every pool row is used, and no other
    assert report["training"]["steps"] * 4 * 32 > 64  # the cursor went round the pool
