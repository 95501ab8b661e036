"""`rfau unlearn`, top to bottom:

    validate -> load_checkpoint -> load_splits -> audit(before) -> attach_adapter
             -> method.fit -> save -> audit(after) -> write_report

Everything that can be wrong with the input is checked before any work; outputs are built
in a temporary directory renamed at the end, so a failure leaves no `--out`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np

from rfau_cli.checkpoint import REPORT_FILE
from rfau_cli.errors import InputError, RunError
from rfau_cli.settings import UnlearnConfig


def run_unlearn(cfg: UnlearnConfig) -> dict[str, Any]:
    """Run one unlearning job and return its report (also written to `out/report.json`)."""
    from rfau_cli.checkpoint import atomic_output_dir, check_output_dir, resolve_checkpoint, save_model
    from rfau_cli.methods import load_method
    from rfau_cli.progress import Progress
    from rfau_cli.report import write_report

    started = time.perf_counter()
    check_output_dir(cfg.out)
    method = load_method(cfg.method)
    if cfg.save not in ("adapter", "merged", "both"):
        raise InputError(f"--save must be adapter, merged or both, not {cfg.save!r}")
    if cfg.save in ("adapter", "both") and not method.uses_lora:
        if cfg.save == "adapter":
            raise InputError(f"method {cfg.method} trains all weights and has no adapter: use --save merged")
        cfg = _replace_save(cfg, "merged")
    ref = resolve_checkpoint(cfg.model)
    if ref.adapter_dir is not None:
        raise InputError(f"--model {cfg.model} is an adapter directory; unlearn from a full checkpoint")
    settings = cfg.hparams.resolved(method.defaults)
    _check_settings(settings)
    with Progress(cfg.runtime.quiet) as progress:
        with progress.phase("load"):
            job = prepare_job(cfg, ref, progress)
        with progress.phase("audit_before"):
            before_scores, before = job.audit(job.model)
        with progress.phase("setup"):
            ctx = job.fit_context(method, settings, progress)
            method.setup(ctx)
        try:
            with progress.phase("fit"):
                training = method.fit(ctx)
            with atomic_output_dir(cfg.out) as tmp:
                with progress.phase("save"):
                    model = save_model(ctx.model, ref, tmp, cfg.save)
                with progress.phase("audit_after"):
                    after_scores, after = job.audit(model)
                report = job.report(
                    method=method, settings=settings, ctx=ctx, training=training, out=tmp,
                    metrics={
                        "before": before,
                        "after": after,
                        "original": _compare(after_scores, before_scores),
                    },
                    phases=progress.phases, started=started,
                )
                write_report(report, tmp / REPORT_FILE)
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, RunError) or "out of memory" in str(err).lower() or isinstance(err, MemoryError):
                raise RunError(f"unlearning failed: {str(err).splitlines()[0]}") from err
            raise
    return report


def _compare(after: Any, before: Any) -> dict[str, float]:
    from rfau_cli.audit import compare_to_original

    return compare_to_original(after, before)


def _replace_save(cfg: UnlearnConfig, save: str) -> UnlearnConfig:
    from dataclasses import replace

    return replace(cfg, save=save)


def _check_settings(s: Any) -> None:
    for name in ("epochs", "batch_size", "rank"):
        if getattr(s, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if s.retain_ratio < 0:
        raise InputError("--retain-ratio must be 0 or more")
    if not s.lr > 0:
        raise InputError("--lr must be positive")


class Job:
    """The loaded inputs of one run: model, processor, splits, encoder, device."""

    def __init__(self, cfg: Any, ref: Any, model: Any, splits: Any, encoder: Any, accelerator: Any, forget: Any, progress: Any) -> None:
        from rfau_cli.audit import AuditRows

        self.cfg, self.ref, self.model, self.splits = cfg, ref, model, splits
        self.encoder, self.accelerator, self.forget, self.progress = encoder, accelerator, forget, progress
        self.rows = AuditRows.choose(splits, cfg.hparams.seed)

    def audit(self, model: Any) -> tuple[Any, dict[str, Any]]:
        from rfau_cli.audit import compute_metrics, score

        model = model.to(self.accelerator.device).eval()
        scores = score(model, self.encoder, self.splits, self.rows, self.accelerator, self.progress)
        metrics = compute_metrics(scores, self.splits.forget_classes, self.cfg.hparams.seed)
        metrics["sizes"] = {
            "forget": len(self.rows.forget),
            "retain": len(self.rows.retain),
            "retain_total": self.rows.retain_total,
            "test": 0 if self.splits.test_labels is None else len(self.splits.test_labels),
        }
        return scores, metrics

    def fit_context(self, method: Any, settings: Any, progress: Any) -> Any:
        import copy

        from rfau_cli.features import TapReader, TapSpec, find_head
        from rfau_cli.lora import attach_lora, find_lora_targets
        from rfau_cli.methods.base import FitContext

        model = self.model.to(self.accelerator.device)
        original = original_taps = None
        spec = TapSpec.parse(settings.taps)
        if method.uses_lora:
            targets = find_lora_targets(model, settings.target_modules)
            model = attach_lora(model, targets, settings.rank, settings.alpha, settings.seed)
        else:
            if method.needs_teacher_copy:
                original = copy.deepcopy(model).eval().requires_grad_(False)
                original_taps = TapReader(original, find_head(original), spec)
            model.requires_grad_(True)
        head = find_head(model)
        return FitContext(
            model=model, head=head, taps=TapReader(model, head, spec), splits=self.splits, encoder=self.encoder,
            accelerator=self.accelerator, settings=settings, num_labels=model.config.num_labels,
            rng=np.random.default_rng(settings.seed), progress=progress, original=original, original_taps=original_taps,
        )

    def report(self, *, method: Any, settings: Any, ctx: Any, training: dict[str, Any], out: Any,
               metrics: dict[str, Any], phases: dict[str, float], started: float) -> dict[str, Any]:
        from rfau_cli.checkpoint import sha256_file, sha256_tree
        from rfau_cli.report import SCHEMA_VERSION, library_versions
        from rfau_cli.runtime import peak_memory, precision_name

        cfg, splits = self.cfg, self.splits
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "rfau",
            "command": "unlearn",
            "versions": library_versions(),
            "inputs": {
                "model": str(self.ref.dir),
                "architecture": self.ref.architecture,
                "weights_sha256": {p.name: sha256_file(p) for p in self.ref.weight_files},
                "data": str(cfg.data.data),
                "data_fingerprint": splits.fingerprint,
                "data_rows": len(splits.labels),
                "test_data": str(cfg.data.test_data) if cfg.data.test_data else None,
                "test_fingerprint": getattr(splits.test, "_fingerprint", None),
                "forget_list": self.forget.source,
                "forget_list_sha256": self.forget.sha256,
                "columns": asdict(splits.columns),
            },
            "forget_count": int(len(splits.forget)),
            "forget_by": splits.by,
            "forget_classes": list(splits.forget_classes),
            "method": method.name,
            "settings": {**_settings_dict(settings), "save": cfg.save, "split": cfg.data.split},
            "seed": settings.seed,
            "device": str(self.accelerator.device),
            "precision": precision_name(self.accelerator),
            "timings_s": {**{k: round(v, 3) for k, v in phases.items()}, "total": round(time.perf_counter() - started, 3)},
            "peak_memory_mib": peak_memory(),
            "trainable_parameters": int(training.get("trainable_parameters", _count_trainable(ctx.model))),
            "training": {"steps": training.get("steps", 0), "history": training.get("history", []), **ctx.state},
            "metrics": metrics,
            "outputs": {"save": cfg.save, "sha256": sha256_tree(out)},
        }


def _settings_dict(settings: Any) -> dict[str, Any]:
    values = asdict(settings)
    values["target_modules"] = list(values["target_modules"])
    extra = values.pop("extra", {})
    return {**values, **extra}


def _count_trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prepare_job(cfg: UnlearnConfig, ref: Any, progress: Any) -> Job:
    """Load data, checkpoint and processor; validate labels against the model."""
    from rfau_cli.checkpoint import load_model, load_processor
    from rfau_cli.data import load_splits, read_forget_list
    from rfau_cli.runtime import make_accelerator, seed_everything

    d = cfg.data
    if d.by == "sample" and d.test_data is None:
        raise InputError("--by sample needs --test-data: held-out rows set the forgetting target")
    forget = read_forget_list(d.forget)
    splits = load_splits(
        d.data, forget, task=ref.task, num_labels=ref.num_labels, id2label=ref.id2label, by=d.by,
        split=d.split, test_data=d.test_data, id_column=d.id_column, input_column=d.input_column,
        label_column=d.label_column,
    )
    accelerator = make_accelerator(cfg.runtime.device, cfg.runtime.precision)
    seed_everything(cfg.hparams.seed)
    model = load_model(ref)
    processor = load_processor(ref)
    encoder = build_encoder(ref, model, processor, splits)
    return Job(cfg, ref, model, splits, encoder, accelerator, forget, progress)


def build_encoder(ref: Any, model: Any, processor: Any, splits: Any) -> Any:
    from rfau_cli.encoding import Encoder, fit_text_length

    if ref.task == "text":
        sample = splits.train[: min(len(splits.labels), 10000)][splits.columns.input]
        if splits.test is not None:
            sample += splits.test[: min(len(splits.test_labels), 10000)][splits.columns.input]
        length = fit_text_length(processor, sample)
        return Encoder("text", splits.columns.input, processor, 0, length)
    channels = int(getattr(model.config, "num_channels", 3))
    return Encoder("image", splits.columns.input, processor, channels)
