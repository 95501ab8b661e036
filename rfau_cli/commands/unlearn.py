"""`rfau unlearn`, top to bottom:

    validate (+ read the input's ledger) -> load_checkpoint + load_splits -> audit(before)
             (+ the gates' keys) -> attach_adapter -> method.fit -> save (+ rfau.* metadata)
             -> audit(after) -> gates -> ledger.json -> README.md (model card) -> write_report

`--model` may be an earlier rfau output: merged weights are a checkpoint like any other; an
adapter-only output is merged into its base before the new adapter is attached, and the
adapter written holds both (checkpoint.save_model). Its ledger is carried forward (ledger.py).

Everything that can be wrong with the input is checked before any work; outputs are built
in a temporary directory renamed at the end, so a failure leaves no `--out`.

With several processes (torchrun, accelerate launch) every process loads, sets up and fits
(each on its shard of every batch); only the main one audits, writes `--out` and the report,
while the others wait for it and return its report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from rfau_cli.checkpoint import REPORT_FILE
from rfau_cli.errors import InputError, RunError
from rfau_cli.settings import UnlearnConfig


def run_unlearn(
    cfg: UnlearnConfig, method: Any | None = None, command: str = "unlearn", gates: Sequence[Any] = ()
) -> dict[str, Any]:
    """Run one unlearning job and return its report (also written to `out/report.json`).

    `method` overrides the registry lookup of `cfg.method` (`rfau retrain` passes its own).
    `gates` (gates.Gate, from `--require`) are evaluated on the report's metrics.after and
    recorded in its `gates` block (the caller decides the exit code); a gate naming a key the
    audit does not have is refused right after the first audit, before any training.

    Raises:
        UnknownGateKeyError: a gate's key is not among the audit's (exit 2, nothing written).
    """
    from rfau_cli.checkpoint import (
        atomic_output_dir,
        check_model,
        check_output_dir,
        claim_output_dir,
        resolve_checkpoint,
        save_model,
    )
    from rfau_cli.job import prepare_job
    from rfau_cli.ledger import read_input_ledger
    from rfau_cli.methods import load_method
    from rfau_cli.progress import Progress
    from rfau_cli.report import write_report
    from rfau_cli.runtime import check_ranks_agree, peak_memory, settle_processes, wait_and_share

    started = time.perf_counter()
    check_output_dir(cfg.out)
    method = method or load_method(cfg.method)
    cfg = _check_save(cfg, method)
    if cfg.data.by == "sample" and cfg.data.test_data is None:
        raise InputError("--by sample needs --test-data: held-out rows set the forgetting target")
    ref = resolve_checkpoint(cfg.model)
    ledger = read_input_ledger(ref)  # the earlier requests, checked against the weights
    settings = cfg.hparams.resolved(method, cfg.data.by)  # the method's defaults and its --set parameters, checked
    # Flags that need the model's config (device, label count, taps, LoRA targets): checked
    # from the config and the weights' header, before any data is read.
    check_model(
        ref, device=cfg.runtime.device, taps=settings.taps,
        target_modules=settings.target_modules if method.uses_lora else None,
    )
    method.check_params(settings.params, ref.id2label, ref.num_labels)
    # `--out` is claimed (its temporary sibling created) before any heavy work; a failure
    # anywhere below removes it.
    with claim_output_dir(cfg.out) as claim, Progress(cfg.runtime.quiet) as progress, peak_memory() as memory:
        with progress.phase("load"):
            job = prepare_job(ref, cfg.data, cfg.runtime, settings.seed, progress, ledger=ledger, merge_adapter=True)
        # Several processes: all of them set up and fit (each on its shard of every batch);
        # only the main one audits and writes, the others wait for its report.
        main = job.accelerator.is_main_process
        settle_processes(job.accelerator)
        if main:
            with progress.phase("audit_before"):
                before_scores, before = job.audit(job.model)
            # The after-audit has the keys of this one: an unknown gate key fails now, not after the fit.
            gate_results(gates, before, before_scores, before_scores)
        try:
            with progress.phase("setup"):
                ctx = job.fit_context(method, settings)
                method.setup(ctx)
                differ = check_ranks_agree(job.accelerator, method)
                if differ is not None:
                    ctx.state["ranks_setup_max_rel_diff"] = differ
                    if differ > 1e-4:
                        progress.log(
                            f"warning: the processes computed different targets (relative difference {differ:.1e})"
                        )
            with progress.phase("fit"):
                from rfau_cli.methods.loop import train  # imports torch: the input checks above run without it

                training = method.fit(ctx, train)
            report = None
            if main:
                with atomic_output_dir(cfg.out, claim) as tmp:
                    with progress.phase("save"):
                        model = save_model(ctx.model, ref, tmp, cfg.save, head_changed="head_shift" in ctx.state)
                        stamp_provenance(tmp, job, method.name, settings.seed)
                    with progress.phase("audit_after"):
                        after_scores, after = job.audit(model)
                    from rfau_cli.audit import compare_to_original
                    from rfau_cli.gates import gate_records

                    metrics = {
                        "before": before,
                        "after": after,
                        "original": compare_to_original(after_scores, before_scores),
                    }
                    report = build_report(
                        cfg, job, method, ctx.settings, ctx, training, metrics, progress.phases, started, tmp, command,
                        memory=memory(),
                    )
                    report["gates"] = gate_records(gate_results(gates, after, after_scores, before_scores))
                    write_ledger_and_card(report, job, tmp, cfg.data.id_column)
                    write_report(report, tmp / REPORT_FILE)
            report = wait_and_share(job.accelerator, report)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, RunError):
                raise
            if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
                raise RunError(f"{command} failed: out of memory ({str(err).splitlines()[0]})") from err
            raise
    return report


def gate_results(gates: Sequence[Any], metrics: dict[str, Any], scores: Any, original_scores: Any) -> list[Any]:
    """Each gate against one audit's metrics, under the keys `rfau audit` uses (plus
    `original.*`, the comparison with the input model).

    Raises:
        UnknownGateKeyError: a gate names a key the audit does not have.
    """
    if not gates:
        return []
    from rfau_cli.audit import compare_to_original
    from rfau_cli.commands.audit import gate_values
    from rfau_cli.gates import evaluate_gates

    original = compare_to_original(scores, original_scores)
    return evaluate_gates(list(gates), gate_values({"metrics": metrics, "original": original}))


def stamp_provenance(out: Any, job: Any, method: str, seed: int) -> None:
    """`rfau.*` metadata into every .safetensors just written (provenance.py)."""
    from rfau_cli import __version__
    from rfau_cli.provenance import provenance_metadata, stamp_weights

    stamp_weights(
        out,
        provenance_metadata(
            version=__version__, input_sha256=job.ledger.input_sha256, forget_sha256=job.forget.sha256,
            method=method, seed=seed, ledger_length=len(job.ledger.entries) + 1,
        ),
    )


def write_ledger_and_card(report: dict[str, Any], job: Any, out: Any, id_column: str | None) -> None:
    """Append this request to the input's ledger (report.json `ledger` and ledger.json), then
    write the model card (README.md) rendered from the final report.

    Like report.json, both are records, not in `outputs.sha256` (which stays byte-identical
    for one seed: the ledger holds the date): `rfau verify` checks that ledger.json is the
    report's ledger and that README.md is the card the report renders to.
    """
    import json

    from rfau_cli import __version__
    from rfau_cli.ledger import LEDGER_FILE, new_entry, write_ledger
    from rfau_cli.model_card import CARD_FILE, card_for
    from rfau_cli.report import dumps

    splits = job.splits
    entry = new_entry(
        previous=job.ledger, ref=job.ref, out=out, command=report["command"], method=report["method"],
        settings=report["settings"], seed=report["seed"], by=splits.by, forget_ids=job.forget.ids,
        forget_sha256=job.forget.sha256, forget_count=len(splits.forget), forget_classes=splits.request_classes,
        id_column=id_column, data_fingerprint=splits.fingerprint, version=__version__,
    )
    report["ledger"] = [*job.ledger.entries, entry]
    write_ledger(report["ledger"], out / LEDGER_FILE)
    (out / CARD_FILE).write_text(card_for(json.loads(dumps(report))))


def _check_save(cfg: UnlearnConfig, method: Any) -> UnlearnConfig:
    """`--save` for this method (the value itself was checked by UnlearnConfig)."""
    if not method.uses_lora and cfg.save != "merged":
        if cfg.save == "adapter":
            raise InputError(f"method {method.name} trains all weights and has no adapter: use --save merged")
        return replace(cfg, save="merged")  # "both" (the default) means "what the method has"
    return cfg


def build_report(
    cfg: UnlearnConfig,
    job: Any,
    method: Any,
    settings: Any,
    ctx: Any,
    training: dict[str, Any],
    metrics: dict[str, Any],
    phases: dict[str, float],
    started: float,
    out: Any,
    command: str,
    memory: dict[str, float],
) -> dict[str, Any]:
    """Everything needed to trust and rerun the job (DESIGN.md, Outputs)."""
    from rfau_cli.checkpoint import sha256_tree, weights_sha256
    from rfau_cli.report import report_header
    from rfau_cli.runtime import distributed_info, precision_name

    splits = job.splits
    return {
        **report_header(command),
        "inputs": {
            "model": str(job.ref.dir),
            "architecture": job.ref.architecture,
            "weights_sha256": weights_sha256(job.ref),
            "data": str(cfg.data.data),
            "data_fingerprint": splits.fingerprint,
            "data_rows": len(splits.labels),
            "test_data": str(cfg.data.test_data) if cfg.data.test_data else None,
            "test_fingerprint": getattr(splits.test, "_fingerprint", None),
            "forget_list": job.forget.source,
            "forget_list_sha256": job.forget.sha256,
            "columns": asdict(splits.columns),
            "built_from": job.ledger.built_from,
            "earlier_requests": len(job.ledger.entries),
        },
        "forget_count": int(len(splits.forget)),
        "forget_by": splits.by,
        "forget_classes": list(splits.request_classes),
        # every class forgotten so far (this request's and the ledger's), all masked
        "forget_classes_all": sorted(set(splits.request_classes) | set(splits.earlier_classes)),
        # sample mode: the classes the request takes 30% or more of (the test rows split by them:
        # metrics' test_concentrated and test_others)
        "concentrated_classes": list(job.concentrated_classes()),
        "method": method.name,
        "settings": {
            **_settings_dict(settings),
            "save": cfg.save,
            "split": cfg.data.split,
            "cache_mb": cfg.runtime.cache_mb,
            "workers": cfg.runtime.workers,
        },
        "seed": settings.seed,
        "device": str(job.accelerator.device),
        "precision": precision_name(job.accelerator),
        **distributed_info(job.accelerator),
        "timings_s": {**{k: round(v, 3) for k, v in phases.items()}, "total": round(time.perf_counter() - started, 3)},
        "peak_memory_mib": memory,
        "trainable_parameters": int(training.get("trainable_parameters", _count_trainable(ctx.model))),
        "training": {
            "epochs": training.get("epochs", len(training.get("history", []))),
            "epochs_requested": training.get("epochs_requested", settings.epochs),
            "epochs_source": training.get("epochs_source", "user" if settings.epochs_from_user else "method default"),
            "epochs_cap": training.get("epochs_cap"),
            "batch_size": settings.batch_size,  # the run's (`Method.batch_size_for`), as in `settings`
            "batch_size_source": "user" if settings.batch_size_from_user else "method default",
            "epochs_run": training.get("epochs_run", len(training.get("history", []))),
            "stop_reason": training.get("stop_reason"),
            "steps": training.get("steps", 0),
            "history": training.get("history", []),
            **ctx.state,
        },
        "caches": {
            "inputs": job.inputs.stats.as_dict() if job.inputs is not None else None,
            "teacher": ctx.teacher_store.stats() if ctx.teacher_store is not None else None,
        },
        "metrics": metrics,
        "outputs": {"save": cfg.save, "sha256": sha256_tree(out)},
    }


def _settings_dict(settings: Any) -> dict[str, Any]:
    """The resolved settings, the method's own parameters (`--set`) at the same level."""
    values = asdict(settings)
    values["target_modules"] = list(values["target_modules"])
    params = values.pop("params", {})
    values.pop("sets", None)  # the raw `--set` text: its parsed values are in `params`
    return {**values, **params}


def _count_trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
