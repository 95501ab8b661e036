"""`rfau bench`: every method against a retrained reference, on the same inputs and seeds.

    check inputs -> per seed: reference (retrain, or score --reference) -> each method
                 -> gaps to the reference -> mean/spread over seeds -> bench.json/.md/.png

Each method runs through `run_unlearn` (quiet) into `out/runs/{method}-s{seed}`; the reference
through `run_retrain` into `out/runs/retrain-s{seed}`. A method that fails is recorded with
its error and the bench goes on. Bad input (found before the first run or while loading the
reference) is exit 2 with nothing written; `--out` is written atomically.

Numbers (docs/bench.md): UA = 1 - acc(D_f), RA = acc(D_r sample), TA = acc(test), MIA-efficacy
(SVC, confidence), loss-attack AUC; the average gap is `audit.reference_gap`'s avg_gap_pp, the
mean absolute gap in percentage points over UA, RA, TA and MIA-efficacy (SalUn's Avg. Gap).
Time is the unlearning itself (the run's setup + fit phases), not loading or auditing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import InputError
from rfau_cli.settings import BenchConfig, RetrainConfig, UnlearnConfig

BENCH_JSON = "bench.json"
BENCH_MD = "bench.md"
BENCH_PNG = "bench.png"
RUNS_DIR = "runs"
REFERENCE = "retrain"
# Bench column -> key of the flattened audit metrics (TA: see _selected).
METRICS = {"ua": "forget.ua", "ra": "retain.acc", "ta": "test.acc", "mia_efficacy": "mia.efficacy", "loss_auc": "mia.loss_auc"}
# Columns aggregated over seeds (mean and spread).
NUMBERS = (*METRICS, "avg_gap_pp", "time_s", "total_s", "peak_memory_mib", "trainable_parameters")
RSS_POLL_S = 0.05  # how often the memory sampler reads the resident set size


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the bench and return what bench.json holds.

    Raises:
        InputError: bad input (before any run, or while loading the reference); nothing is written.
    """
    from rfau_cli.bench_render import render_markdown, render_plot
    from rfau_cli.checkpoint import atomic_output_dir
    from rfau_cli.progress import Progress
    from rfau_cli.report import SCHEMA_VERSION, library_versions, write_report

    started = time.perf_counter()
    names = check_bench(cfg)
    runs: list[dict[str, Any]] = []
    with Progress(cfg.runtime.quiet) as progress, atomic_output_dir(cfg.out) as tmp:
        (tmp / RUNS_DIR).mkdir()
        task = progress.add_task("bench", total=len(cfg.seeds) * (len(names) + 1))
        for seed in cfg.seeds:
            reference = _reference_run(cfg, seed, tmp)
            runs.append(_log(progress, reference))
            progress.advance(task)
            for name in names:
                run = _method_run(cfg, name, seed, tmp)
                if run["status"] == "ok" and reference["status"] == "ok":
                    run["gap"] = _gap(run.pop("audit"), reference["audit"])
                run.pop("audit", None)
                runs.append(_log(progress, run))
                progress.advance(task)
            reference.pop("audit", None)
        result = {
            "schema_version": SCHEMA_VERSION,
            "tool": "rfau",
            "command": "bench",
            "versions": library_versions(),
            "settings": cfg.as_dict(),
            "reference": {"source": "checkpoint" if cfg.reference else "retrain", "path": _str(cfg.reference)},
            "methods": names,
            "seeds": list(cfg.seeds),
            "runs": runs,
            "summary": summarize(runs, [REFERENCE, *names]),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "files": [BENCH_JSON, BENCH_MD, BENCH_PNG],
        }
        write_report(result, tmp / BENCH_JSON)
        (tmp / BENCH_MD).write_text(render_markdown(result))
        render_plot(result, tmp / BENCH_PNG)
    return result


def check_bench(cfg: BenchConfig) -> list[str]:
    """Validate what can be checked without loading anything; return the method names."""
    from rfau_cli.checkpoint import check_output_dir, resolve_checkpoint
    from rfau_cli.methods import REGISTRY

    check_output_dir(cfg.out)
    if cfg.data.test_data is None:
        raise InputError("rfau bench needs --test-data: TA and the membership attacks use held-out rows")
    if cfg.data.forget == "-":
        raise InputError("rfau bench reads the forget list once per run: give a file, not '-'")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise InputError(f"--seeds must be distinct integers, got {list(cfg.seeds)}")
    names = list(dict.fromkeys(cfg.methods)) or list(REGISTRY)
    if REFERENCE in names:
        raise InputError("retrain is the reference, not a method: it runs unless --reference is given")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(REGISTRY)}")
    model = resolve_checkpoint(cfg.model)
    if cfg.reference is not None:
        ref = resolve_checkpoint(cfg.reference)
        if ref.num_labels != model.num_labels:
            raise InputError(f"--reference {cfg.reference} has {ref.num_labels} labels; --model has {model.num_labels}")
    return names


def _reference_run(cfg: BenchConfig, seed: int, out: Path) -> dict[str, Any]:
    """Retrain (or score the given reference) for one seed; input errors propagate (exit 2)."""
    record: dict[str, Any] = {"method": REFERENCE, "role": "reference", "seed": seed}
    try:
        if cfg.reference is not None:
            return {**record, "path": str(cfg.reference), **_score_reference(cfg, seed)}
        from rfau_cli.retrain import run_retrain

        run_dir = out / RUNS_DIR / f"{REFERENCE}-s{seed}"
        retrain = RetrainConfig(
            model=cfg.model, out=run_dir, data=cfg.data, init=cfg.retrain_init,
            hparams=replace(cfg.retrain_hparams, seed=seed), runtime=replace(cfg.runtime, quiet=True, json=False),
        )
        with peak_memory() as peak:
            report = run_retrain(retrain)
        return {**record, "dir": f"{RUNS_DIR}/{run_dir.name}", **_numbers(report, peak)}
    except InputError:
        raise
    except Exception as err:  # any other failure of one run is recorded; the bench goes on
        return {**record, "status": "failed", "error": one_line(err)}


def _score_reference(cfg: BenchConfig, seed: int) -> dict[str, Any]:
    """Audit the given reference with the Job every method is audited with (same rows, seed)."""
    from rfau_cli.checkpoint import load_model, resolve_checkpoint
    from rfau_cli.job import prepare_job
    from rfau_cli.progress import Progress

    job = prepare_job(resolve_checkpoint(cfg.model), cfg.data, cfg.runtime, seed, Progress(quiet=True))
    _, metrics = job.audit(load_model(resolve_checkpoint(cfg.reference)))
    return {"status": "ok", "audit": metrics, "metrics": _selected(metrics)}


def _method_run(cfg: BenchConfig, name: str, seed: int, out: Path) -> dict[str, Any]:
    """One method, one seed, through `run_unlearn`; any failure becomes a record."""
    from rfau_cli.methods import load_method
    from rfau_cli.unlearn import run_unlearn

    run_dir = out / RUNS_DIR / f"{name}-s{seed}"
    record: dict[str, Any] = {"method": name, "role": "method", "seed": seed, "dir": f"{RUNS_DIR}/{run_dir.name}"}
    try:
        with peak_memory() as peak:
            method = load_method(name)
            # Small outputs: the adapter for LoRA methods, the weights for the others.
            save = "adapter" if method.uses_lora else "merged"
            unlearn = UnlearnConfig(
                model=cfg.model, out=run_dir, data=cfg.data, method=name, save=save,
                hparams=replace(cfg.hparams, seed=seed), runtime=replace(cfg.runtime, quiet=True, json=False),
            )
            report = run_unlearn(unlearn, method=method)
    except Exception as err:  # a failing method is a result of the bench, not its end
        record.pop("dir")  # nothing was written: run_unlearn's output is atomic
        return {**record, "status": "failed", "error": one_line(err)}
    return {**record, **_numbers(report, peak)}


def _numbers(report: dict[str, Any], peak: dict[str, float]) -> dict[str, Any]:
    after = report["metrics"]["after"]
    timings = report["timings_s"]
    memory = {**report.get("peak_memory_mib", {}), **peak}
    return {
        "status": "ok",
        "audit": after,
        "metrics": _selected(after),
        "time_s": round(timings.get("setup", 0.0) + timings.get("fit", 0.0), 3),
        "total_s": timings.get("total"),
        "peak_memory_mib": memory.get("cuda_mib", memory.get("cpu_rss_mib")),
        "peak_memory": memory,
        "trainable_parameters": report.get("trainable_parameters"),
    }


def _selected(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The table's numbers. In class forgetting TA is the kept classes' test accuracy (SalUn)."""
    from rfau_cli.gates import flatten

    flat = flatten(metrics)
    keys = {**METRICS, "ta": "test_retain.acc" if "test_retain.acc" in flat else "test.acc"}
    return {name: flat.get(key) for name, key in keys.items()}


def _gap(metrics: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The Avg. Gap from `audit.reference_gap`, and the gap of each table number (pp)."""
    from rfau_cli.audit import reference_gap

    gap = reference_gap(metrics, reference)
    mine, ref = _selected(metrics), _selected(reference)
    per_metric = {
        k: None if mine[k] is None or ref[k] is None else abs(mine[k] - ref[k]) * 100 for k in METRICS
    }
    return {"avg_gap_pp": gap["avg_gap_pp"], "avg_gap_keys": list(gap.get("avg_gap_keys", [])), "per_metric_pp": per_metric}


def summarize(runs: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row a method: mean and spread (sample std; None with one seed) of each number."""
    rows = []
    for name in names:
        mine = [r for r in runs if r["method"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        status = "ok" if len(ok) == len(mine) else ("failed" if not ok else "partial")
        row: dict[str, Any] = {"method": name, "status": status, "seeds_ok": len(ok), "seeds": len(mine)}
        row["errors"] = [f"seed {r['seed']}: {r['error']}" for r in mine if r["status"] != "ok"]
        for key in NUMBERS:
            values = [_value(r, key) for r in ok]
            row[key] = _mean_std([v for v in values if v is not None])
        rows.append(row)
    return rows


def _value(run: dict[str, Any], key: str) -> float | None:
    if key in METRICS:
        return run["metrics"].get(key)
    if key == "avg_gap_pp":
        return 0.0 if run["method"] == REFERENCE else run.get("gap", {}).get("avg_gap_pp")
    return run.get(key)


def _mean_std(values: list[float]) -> dict[str, float | None]:
    values = [float(v) for v in values if v == v]  # NaN (a metric that could not be computed) is left out
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "n": len(values)}


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else '(no message)'}"


def _log(progress: Any, run: dict[str, Any]) -> dict[str, Any]:
    if run["status"] != "ok":
        progress.log(f"[red]{run['method']}[/] seed {run['seed']}: failed: {run['error']}")
        return run
    gap = run.get("gap", {}).get("avg_gap_pp")
    gap_text = f"avg gap {gap:.2f} pp" if gap is not None else "reference"
    time_text = f", {run['time_s']:.1f}s" if run.get("time_s") is not None else ""
    progress.log(f"[bold]{run['method']}[/] seed {run['seed']}: {gap_text}{time_text}")
    return run


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


@contextlib.contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Peak memory of the block, in MiB: the process's resident set (sampled; Linux) and CUDA.

    `ru_maxrss` only grows within a process, so runs after the first would all report the
    largest so far; sampling the current RSS gives each run its own peak.
    """
    import torch

    out: dict[str, float] = {}
    statm = Path("/proc/self/statm")
    page_mib = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024) if hasattr(os, "sysconf") else 0.0
    stop = threading.Event()
    peak = [0.0]

    def sample() -> None:
        while True:
            with contextlib.suppress(OSError, ValueError, IndexError):
                peak[0] = max(peak[0], int(statm.read_text().split()[1]) * page_mib)
            if stop.wait(RSS_POLL_S):
                return

    sampler = threading.Thread(target=sample, daemon=True) if statm.exists() else None
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if sampler is not None:
        sampler.start()
    try:
        yield out
    finally:
        stop.set()
        if sampler is not None:
            sampler.join()
            out["cpu_rss_mib"] = round(peak[0], 1)
        if torch.cuda.is_available():
            out["cuda_mib"] = round(torch.cuda.max_memory_allocated() / (1024 * 1024), 1)
