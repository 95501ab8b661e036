"""`rfau audit`, top to bottom:

    parse gates -> resolve checkpoints -> load data + model -> score model
    -> (LiRA: load or train reference models, score the model against them)
    -> (score original: distance, agreement) -> (score reference: metrics, gap)
    -> evaluate gates -> write JSON (and --per-sample)

Gates are parsed before anything is loaded, so a typo fails at once; whether a gate's key
exists is known only once the metrics are computed. The numbers come from audit.py, the same
functions `rfau unlearn` uses for its report. docs/audit.md documents every key.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import GateFailed, InputError
from rfau_cli.settings import AuditConfig

COMMAND = "audit"
# Gate keys are dotted paths into the JSON result with the leading "metrics." dropped
# ("forget.acc"); these top-level blocks keep their name ("reference.gap.avg_gap_pp").
GATE_BLOCKS = ("sizes", "original", "reference")
PER_SAMPLE_FORMATS = (".csv", ".jsonl")
PER_SAMPLE_FIELDS = ("split", "row", "score", "flagged")


def run_audit(cfg: AuditConfig) -> dict[str, Any]:
    """Audit one model and return the JSON result (also written to `cfg.out` when given).

    Raises:
        GateSyntaxError: a --require expression is malformed (before any work).
        UnknownGateKeyError: a gate names a key the result lacks (nothing is written).
        InputError: bad input, found before any work.
    """
    from rfau_cli.audit import compare_to_original
    from rfau_cli.checkpoint import resolve_checkpoint
    from rfau_cli.gates import evaluate_gates, gate_records, parse_gate
    from rfau_cli.job import prepare_job
    from rfau_cli.progress import Progress

    started = time.perf_counter()
    gates = [parse_gate(expr) for expr in cfg.require]
    attacks = check_attacks(cfg.attacks)
    _check_out_file(cfg.out)
    reference_dir = check_lira(cfg, attacks)
    if cfg.data.test_data is None:
        raise InputError("audit needs --test-data: held-out rows are the attacks' non-members")
    ref = resolve_checkpoint(cfg.model, cfg.adapter)
    others = {
        name: resolve_checkpoint(path)
        for name, path in (("original", cfg.original), ("reference", cfg.reference))
        if path
    }
    for name, other in others.items():
        _check_compatible(ref, other, name)
    with Progress(cfg.runtime.quiet) as progress:
        with progress.phase("load"):
            job = prepare_job(ref, cfg.data, cfg.runtime, cfg.seed, progress)
        with progress.phase("audit"):
            scores, metrics = job.audit(job.model, attacks)
        calibration = per_sample = None
        if reference_dir is not None:
            with progress.phase("lira"):
                calibration = calibrate(job, cfg.lira, reference_dir)
                per_sample = add_lira(metrics, scores, calibration, job)
        result = build_result(cfg, job, metrics)
        if calibration is not None:
            result["lira"] = {**calibration.info, "threshold_1pct_fpr": per_sample["threshold"]}
        original = None
        if "original" in others:
            with progress.phase("original"):
                original = _score(job, others["original"])
            result["original"] = compare_to_original(scores, original)
        if "reference" in others:
            with progress.phase("reference"):
                result["reference"] = reference_block(
                    job, others["reference"], attacks, result, original, calibration
                )
    result["timings_s"] = {
        **{k: round(v, 3) for k, v in progress.phases.items()},
        "total": round(time.perf_counter() - started, 3),
    }
    checked = evaluate_gates(gates, gate_values(result))
    result["gates"] = gate_records(checked)
    result["passed"] = all(r.passed for r in checked)
    if cfg.out is not None:
        _write_atomic(result, cfg.out)
    if cfg.per_sample is not None and per_sample is not None:
        write_per_sample(per_sample, cfg.per_sample)
    return result


def check_lira(cfg: AuditConfig, attacks: tuple[str, ...]) -> Path | None:
    """The LiRA flags, before any work: the cache directory to use (None: no LiRA).

    Raises:
        InputError: a LiRA flag without `lira` in --attacks, a bad --reference-dir or
            --per-sample, or a --retrain-init that does not fit the model.
    """
    from rfau_cli.audit import LIRA
    from rfau_cli.reference_models import check_reference_dir

    if LIRA not in attacks:
        if cfg.per_sample is not None or cfg.lira_given:
            raise InputError("--references, --reference-dir, --retrain-* and --per-sample need --attacks ...,lira")
        return None
    if cfg.per_sample is not None:
        if cfg.per_sample.suffix.lower() not in PER_SAMPLE_FORMATS:
            raise InputError(f"--per-sample {cfg.per_sample}: name a .csv or .jsonl file")
        if cfg.per_sample.exists():
            raise InputError(f"--per-sample {cfg.per_sample} already exists; choose a new file")
        if not cfg.per_sample.parent.is_dir():
            raise InputError(f"parent directory of --per-sample does not exist: {cfg.per_sample.parent}")
    if cfg.lira.init is not None:
        from rfau_cli.commands.retrain import _check_init

        _check_init(cfg.model, cfg.lira.init)
    return check_reference_dir(cfg.lira.reference_dir)


def calibrate(job: Any, lira: Any, reference_dir: Path) -> Any:
    """LiRA's references (cached or retrained now, through `rfau retrain`'s method and loop)."""
    from rfau_cli.commands.retrain import Retrain
    from rfau_cli.methods.loop import train
    from rfau_cli.reference_models import build_calibration

    return build_calibration(job, lira, Retrain(lira.init), train, reference_dir)


def add_lira(metrics: dict[str, Any], scores: dict[str, Any], calibration: Any, job: Any) -> dict[str, Any]:
    """Put LiRA's numbers under metrics["mia"]["lira"]; return the per-sample scores and threshold."""
    from rfau_cli.audit import lira_metrics

    numbers, parts, threshold = lira_metrics(scores, calibration, job.splits.forget_classes)
    metrics.setdefault("mia", {})["lira"] = numbers
    return {"parts": parts, "threshold": threshold, "candidates": calibration.candidates}


def build_result(cfg: AuditConfig, job: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """The JSON header: what was audited, how, on how many rows; then the model's metrics."""
    from rfau_cli.audit import RETAIN_SAMPLE_MIN
    from rfau_cli.checkpoint import weights_sha256
    from rfau_cli.report import report_header
    from rfau_cli.runtime import precision_name

    splits, sizes = job.splits, metrics.pop("sizes")
    if splits.forget_classes:
        in_forget = int(np.isin(splits.test_labels, splits.forget_classes).sum())
        sizes.update(test_forget=in_forget, test_retain=sizes["test"] - in_forget)
    return {
        **report_header(COMMAND),
        "inputs": {
            "model": str(job.ref.dir),
            "adapter": str(job.ref.adapter_dir) if job.ref.adapter_dir else None,
            "architecture": job.ref.architecture,
            "weights_sha256": weights_sha256(job.ref),
            "data": str(cfg.data.data),
            "data_fingerprint": splits.fingerprint,
            "test_data": str(cfg.data.test_data),
            "forget_list": job.forget.source,
            "forget_list_sha256": job.forget.sha256,
            "original": str(cfg.original) if cfg.original else None,
            "reference": str(cfg.reference) if cfg.reference else None,
        },
        "settings": {
            "by": splits.by,
            "forget_classes": list(splits.forget_classes),
            "concentrated_classes": list(job.concentrated_classes()),
            "split": cfg.data.split,
            "id_column": cfg.data.id_column,
            "columns": {"input": splits.columns.input, "label": splits.columns.label},
            "attacks": list(check_attacks(cfg.attacks)),
            "require": list(cfg.require),
            "seed": cfg.seed,
            # D_r is scored on a seeded sample of at most this many rows: max(|test|, 2000).
            "retain_sample_max": max(sizes["test"], RETAIN_SAMPLE_MIN),
            "device": str(job.accelerator.device),
            "precision": precision_name(job.accelerator),
        },
        "sizes": sizes,
        "metrics": metrics,
    }


def reference_block(
    job: Any, ref: Any, attacks: tuple[str, ...], result: dict[str, Any], original: Any, calibration: Any = None
) -> dict[str, Any]:
    """The reference model's metrics (and distance to the original), and the gap to them."""
    from rfau_cli.audit import compare_to_original, reference_gap

    ref_scores, ref_metrics = job.audit(_load(ref), attacks)
    if calibration is not None:
        add_lira(ref_metrics, ref_scores, calibration, job)
    ref_metrics.pop("sizes")
    block: dict[str, Any] = {"metrics": ref_metrics}
    mine, theirs = dict(result["metrics"]), dict(ref_metrics)
    if original is not None:
        block["original"] = theirs["original"] = compare_to_original(ref_scores, original)
        mine["original"] = result["original"]
    block["gap"] = reference_gap(mine, theirs)
    return block


def gate_values(result: dict[str, Any]) -> dict[str, float]:
    """Every number a --require key can name: `metrics.*` without the prefix, and the
    `sizes`, `original` and `reference` blocks under their own names."""
    from rfau_cli.gates import flatten

    return flatten({**result["metrics"], **{k: result[k] for k in GATE_BLOCKS if k in result}})


def check_gates(result: dict[str, Any]) -> None:
    """Raise GateFailed (exit 1) naming every gate that did not hold."""
    failed = [g for g in result.get("gates", []) if not g["passed"]]
    if failed:
        detail = "; ".join(f"{g['expr']} (actual {_number(g['actual'])})" for g in failed)
        raise GateFailed(f"{len(failed)} of {len(result['gates'])} gate(s) failed: {detail}")


def check_attacks(attacks: tuple[str, ...]) -> tuple[str, ...]:
    from rfau_cli.audit import ALL_ATTACKS

    unknown = [a for a in attacks if a not in ALL_ATTACKS]
    if unknown or not attacks:
        raise InputError(
            f"--attacks: unknown attack {', '.join(unknown) or '(none)'}; choose from {', '.join(ALL_ATTACKS)}"
        )
    return tuple(dict.fromkeys(attacks))


def _number(value: float) -> str:
    return "nan" if value != value else f"{value:.4g}"


def _check_out_file(out: Path | None) -> None:
    if out is None:
        return
    if out.exists():
        raise InputError(f"--out {out} already exists; choose a new file")
    if not out.parent.is_dir():
        raise InputError(f"parent directory of --out does not exist: {out.parent}")


def _check_compatible(ref: Any, other: Any, flag: str) -> None:
    """--original and --reference are scored with the audited model's preprocessing and labels."""
    if (other.task, other.num_labels) != (ref.task, ref.num_labels):
        raise InputError(
            f"--{flag} {other.dir} is a {other.task} classifier with {other.num_labels} classes; "
            f"the audited model is a {ref.task} classifier with {ref.num_labels}"
        )


def _load(ref: Any) -> Any:
    from rfau_cli.checkpoint import load_model

    return load_model(ref)


def _score(job: Any, ref: Any) -> dict[str, Any]:
    """Per-sample outputs of another checkpoint on the same rows (no metrics)."""
    from rfau_cli.audit import score

    model = _load(ref).to(job.accelerator.device).eval()
    return score(model, job.inputs or job.encoder, job.splits, job.rows, job.accelerator, job.progress)


def write_per_sample(per_sample: dict[str, Any], out: Path) -> None:
    """One line a candidate (D_f, the D_r sample, test): split, row index in its table, LiRA
    score, flagged (score above the 1% FPR threshold of the test rows). CSV or JSONL by suffix."""
    import csv
    import io
    import json

    candidates = per_sample["candidates"]
    rows = {"forget": candidates.forget, "retain": candidates.retain, "test": candidates.test}
    records = [
        {"split": split, "row": int(row), "score": float(value), "flagged": bool(value > per_sample["threshold"])}
        for split, values in per_sample["parts"].items()
        for row, value in zip(rows[split], values)
    ]
    if out.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=PER_SAMPLE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    _write_text_atomic(text, out)


def _write_text_atomic(text: str, out: Path) -> None:
    from rfau_cli.checkpoint import current_umask

    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomic(result: dict[str, Any], out: Path) -> None:
    """Write next to `out`, then rename, so a reader never sees half a file."""
    from rfau_cli.checkpoint import current_umask
    from rfau_cli.report import write_report

    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        write_report(result, Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a report follows the umask
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
