"""SalUn (Fan et al. 2024): random-label unlearning restricted to the salient weights.

Setup: the gradient of the forget cross-entropy over all of D_f, taken with respect to every
weight; the `saliency` fraction of weights with the largest |gradient| (one global ranking,
as the paper's hard threshold) form the mask. Training: the random-label loss of
random_label.py, with gradients outside the mask zeroed before each optimizer step, so the
weights that D_f barely touches keep their values exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.random_label import random_label_loss
from rfau_cli.settings import MethodParams, param

SCORE_BATCH = 256


def saliency_masks(grads: list[Any], fraction: float) -> list[Any]:
    """Boolean masks keeping the `fraction` of entries with the largest |grad|, ranked globally.

    Exactly round(fraction * n) entries are kept (ties broken by position).
    """
    import torch

    flat = torch.cat([g.detach().abs().flatten().float() for g in grads])
    k = int(round(min(max(fraction, 0.0), 1.0) * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    masks, start = [], 0
    for g in grads:
        masks.append(keep[start : start + g.numel()].view_as(g))
        start += g.numel()
    return masks


@dataclass(frozen=True)
class SalUnParams(MethodParams):
    saliency: float = param(
        0.5, "Fraction of the weights updated: those with the largest forget-CE gradient.", ge=0, le=1
    )


class SalUn(Method):
    name: ClassVar[str] = "salun"
    # saliency 0.5: the paper's default sparsity (half the weights are updated). Epochs and lr
    # as random-label, whose loss this is.
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 1e-3
    Params: ClassVar[type[MethodParams]] = SalUnParams

    def setup(self, ctx: FitContext) -> None:
        import torch

        params = [p for p in ctx.model.parameters() if p.requires_grad]
        sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        rows = ctx.splits.forget
        for start in range(0, len(rows), SCORE_BATCH):
            batch = ctx.batch(rows[start : start + SCORE_BATCH])
            with ctx.accelerator.autocast():
                # Summed (not mean) CE over the batch, so the total is the gradient over all of D_f.
                ce = torch.nn.functional.cross_entropy(ctx.logits(batch), batch["labels"], reduction="sum")
            grads = torch.autograd.grad(ce, params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s += g.float()
        self.params = params
        self.masks = saliency_masks(sums, ctx.params.saliency)
        kept = sum(int(m.sum()) for m in self.masks)
        ctx.state["salun_masked_fraction"] = kept / max(sum(m.numel() for m in self.masks), 1)

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        return random_label_loss(ctx, forget, retain)

    def after_backward(self, ctx: FitContext) -> None:
        for p, m in zip(self.params, self.masks):
            if p.grad is not None:
                p.grad.mul_(m)


METHOD = SalUn
