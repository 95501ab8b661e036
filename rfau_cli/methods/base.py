"""The one interface every unlearning method implements, and the context it runs in.

A method supplies its hyper-parameter defaults and its loss on a (forget batch, retain
batches) pair; the training loop, logging, device handling and saving exist once (loop.py,
unlearn.py). Methods that do not train by gradient steps (SSD) override `fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rfau_cli.data import Splits
from rfau_cli.encoding import Encoder
from rfau_cli.features import TapReader


@dataclass
class FitContext:
    """Everything a method may read: the model, the data splits and the run's settings."""

    model: Any
    head: Any
    taps: TapReader
    splits: Splits
    encoder: Encoder
    accelerator: Any
    settings: Any  # MethodSettings (settings.py)
    num_labels: int
    rng: np.random.Generator
    progress: Any
    original: Any | None = None  # frozen copy of the input model, for methods without an adapter
    original_taps: TapReader | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> Any:
        return self.accelerator.device

    def batch(self, rows: np.ndarray, test: bool = False) -> dict[str, Any]:
        """Encode rows of the training (or test) table and move them to the run's device."""
        table = self.splits.test if test else self.splits.train
        labels = self.splits.test_labels if test else self.splits.labels
        encoded = self.encoder(table, rows, labels)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        encoded["rows"] = rows
        return encoded

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
    defaults: ClassVar[dict[str, float]] = {}

    def setup(self, ctx: FitContext) -> None:
        """Precompute what the loss needs (targets, masks, caches)."""

    def loss(self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int) -> dict[str, Any]:
        """Return {"loss": scalar tensor, other terms: tensors for the progress line}."""
        raise NotImplementedError

    def after_backward(self, ctx: FitContext) -> None:
        """Hook between backward and the optimizer step (gradient masks)."""

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        from rfau_cli.loop import train

        return train(self, ctx)


def join(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch from several (one forward pass instead of k)."""
    import torch

    if len(batches) == 1:
        return batches[0]
    out = {k: torch.cat([b[k] for b in batches]) for k in batches[0] if k != "rows"}
    out["rows"] = np.concatenate([b["rows"] for b in batches])
    return out
