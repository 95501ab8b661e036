"""The one interface every unlearning method implements, and the context it runs in.

A method supplies its hyper-parameters (default epochs and lr, and a frozen `Params`
dataclass of its own, set with `--set key=value`) and its loss on a (forget batch, retain
batches) pair; the training loop, logging, device handling and saving exist once (loop.py,
commands/unlearn.py). Methods that do not train by gradient steps (SSD) override `fit`.

The loop imports this module, never the reverse: the engine hands the loop's `train` to
`Method.fit`, so base.py and loop.py form no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rfau_cli.data import Splits
from rfau_cli.encoding import Encoder
from rfau_cli.features import TapReader
from rfau_cli.settings import MethodParams


@dataclass
class FitContext:
    """Everything a method may read: the model, the data splits and the run's settings."""

    model: Any
    head: Any
    taps: TapReader
    splits: Splits
    encoder: Encoder
    accelerator: Any
    settings: Any  # ResolvedSettings (settings.py)
    num_labels: int
    rng: np.random.Generator
    progress: Any
    original: Any | None = None  # frozen copy of the input model, for methods without an adapter
    original_taps: TapReader | None = None
    state: dict[str, Any] = field(default_factory=dict)
    inputs: Any | None = None  # InputCache (input_cache.py): each row encoded once per run
    teacher_store: Any | None = None  # TeacherCache (teacher_cache.py), made on first use
    history: list[dict[str, float]] = field(default_factory=list)  # per-epoch records so far
    # (rows of D_f, the student's float logits on them) from the last per-epoch score (loop.py)
    forget_eval: tuple[np.ndarray, Any] | None = None

    @property
    def params(self) -> Any:
        """The method's own hyper-parameters (its `Params` instance, `--set` values applied)."""
        return self.settings.params

    @property
    def device(self) -> Any:
        return self.accelerator.device

    def batch(self, rows: np.ndarray, test: bool = False) -> dict[str, Any]:
        """Encode rows of the training (or test) table and move them to the run's device."""
        if self.inputs is not None:
            encoded = self.inputs.get(rows, test)
        else:
            table = self.splits.test if test else self.splits.train
            labels = self.splits.test_labels if test else self.splits.labels
            encoded = self.encoder(table, rows, labels)
        # non_blocking: batches the DataLoader pinned (CUDA) copy while the host goes on
        encoded = {k: v.to(self.device, non_blocking=True) for k, v in encoded.items()}
        encoded["rows"] = rows
        return encoded

    def teacher_cached(self, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
        """`teacher` of training rows, each row computed once per run and kept.

        The teacher's inputs are fixed (no augmentation) and its weights never change, so
        its logits and taps on a row are the same at every step: the forget rows, seen every
        epoch, and the retain rows the cursor cycles through are computed once.
        """
        if self.teacher_store is None:
            from rfau_cli.teacher_cache import TeacherCache

            self.teacher_store = TeacherCache(self.splits.forget, self.splits.retain, len(self.splits.labels))
        return self.teacher_store.get(self, batch)

    def teacher(self, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
        """Logits and taps of the original model, without gradients."""
        import torch

        from rfau_cli.features import adapter_disabled

        inputs = {k: v for k, v in batch.items() if k != "rows"}
        with torch.no_grad(), self.accelerator.autocast():
            if self.original_taps is not None:
                return self.original_taps(inputs)
            with adapter_disabled(self.accelerator.unwrap_model(self.model)):
                return self.taps(inputs)

    def student(self, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
        """Logits and taps of the model being trained."""
        inputs = {k: v for k, v in batch.items() if k != "rows"}
        return self.taps(inputs)

    def logits(self, batch: dict[str, Any], model: Any | None = None) -> Any:
        """Plain logits (no taps), for methods that only need the output."""
        inputs = {k: v for k, v in batch.items() if k not in ("rows", "labels")}
        return (model or self.model)(**inputs).logits.float()


# Retain batches paired with each forget batch when --retain-ratio is not given (DESIGN.md).
DEFAULT_RETAIN_RATIO = 4


class Method:
    """Base class: subclasses set the class variables and implement `loss`."""

    name: ClassVar[str] = ""
    uses_lora: ClassVar[bool] = False
    needs_teacher_copy: ClassVar[bool] = False
    # "forget": an epoch is one pass over D_f, each step with k retain batches (cost ~ |D_f|);
    # "retain": an epoch is one pass over D_r (fine-tuning style baselines, retraining).
    drive: ClassVar[str] = "forget"
    uses_forget: ClassVar[bool] = True  # the loop passes forget=None when False
    uses_retain: ClassVar[bool] = True  # the loop passes retain=[] when False
    # Skip a last batch of under half the batch size. For methods that train batch-norm in
    # train mode (retraining): a 4-row batch's statistics corrupt the running statistics.
    # Measured on a digits ResNet trained for 150 epochs on 900 rows at batch 64 (last batch:
    # 4 rows): test accuracy 86.3% with that batch, 90.4% without it (3 seeds each).
    drop_small_last: ClassVar[bool] = False
    default_epochs: ClassVar[int] = 10  # --epochs when not given
    default_lr: ClassVar[float] = 1e-3  # --lr when not given
    default_batch_size: ClassVar[int] = 32  # --batch-size when not given (batch_size_for may grow it)
    Params: ClassVar[type[MethodParams]] = MethodParams  # the method's own hyper-parameters

    @classmethod
    def default_retain_ratio(cls, by: str) -> int:
        """--retain-ratio when not given: retain batches a step (DESIGN.md's k = 4)."""
        return DEFAULT_RETAIN_RATIO

    def batch_size_for(self, settings: Any, splits: Any) -> int:
        """The batch the run takes, once the request is known (`splits`): the resolved --batch-size.
        A method may grow its default with the request where that saves steps, never a user's."""
        return int(settings.batch_size)

    @classmethod
    def check_params(cls, params: MethodParams, id2label: dict[int, str], num_labels: int) -> None:
        """Check the parameters that name the model's classes, once its config is read and before
        any data or weights are loaded (InputError: exit 2). Most methods have none."""

    def setup(self, ctx: FitContext) -> None:
        """Precompute what the loss needs (targets, masks, caches)."""

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        """Return {"loss": scalar tensor, other terms: tensors for the progress line}."""
        raise NotImplementedError

    def after_backward(self, ctx: FitContext) -> None:
        """Hook between backward and the optimizer step (gradient masks)."""

    def stop_reason(self, ctx: FitContext, record: dict[str, float]) -> str | None:
        """Asked after each epoch (`record` is that epoch's line, `ctx.history` all so far):
        a reason ("converged: ...") ends training before the `--epochs` cap. None: go on."""
        return None

    def fit(self, ctx: FitContext, train: Train) -> dict[str, Any]:
        """Train; the default runs the shared loop (`rfau_cli.methods.loop.train`, passed in)."""
        return train(self, ctx)


# The shared training loop's signature (`rfau_cli.methods.loop.train`), as `Method.fit` receives it.
Train = Callable[[Method, FitContext], dict[str, Any]]


def is_flat(history: list[dict[str, float]], key: str, window: int = 3, rel_tol: float = 0.05) -> bool:
    """Whether `key` moved by less than `rel_tol` of its size over the last `window` epochs.

    A generic "nothing left to gain" test for stop criteria (e.g. the retain distance of
    RFAU): the spread (max - min) of the last `window` values is compared with their mean
    magnitude, so it does not depend on the loss's units. False until `window` epochs ran.
    """
    values = [r[key] for r in history[-window:] if key in r]
    if len(values) < window:
        return False
    spread, scale = max(values) - min(values), sum(abs(v) for v in values) / len(values)
    return spread <= rel_tol * scale + 1e-12


def join(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch from several (one forward pass instead of k)."""
    import torch

    if len(batches) == 1:
        return batches[0]
    out = {k: torch.cat([b[k] for b in batches]) for k in batches[0] if k != "rows"}
    out["rows"] = np.concatenate([b["rows"] for b in batches])
    return out
