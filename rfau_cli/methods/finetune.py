"""Fine-tuning (FT): cross-entropy on the kept data only, relying on catastrophic forgetting.

The oldest unlearning baseline (Golatkar et al. 2020; Warnecke et al. 2023; the FT row of
Jia et al. 2023 and Fan et al. 2024). It never looks at D_f. The cross-entropy helpers here
are shared by the other cross-entropy baselines (neggrad-plus, random-label, l1-sparse, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method, join


def cross_entropy(ctx: FitContext, batches: list[dict[str, Any]], labels: Any | None = None) -> Any:
    """Mean cross-entropy of the trained model on the joined batches (optionally other labels)."""
    import torch

    batch = join(batches)
    targets = batch["labels"] if labels is None else labels
    return torch.nn.functional.cross_entropy(ctx.logits(batch), targets)


class Finetune(Method):
    name: ClassVar[str] = "finetune"
    drive: ClassVar[str] = "retain"
    uses_forget: ClassVar[bool] = False
    # The literature fine-tunes ~10 epochs with SGD (momentum 0.9) at lr 0.01-0.1 (Jia et al.
    # 2023, Fan et al. 2024). On these small models AdamW at 1e-3 only lowered forget accuracy
    # to ~0.8 in 5-10 epochs; 5e-3 forgets a class within 2 epochs and keeps the others. For
    # large pretrained models (ViT, BERT) pass --lr 1e-5..5e-5, as for any fine-tuning.
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 5e-3

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        ce = cross_entropy(ctx, retain)
        return {"loss": ce}


METHOD = Finetune
