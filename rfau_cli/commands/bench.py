"""`rfau bench`: every method against several retrained references, on the same inputs.

    check inputs -> references (retrain once per --reference-seeds, or the --reference paths)
                 -> the floor (gap between references) and "none" (the original model)
                 -> per method seed: each method -> gap to every reference -> share closed
                 -> mean/spread over seeds -> bench.json/.md/.png

Each method runs through `run_unlearn` (quiet) into `out/runs/{method}-s{seed}`; a retrained
reference through `run_retrain` into `out/runs/retrain-s{seed}`. A run that fails is recorded
with its error and the bench goes on. Bad input (found before the first run or while loading
a reference) is exit 2 with nothing written; `--out` is written atomically.

Why every model is audited again here: each run's own report audits with that run's seed (its
own D_r sample and attack seed). Gaps between models of different seeds would then mix
audit noise into the noise floor. The bench audits the original, every reference and every
method output once more with one shared Job (seed = the first of --seeds), so every gap
compares two models on the same rows with the same attacks.

Numbers (docs/bench.md): UA = 1 - acc(D_f), RA = acc(D_r sample), TA = acc(test), MIA-efficacy
(SVC, confidence), loss-attack AUC; a gap between two models is `audit.reference_gap`'s
avg_gap_pp (SalUn's Avg. Gap, mean |difference| over UA, RA, TA, MIA-efficacy in pp).

- floor = mean gap over all pairs of references (two retrains of different seeds): the best
  any method can reach, since the references disagree among themselves this much;
- a run's gap = mean of its gaps to each reference; "none" (the original, doing nothing) too;
- share closed = (gap_none - gap) / (gap_none - floor): 1 is as close as another retrain,
  0 is no better than doing nothing (undefined without a floor or with nothing to remove);
- loss_auc_gap = |loss-attack AUC - mean AUC of the references|.
Time is the unlearning itself (the run's setup + fit phases), not loading or auditing.

With `--attacks ...,lira` LiRA's reference models are loaded or trained once per bench
(reference_models.py, cached in --reference-dir) on the shared Job's rows, and every row of
the table (references, none, methods) gets its LiRA AUC and TPR at 1% FPR against them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import InputError
from rfau_cli.runtime import peak_memory
from rfau_cli.same_time import plan_same_time, same_time_label
from rfau_cli.settings import BenchConfig, RetrainConfig, UnlearnConfig

BENCH_JSON = "bench.json"
BENCH_MD = "bench.md"
BENCH_PNG = "bench.png"
RUNS_DIR = "runs"
REFERENCE = "retrain"
NONE = "none"  # the row of doing nothing: the original model
# Bench column -> key of the flattened audit metrics (TA: see _selected).
METRICS = {
    "ua": "forget.ua",
    "ra": "retain.acc",
    "ta": "test.acc",
    "mia_efficacy": "mia.efficacy",
    "loss_auc": "mia.loss_auc",
    "lira_auc": "mia.lira.auc",  # None unless --attacks holds lira
    "lira_tpr": "mia.lira.tpr_at_1pct_fpr",
    # sample mode: test rows of the classes a request takes 30% or more of, and of the others (audit.py)
    "ta_concentrated": "test_concentrated.acc",
    "ta_others": "test_others.acc",
}
# Numbers a run's "gap" holds.
GAP_NUMBERS = ("avg_gap_pp", "loss_auc_gap", "share_closed")
# The avg gap's four metrics, whose gaps the bench also reports one by one (`per_metric_gap_pp`).
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")
# Columns aggregated over seeds (mean and spread).
NUMBERS = (*METRICS, *GAP_NUMBERS, "time_s", "total_s", "peak_memory_mib", "trainable_parameters")


@dataclass
class Auditor:
    """Audits a model with the bench's one Job and attacks (and LiRA's references, when chosen)."""

    job: Any
    attacks: tuple[str, ...]
    calibration: Any = None
    # The test rows' log-probabilities under the model audited last: the references' and the
    # original's give the class slope (class_slope.py) without scoring them twice.
    test_log_probs: Any = None

    def __call__(self, model: Any) -> dict[str, Any]:
        from rfau_cli.commands.audit import add_lira

        scores, metrics = self.job.audit(model, self.attacks)
        if self.calibration is not None:
            add_lira(metrics, scores, self.calibration, self.job)
        self.test_log_probs = scores["test"].log_probs if "test" in scores else None
        return metrics


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference: retrained with `seed`, or the checkpoint at `path`."""

    label: str
    seed: int | None = None
    path: Path | None = None


def reference_specs(cfg: BenchConfig) -> list[ReferenceSpec]:
    """The references of the bench: the given paths, else one retrain per reference seed.

    Without --reference-seeds the retrain seeds are the method seeds (one retrain a seed, as
    the bench always did).
    """
    if cfg.references:
        return [ReferenceSpec(str(p), path=Path(p)) for p in cfg.references]
    return [ReferenceSpec(f"{REFERENCE}-s{s}", seed=s) for s in (cfg.reference_seeds or cfg.seeds)]


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the bench and return what bench.json holds.

    Raises:
        InputError: bad input (before any run, or while loading a reference); nothing is written.
    """
    from rfau_cli.checkpoint import atomic_output_dir
    from rfau_cli.commands.audit import calibrate
    from rfau_cli.commands.bench_render import render_markdown, render_plot
    from rfau_cli.progress import Progress
    from rfau_cli.report import report_header, write_report

    started = time.perf_counter()
    names = check_bench(cfg)
    attacks, lira_dir = check_bench_attacks(cfg)
    specs = reference_specs(cfg)
    runs: list[dict[str, Any]] = []
    # `--out` is claimed first (its temporary sibling created now, removed on any failure).
    with Progress(cfg.runtime.quiet) as progress, atomic_output_dir(cfg.out) as tmp:
        job = _audit_job(cfg)  # loads data and model: label/id errors are exit 2 here, before any run
        auditor = Auditor(job, attacks)
        if lira_dir is not None:  # once per bench, shared by every row
            auditor.calibration = calibrate(replace(job, progress=progress), cfg.lira, lira_dir)
        (tmp / RUNS_DIR).mkdir()
        task = progress.add_task("bench", total=len(specs) + len(cfg.seeds) * len(names))
        references = []
        for spec in specs:
            references.append(_reference_run(cfg, spec, tmp, auditor))
            progress.advance(task)
        ok_refs = [r for r in references if r["status"] == "ok"]
        floor = noise_floor([r["audit"] for r in ok_refs], [r["label"] for r in ok_refs])
        auc_ref = _mean([r["metrics"]["loss_auc"] for r in ok_refs])
        for ref in references:
            if ref["status"] == "ok":
                ref["gap"] = _reference_gap_to_others(ref, ok_refs, auc_ref)
            runs.append(_log(progress, ref))
        none = _none_run(auditor, ok_refs, auc_ref, floor["mean"])
        slopes = _class_slopes(job, none, ok_refs)
        unseen = _unseen_rows(cfg, job, none, ok_refs)
        gap_none = none.get("gap", {}).get("avg_gap_pp")
        runs.append(_log(progress, none))

        def judged(run: dict[str, Any]) -> dict[str, Any]:
            if run["status"] == "ok" and ok_refs:
                run["gap"] = gap_to_references(run["audit"], ok_refs, auc_ref)
                run["gap"]["share_closed"] = share_closed(gap_none, run["gap"]["avg_gap_pp"], floor["mean"])
            run.pop("audit", None)
            return _log(progress, run)

        for seed in cfg.seeds:
            for name in names:
                runs.append(judged(_method_run(cfg, name, seed, tmp, auditor)))
                progress.advance(task)
        same_time, rows = None, list(names)
        if cfg.same_time_as is not None:  # after every default run: the plan takes their mean times
            same_time = plan_same_time(runs, cfg.same_time_as, names)
            planned = {n: p["epochs"] for n, p in same_time["methods"].items() if p["epochs"] is not None}
            rows += [same_time_label(n, cfg.same_time_as) for n in planned]
            matched = progress.add_task(f"same time as {cfg.same_time_as}", total=len(cfg.seeds) * len(planned))
            for seed in cfg.seeds:
                for name, epochs in planned.items():
                    label = same_time_label(name, cfg.same_time_as)
                    runs.append(judged(_method_run(cfg, name, seed, tmp, auditor, label=label, epochs=epochs)))
                    progress.advance(matched)
        for run in runs:
            run.pop("audit", None)
            run.pop("test_log_probs", None)
        summary = summarize(runs, [REFERENCE, NONE, *rows], floor)
        result = {
            **report_header("bench"),
            "settings": cfg.as_dict(),
            "reference": {
                "source": "checkpoint" if cfg.references else "retrain",
                "path": str(cfg.references[0]) if len(cfg.references) == 1 else None,
                "paths": [str(p) for p in cfg.references],
                "seeds": [s.seed for s in specs if s.seed is not None],
                "labels": [s.label for s in specs],
            },
            "audit_seed": job.seed,
            "attacks": list(attacks),
            "lira": auditor.calibration.info if auditor.calibration is not None else None,
            "methods": names,
            "same_time": same_time,
            "seeds": list(cfg.seeds),
            "floor": floor,
            "none": {
                "avg_gap_pp": none.get("gap", {}).get("avg_gap_pp_stats"),
                "loss_auc": none.get("metrics", {}).get("loss_auc"),
            },
            "removable_gap_pp": removable_gap(gap_none, floor["mean"]),
            "removable_by_metric_pp": removable_by_metric(summary),
            "class_slope": {"classes": slopes, "rfau_used": _rfau_class_slope(cfg, names, job, slopes)},
            "unseen_rows": unseen,
            "reference_loss_auc": auc_ref,
            "runs": runs,
            "summary": summary,
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
    if len(set(cfg.reference_seeds)) != len(cfg.reference_seeds):
        raise InputError(f"--reference-seeds must be distinct integers, got {list(cfg.reference_seeds)}")
    if cfg.references and cfg.reference_seeds:
        raise InputError(
            "--reference and --reference-seeds exclude each other: give checkpoints or seeds to retrain with"
        )
    if len({Path(p).resolve() for p in cfg.references}) != len(cfg.references):
        raise InputError("--reference names the same checkpoint twice: the floor needs distinct retrains")
    names = list(dict.fromkeys(cfg.methods)) or list(REGISTRY)
    if REFERENCE in names or NONE in names:
        raise InputError(
            f"{REFERENCE} is the reference and {NONE} the original model: rows of every bench, not methods"
        )
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(REGISTRY)}")
    if cfg.same_time_as is not None:
        if cfg.same_time_as not in names:
            raise InputError(f"--same-time-as {cfg.same_time_as}: not one of the methods benched ({', '.join(names)})")
        if len(names) < 2:
            raise InputError("--same-time-as needs another method to give that time to: add it to --methods")
    model = resolve_checkpoint(cfg.model)
    check_sets(cfg.hparams.sets, names, model)
    for path in cfg.references:
        ref = resolve_checkpoint(path)
        if ref.num_labels != model.num_labels:
            raise InputError(f"--reference {path} has {ref.num_labels} labels; --model has {model.num_labels}")
    return names


def check_bench_attacks(cfg: BenchConfig) -> tuple[tuple[str, ...], Path | None]:
    """The attacks, and LiRA's checked cache directory (None without lira); exit 2 on bad values."""
    from rfau_cli.audit import LIRA
    from rfau_cli.commands.audit import check_attacks
    from rfau_cli.reference_models import check_reference_dir

    attacks = check_attacks(cfg.attacks)
    return attacks, check_reference_dir(cfg.lira.reference_dir) if LIRA in attacks else None


def check_sets(sets: tuple[tuple[str, str], ...], names: list[str], model: Any) -> None:
    """Each `--set` key must be a parameter of at least one chosen method, its value valid there,
    and a class it names (RFAU's `class_slopes`) one of `model`'s.

    Raises:
        InputError: a key no chosen method has (the keys they have are listed), or a bad value.
    """
    from rfau_cli.methods import method_class

    classes = [method_class(n) for n in names]
    for key, _ in sets:
        if not any(key in _param_names(c) for c in classes):
            valid = sorted({k for c in classes for k in _param_names(c)})
            raise InputError(
                f"--set {key}: no chosen method has such a parameter; valid: {', '.join(valid) if valid else 'none'}"
            )
    for c in classes:  # bad values exit 2 before any run
        c.check_params(c.Params.from_strings(dict(sets_for(sets, c)), c.name), model.id2label, model.num_labels)


def sets_for(sets: tuple[tuple[str, str], ...], method: Any) -> tuple[tuple[str, str], ...]:
    """The `--set` pairs that apply to `method` (the keys of its Params)."""
    names = _param_names(method)
    return tuple((k, v) for k, v in sets if k in names)


def _param_names(method: Any) -> set[str]:
    return {name for name, *_ in method.Params.describe()}


# ---- the pure part: gaps, floor, share closed ------------------------------------------------


def noise_floor(audits: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Mean and spread (sample std) of the avg gap over every pair of references.

    Two retrains that differ only in their seed are both perfect unlearning, so their gap is
    what "as good as retraining" can mean: no method can be told apart from retraining below it.
    The same holds metric by metric: `per_metric_pp` is each of the avg gap's four metrics'
    mean gap over the pairs, so a method's gap on one metric can be read against its own noise
    (the retrains may agree on UA and disagree on MIA-efficacy).
    Returns {mean, std, n, pairs, per_metric_pp}; mean None with fewer than two references.
    """
    from rfau_cli.audit import reference_gap

    pairs = [
        {
            "a": labels[i],
            "b": labels[j],
            "avg_gap_pp": reference_gap(audits[i], audits[j])["avg_gap_pp"],
            "per_metric_pp": _per_metric(audits[i], audits[j]),
        }
        for i, j in itertools.combinations(range(len(audits)), 2)
    ]
    per_metric = {k: _mean_std([p["per_metric_pp"][k] for p in pairs]) for k in GAP_METRICS}
    return {**_mean_std([p["avg_gap_pp"] for p in pairs]), "pairs": pairs, "per_metric_pp": per_metric}


def gap_to_references(
    metrics: dict[str, Any], references: Sequence[dict[str, Any]], reference_auc: float | None
) -> dict[str, Any]:
    """A model's gaps to each reference (`audit.reference_gap`) and their mean over references.

    `references` are reference runs ({label, audit}); `reference_auc` the references' mean
    loss-attack AUC. Returns avg_gap_pp (mean), avg_gap_keys, per_metric_pp (mean per table
    column), per_reference (each reference's own numbers) and loss_auc_gap.
    """
    from rfau_cli.audit import reference_gap

    per_reference = []
    for ref in references:
        gap = reference_gap(metrics, ref["audit"])
        per_reference.append(
            {
                "reference": ref["label"],
                "avg_gap_pp": gap["avg_gap_pp"],
                "per_metric_pp": _per_metric(metrics, ref["audit"]),
            }
        )
    keys = list(reference_gap(metrics, references[0]["audit"]).get("avg_gap_keys", [])) if references else []
    auc = _selected(metrics)["loss_auc"]
    return {
        "avg_gap_pp": _mean([g["avg_gap_pp"] for g in per_reference]),
        "avg_gap_keys": keys,
        "per_metric_pp": {k: _mean([g["per_metric_pp"][k] for g in per_reference]) for k in METRICS},
        "per_reference": per_reference,
        "loss_auc_gap": None if auc is None or reference_auc is None else abs(auc - reference_auc),
    }


def removable_gap(gap_none: float | None, floor: float | None) -> float | None:
    """gap_none - floor: how much of doing nothing's gap a method can remove at all (pp)."""
    if gap_none is None or floor is None:
        return None
    return gap_none - floor


def removable_by_metric(summary: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Doing nothing's gap above the floor, metric by metric (pp; their mean is the removable gap).

    The avg gap mixes what forgetting removes (UA and MIA-efficacy: how the model treats D_f)
    with the original's standing on the rows it keeps and on unseen rows (RA, TA), which differs
    from its retrains' by the luck of its seed as much as by D_f. Read metric by metric, the
    removable gap says which it is: on 5-row requests to MiniLM all of it was TA, its retrains
    too getting every forgotten row right, and no share closed measures forgetting there.
    None without a floor (fewer than two references) or a "none" row.
    """
    rows = {row["method"]: row for row in summary}
    none = (rows.get(NONE) or {}).get("per_metric_gap_pp") or {}
    floor = (rows.get(REFERENCE) or {}).get("per_metric_gap_pp") or {}
    parts = {
        key: none[key]["mean"] - floor[key]["mean"]
        for key in GAP_METRICS
        if (none.get(key) or {}).get("mean") is not None and (floor.get(key) or {}).get("mean") is not None
    }
    return parts or None


def share_closed(gap_none: float | None, gap: float | None, floor: float | None) -> float | None:
    """(gap_none - gap) / (gap_none - floor): the share of the removable gap a method closed.

    1 (100%) means as close to the references as they are to each other, 0 no better than
    doing nothing, below 0 worse than doing nothing; above 1 is within the noise of the floor.
    None when a number is missing or nothing is removable (gap_none <= floor: doing nothing
    already lands within the noise of retraining).
    """
    removable = removable_gap(gap_none, floor)
    if gap is None or removable is None or removable <= 0:
        return None
    return (gap_none - gap) / removable


def _class_slopes(job: Any, none: dict[str, Any], refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The references' class slope on each class a sample request takes much of (class_slope.py)."""
    from rfau_cli.class_slope import class_slopes

    splits = job.splits
    tests = [r.get("test_log_probs") for r in refs]
    if splits.by != "sample" or none.get("test_log_probs") is None or any(t is None for t in tests):
        return []
    population = np.concatenate([splits.forget, splits.retain])
    return class_slopes(
        none["test_log_probs"], tests, splits.test_labels, splits.labels[population], splits.labels[splits.forget],
        job.model.config.num_labels, dict(job.model.config.id2label),
    )  # fmt: skip


def _unseen_rows(cfg: BenchConfig, job: Any, none: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The original's test error and margins against its references' (peer_margins.py), with the
    references' checkpoints as they will lie once the bench is written: for `test_margins_from`."""
    from rfau_cli.methods.peer_margins import peer_paths, unseen_rows

    tests = [r.get("test_log_probs") for r in refs]
    if job.splits.by != "sample" or none.get("test_log_probs") is None or not tests or any(t is None for t in tests):
        return None
    paths = [str(Path(r["path"]).resolve()) if "path" in r else str((cfg.out / r["dir"]).resolve()) for r in refs]
    block = unseen_rows(none["test_log_probs"], tests, job.splits.test_labels, paths)
    if block is not None:  # peers that are this bench's references: the judges set the targets
        given = {str(p.resolve()) for p in peer_paths(dict(cfg.hparams.sets).get("test_margins_from", ""))}
        block["peers_among_references"] = [p for p in paths if p in given]
    return block


def _rfau_class_slope(cfg: BenchConfig, names: list[str], job: Any, slopes: list[dict[str, Any]]) -> float | None:
    """The class slope RFAU ran with in this bench (None without RFAU, or in class mode); each
    measured class also gets the slope RFAU used for it (`rfau_used`: its `class_slopes` entry,
    else the class slope, 1 where its targets followed the test rows) and the part of the
    original's surplus it took away (`rfau_surplus`)."""
    if "rfau" not in names or cfg.data.by != "sample":
        return None
    from rfau_cli.class_slope import resolve_class_slopes
    from rfau_cli.methods import load_method
    from rfau_cli.methods.rfau import follows_test_rows

    method = load_method("rfau")
    params = method.Params.from_strings(dict(sets_for(cfg.hparams.sets, method)), method.name)
    own = resolve_class_slopes(params.class_slopes, dict(job.model.config.id2label), job.model.config.num_labels)
    # following the test rows replaces the slope and the surplus
    follows = follows_test_rows(params, own, (e["class"] for e in slopes))
    used = 1.0 if follows else float(params.class_slope)  # following: the class prior alone on top
    for entry in slopes:
        entry["rfau_used"] = own.get(entry["class"], used)
        # the logits RFAU took off the class's fall for the original's surplus (none with a slope of its own)
        shrink = 0.0 if entry["class"] in own or follows else float(params.class_shrink)
        entry["rfau_surplus"] = shrink * entry["original_surplus"]
    return used


def _reference_gap_to_others(ref: dict[str, Any], refs: list[dict[str, Any]], auc: float | None) -> dict[str, Any]:
    """A reference's gap: its mean gap to the other references (0 when it is the only one)."""
    others = [r for r in refs if r is not ref]
    if not others:
        gap = gap_to_references(ref["audit"], [ref], auc)
        return {**gap, "avg_gap_pp": 0.0, "share_closed": None}
    return {**gap_to_references(ref["audit"], others, auc), "share_closed": None}


# ---- runs --------------------------------------------------------------------------------------


def _audit_job(cfg: BenchConfig) -> Any:
    """The one Job every model of the bench is audited with (see the module docstring)."""
    from rfau_cli.checkpoint import resolve_checkpoint
    from rfau_cli.job import prepare_job
    from rfau_cli.progress import Progress

    return prepare_job(resolve_checkpoint(cfg.model), cfg.data, cfg.runtime, cfg.seeds[0], Progress(quiet=True))


def _audit(auditor: Auditor, path: Path) -> dict[str, Any]:
    from rfau_cli.checkpoint import load_model, resolve_checkpoint

    return auditor(load_model(resolve_checkpoint(path)))


def _reference_run(cfg: BenchConfig, spec: ReferenceSpec, out: Path, auditor: Auditor) -> dict[str, Any]:
    """Retrain (or audit the given checkpoint); input errors propagate (exit 2)."""
    record: dict[str, Any] = {"method": REFERENCE, "role": "reference", "seed": spec.seed, "label": spec.label}
    try:
        if spec.path is not None:
            metrics = _audit(auditor, spec.path)
            return {
                **record, "path": str(spec.path), "status": "ok", "audit": metrics, "metrics": _selected(metrics),
                "test_log_probs": auditor.test_log_probs,
            }  # fmt: skip
        from rfau_cli.commands.retrain import run_retrain

        run_dir = out / RUNS_DIR / spec.label
        retrain = RetrainConfig(
            model=cfg.model,
            out=run_dir,
            data=cfg.data,
            init=cfg.retrain_init,
            hparams=replace(cfg.retrain_hparams, seed=spec.seed),
            runtime=replace(cfg.runtime, quiet=True, json=False),
        )
        with peak_memory() as peak:
            report = run_retrain(retrain)
        metrics = _audit(auditor, run_dir)
        return {
            **record, "dir": f"{RUNS_DIR}/{run_dir.name}", **_numbers(report, peak(), metrics),
            "test_log_probs": auditor.test_log_probs,
        }  # fmt: skip
    except InputError:
        raise
    except Exception as err:  # any other failure of one run is recorded; the bench goes on
        return {**record, "status": "failed", "error": one_line(err)}


def _none_run(auditor: Auditor, refs: list[dict[str, Any]], auc: float | None, floor: float | None) -> dict[str, Any]:
    """Doing nothing: the original model, audited and gapped like every method."""
    metrics = auditor(auditor.job.model)
    record: dict[str, Any] = {
        "method": NONE,
        "role": "none",
        "seed": None,
        "status": "ok",
        "metrics": _selected(metrics),
        "test_log_probs": auditor.test_log_probs,
    }
    if refs:
        gap = gap_to_references(metrics, refs, auc)
        gap["avg_gap_pp_stats"] = _mean_std([g["avg_gap_pp"] for g in gap["per_reference"]])
        record["gap"] = {**gap, "share_closed": share_closed(gap["avg_gap_pp"], gap["avg_gap_pp"], floor)}
    return record


def _method_run(
    cfg: BenchConfig,
    name: str,
    seed: int,
    out: Path,
    auditor: Auditor,
    label: str | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """One method, one seed, through `run_unlearn`; any failure becomes a record. `label` names
    the row (and run directory) when it is not the method's name; `epochs` overrides --epochs
    (both: a --same-time-as rerun)."""
    from rfau_cli.commands.unlearn import run_unlearn
    from rfau_cli.methods import load_method

    run_dir = out / RUNS_DIR / f"{label or name}-s{seed}"
    record: dict[str, Any] = {
        "method": label or name, "role": "method", "seed": seed, "dir": f"{RUNS_DIR}/{run_dir.name}",
    }  # fmt: skip
    try:
        with peak_memory() as peak:
            method = load_method(name)
            # Small outputs: the adapter for LoRA methods, the weights for the others.
            save = "adapter" if method.uses_lora else "merged"
            unlearn = UnlearnConfig(
                model=cfg.model,
                out=run_dir,
                data=cfg.data,
                method=name,
                save=save,
                hparams=replace(
                    cfg.hparams,
                    seed=seed,
                    sets=sets_for(cfg.hparams.sets, method),
                    epochs=cfg.hparams.epochs if epochs is None else epochs,
                ),
                runtime=replace(cfg.runtime, quiet=True, json=False),
            )
            report = run_unlearn(unlearn, method=method)
        metrics = _audit(auditor, run_dir)
    except Exception as err:  # a failing method is a result of the bench, not its end
        if not run_dir.exists():
            record.pop("dir")  # nothing was written: run_unlearn's output is atomic
        return {**record, "status": "failed", "error": one_line(err)}
    return {**record, **_numbers(report, peak(), metrics)}


def _numbers(report: dict[str, Any], peak: dict[str, float], metrics: dict[str, Any]) -> dict[str, Any]:
    timings = report["timings_s"]
    memory = {**report.get("peak_memory_mib", {}), **peak}
    return {
        "status": "ok",
        "audit": metrics,
        "metrics": _selected(metrics),
        "time_s": round(timings.get("setup", 0.0) + timings.get("fit", 0.0), 3),
        "setup_s": timings.get("setup"),
        "fit_s": timings.get("fit"),
        # what --same-time-as scales: the epochs a run took, and whether it took gradient steps
        "epochs_run": report.get("training", {}).get("epochs_run"),
        "steps": report.get("training", {}).get("steps"),
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
    return {name: _finite(flat.get(key)) for name, key in keys.items()}


def _per_metric(metrics: dict[str, Any], reference: dict[str, Any]) -> dict[str, float | None]:
    """|method - reference| of each table number, in pp (the AUC in hundredths too)."""
    mine, ref = _selected(metrics), _selected(reference)
    return {k: None if mine[k] is None or ref[k] is None else abs(mine[k] - ref[k]) * 100 for k in METRICS}


# ---- summary -----------------------------------------------------------------------------------


def summarize(
    runs: list[dict[str, Any]], names: list[str], floor: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One row a method: mean and spread (sample std; None with one seed) of each number.

    The reference row's avg gap is the floor (its spread over pairs of references); the none
    row's is its gap to the references (spread over references). `per_metric_gap_pp` splits the
    avg gap into its four metrics the same way (the reference row: the floor's per metric).
    """
    rows = []
    for name in names:
        mine = [r for r in runs if r["method"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        status = "ok" if len(ok) == len(mine) else ("failed" if not ok else "partial")
        row: dict[str, Any] = {"method": name, "status": status, "seeds_ok": len(ok), "seeds": len(mine)}
        row["errors"] = [f"{_run_name(r)}: {r['error']}" for r in mine if r["status"] != "ok"]
        for key in NUMBERS:
            values = [_value(r, key) for r in ok]
            row[key] = _mean_std([v for v in values if v is not None])
        if name == REFERENCE and floor is not None and floor.get("mean") is not None:
            row["avg_gap_pp"] = {k: floor[k] for k in ("mean", "std", "n")}
        if name == NONE and ok and ok[0].get("gap", {}).get("avg_gap_pp_stats"):
            row["avg_gap_pp"] = ok[0]["gap"]["avg_gap_pp_stats"]
        row["per_metric_gap_pp"] = _per_metric_gaps(name, ok, floor)
        rows.append(row)
    return rows


def _per_metric_gaps(
    name: str, ok: list[dict[str, Any]], floor: dict[str, Any] | None
) -> dict[str, dict[str, float | None]]:
    """Each avg-gap metric's gap to the references: over seeds for a method, over references for
    "none" (one model), over pairs of references for the reference row (the floor)."""
    if name == REFERENCE:
        return (floor or {}).get("per_metric_pp") or {k: _mean_std([]) for k in GAP_METRICS}
    if name == NONE:
        per_reference = ok[0].get("gap", {}).get("per_reference", []) if ok else []
        return {k: _mean_std([g["per_metric_pp"][k] for g in per_reference]) for k in GAP_METRICS}
    return {k: _mean_std([r.get("gap", {}).get("per_metric_pp", {}).get(k) for r in ok]) for k in GAP_METRICS}


def _run_name(run: dict[str, Any]) -> str:
    if run["role"] == "reference" and run.get("seed") is None:
        return f"reference {run['label']}"
    return f"seed {run['seed']}"


def _value(run: dict[str, Any], key: str) -> float | None:
    if key in METRICS:
        return run["metrics"].get(key)
    if key in GAP_NUMBERS:
        return run.get("gap", {}).get(key)
    return run.get(key)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    kept = [float(v) for v in values if v is not None and v == v]  # NaN (not computable) is left out
    if not kept:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else None
    return {"mean": float(np.mean(kept)), "std": std, "n": len(kept)}


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else '(no message)'}"


def _log(progress: Any, run: dict[str, Any]) -> dict[str, Any]:
    who = f"{run['method']}" + (f" seed {run['seed']}" if run.get("seed") is not None else "")
    if run["role"] == "reference" and run.get("seed") is None:
        who = f"reference {run['label']}"
    if run["status"] != "ok":
        progress.log(f"[red]{who}[/]: failed: {run['error']}")
        return run
    gap = run.get("gap", {})
    parts = []
    if gap.get("avg_gap_pp") is not None:
        parts.append(f"avg gap {gap['avg_gap_pp']:.2f} pp")
    if gap.get("share_closed") is not None and run["role"] == "method":
        parts.append(f"closed {100 * gap['share_closed']:.0f}%")
    if run.get("time_s") is not None:
        parts.append(f"{run['time_s']:.1f}s")
    progress.log(f"[bold]{who}[/]: {', '.join(parts) or 'done'}")
    return run
