"""The loaded inputs of a run (checkpoint, processor, splits, encoder, device), shared by
`unlearn`, `retrain`, `audit` and `bench`, and the two things done with them: scoring a
model for the audit and building a method's training context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rfau_cli.checkpoint import CheckpointRef
from rfau_cli.data import ForgetList, Splits
from rfau_cli.encoding import Encoder
from rfau_cli.errors import InputError
from rfau_cli.settings import DataSettings, RuntimeSettings


@dataclass
class Job:
    ref: CheckpointRef
    model: Any
    splits: Splits
    encoder: Encoder
    accelerator: Any
    forget: ForgetList
    progress: Any
    seed: int
    rows: Any  # audit.AuditRows
    inputs: Any = None  # input_cache.InputCache: every row encoded once, shared by audits and training
    ledger: Any = None  # ledger.InputLedger: the earlier requests of the input model

    def audit(self, model: Any, attacks: tuple[str, ...] | None = None) -> tuple[Any, dict[str, Any]]:
        """Score `model` on D_f, the D_r sample and test; return (scores, metrics).

        `forget_all` (same keys as `forget`) scores every row forgotten so far: this request's
        and those of the input's ledger found in the data (just D_f when there are none). In
        sample mode after an earlier class request, the test rows of the forgotten classes are
        not in the splits at all (data.load_splits leaves them out).
        """
        from rfau_cli.audit import ATTACKS, compute_metrics, score, split_metrics

        model = model.to(self.accelerator.device).eval()
        splits = self.splits
        scores = score(model, self.inputs or self.encoder, splits, self.rows, self.accelerator, self.progress)
        every = scores["forget"]
        older = np.setdiff1d(splits.earlier, splits.forget)
        if older.size:
            from dataclasses import replace

            from rfau_cli.audit import AuditRows, Scores

            rows = AuditRows(older, np.zeros(0, dtype=np.int64), self.rows.retain_total)
            extra = score(
                model, self.inputs or self.encoder, replace(splits, test=None), rows, self.accelerator, self.progress
            )["forget"]
            every = Scores(*(np.concatenate([a, b]) for a, b in zip(
                (every.log_probs, every.labels, every.features), (extra.log_probs, extra.labels, extra.features)
            )))
        concentrated = self.concentrated_classes()
        metrics = compute_metrics(scores, splits.forget_classes, self.seed, attacks or ATTACKS, concentrated)
        metrics["forget_all"] = split_metrics(every)
        metrics["sizes"] = {
            "forget": len(self.rows.forget),
            "forget_all": len(every.labels),
            "retain": len(self.rows.retain),
            "retain_total": self.rows.retain_total,
            "test": len(scores["test"].labels) if "test" in scores else 0,
        }
        if "test_others" in metrics:
            inside = int(np.isin(scores["test"].labels, concentrated).sum())
            metrics["sizes"]["test_others"] = metrics["sizes"]["test"] - inside
            if "test_concentrated" in metrics:
                metrics["sizes"]["test_concentrated"] = inside
        return scores, metrics

    def concentrated_classes(self) -> tuple[int, ...]:
        """The classes a sample request takes CONCENTRATED_SHARE or more of (margin_targets.py),
        counted as RFAU counts them (D_f against D_f + D_r); () in class mode. The audit splits
        the test rows by them (audit.compute_metrics)."""
        from rfau_cli.methods.margin_targets import concentrated_classes

        splits = self.splits
        if splits.by == "class" or not len(splits.forget):
            return ()
        population = np.concatenate([splits.forget, splits.retain])
        taken = concentrated_classes(splits.labels[population], splits.labels[splits.forget], self.ref.num_labels)
        return tuple(sorted(taken))

    def fit_context(self, method: Any, settings: Any) -> Any:
        """Put the model in trainable form for `method` (LoRA or all weights) and wrap it."""
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
        settings = replace(settings, batch_size=method.batch_size_for(settings, self.splits))
        return FitContext(
            model=model, head=head, taps=TapReader(model, head, spec), splits=self.splits.for_training(),
            encoder=self.encoder,
            accelerator=self.accelerator, settings=settings, num_labels=model.config.num_labels,
            rng=np.random.default_rng(settings.seed), progress=self.progress, original=original,
            original_taps=original_taps, inputs=self.inputs,
        )


def prepare_job(
    ref: CheckpointRef,
    data: DataSettings,
    runtime: RuntimeSettings,
    seed: int,
    progress: Any,
    *,
    ledger: Any = None,
    merge_adapter: bool = False,
) -> Job:
    """Load data, checkpoint and processor; validate labels and ids against the model.

    `ledger`: the input's ledger.InputLedger (read from `ref` when None): its earlier requests
    stay out of D_r. `merge_adapter`: an adapter input is merged into its base (the model a
    new adapter is trained on top of).
    """
    from rfau_cli.audit import AuditRows
    from rfau_cli.checkpoint import check_model, load_model, load_processor
    from rfau_cli.data import load_splits, read_forget_list
    from rfau_cli.input_cache import build_input_cache
    from rfau_cli.ledger import read_input_ledger
    from rfau_cli.runtime import make_accelerator, seed_everything

    # Validation order: the model's config and weights header (device, label count), then the
    # forget list and the data (images must share one size unless the processor resizes them).
    check_model(ref, device=runtime.device)
    forget = read_forget_list(data.forget)
    ledger = ledger if ledger is not None else read_input_ledger(ref)
    processor = load_processor(ref)
    splits = load_splits(
        data.data, forget, task=ref.task, num_labels=ref.num_labels, id2label=ref.id2label, by=data.by,
        split=data.split, test_data=data.test_data, id_column=data.id_column, input_column=data.input_column,
        label_column=data.label_column, same_size=processor is None, earlier=ledger.entries,
    )
    for note in (ledger.note, *splits.notes):
        if note:
            progress.log(f"warning: {note}")
    accelerator = make_accelerator(runtime.device, runtime.precision)
    seed_everything(seed)
    model = load_model(ref)
    if merge_adapter and ref.adapter_dir is not None:
        model = model.merge_and_unload()
    encoder = build_encoder(ref, model, processor, splits)
    rows = AuditRows.choose(splits, seed)
    inputs = build_input_cache(
        encoder, splits, rows.retain, runtime.cache_mb, runtime.workers, accelerator.device.type == "cuda"
    )
    return Job(ref, model, splits, encoder, accelerator, forget, progress, seed, rows, inputs, ledger)


def build_encoder(ref: CheckpointRef, model: Any, processor: Any, splits: Splits) -> Encoder:
    from rfau_cli.encoding import fit_text_length

    if ref.task == "text":
        if processor is None:
            raise InputError(f"{ref.dir} is a text classifier without a tokenizer")
        sample = list(splits.train[: min(len(splits.labels), 10000)][splits.columns.input])
        if splits.test is not None:
            sample += list(splits.test[: min(len(splits.test_labels), 10000)][splits.columns.input])
        return Encoder("text", splits.columns.input, processor, 0, fit_text_length(processor, sample))
    channels = int(getattr(model.config, "num_channels", 3))
    return Encoder("image", splits.columns.input, processor, channels)
