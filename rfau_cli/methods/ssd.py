"""Selective Synaptic Dampening (SSD; Foster et al. 2024): no training, one edit of the weights.

The diagonal Fisher information (mean squared gradient of the cross-entropy) is estimated
on D_f and on D_r. A weight far more important to the forgotten data than to the kept data,
I_f > selection * I_r, is shrunk by beta = min(dampening * I_r / I_f, 1); all others are
left exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rfau_cli.methods.base import FitContext, Method, Train
from rfau_cli.settings import MethodParams, param

RETAIN_ROWS = 4096  # D_r rows for its Fisher estimate (seeded sample; the mean converges fast)
EPS = 1e-12


def dampen(weight: Any, i_forget: Any, i_retain: Any, selection: float, dampening: float) -> Any:
    """SSD's rule on one tensor, in place; returns the boolean mask of dampened entries.

    Where I_f > selection * I_r: w <- w * min(dampening * I_r / I_f, 1).
    """
    import torch

    chosen = i_forget > selection * i_retain
    beta = torch.clamp(dampening * i_retain / i_forget.clamp(min=EPS), max=1.0)
    weight.mul_(torch.where(chosen, beta, torch.ones_like(beta)).to(weight.dtype))
    return chosen


@dataclass(frozen=True)
class SSDParams(MethodParams):
    selection: float = param(50.0, "A weight is dampened where I_f > selection * I_r (the paper's alpha).", gt=0)
    dampening: float = param(1.0, "Dampening lambda: beta = min(lambda * I_r / I_f, 1) (the paper's lambda).", gt=0)


class SSD(Method):
    name: ClassVar[str] = "ssd"
    # dampening (the paper's lambda) 1, as the paper. selection (its alpha, named apart from the
    # LoRA --alpha): the paper's 10 dampened 7% of the weights of the digits ResNet and cut the
    # kept classes' accuracy from 0.97 to 0.59. Batch Fisher of a one-class D_f cancels less
    # than that of a mixed D_r batch, which inflates I_f / I_r; 50 forgets the class (0.0) and
    # keeps 0.96 (40-50 do, 20 costs 25 points, 70 leaves 0.2 of D_f). The estimate depends on
    # --batch-size (32 here, as the paper's code uses its loader's batch); retune both together.
    # No epochs or lr are used.
    default_epochs: ClassVar[int] = 1
    default_lr: ClassVar[float] = 1e-3
    Params: ClassVar[type[MethodParams]] = SSDParams

    def fit(self, ctx: FitContext, train: Train) -> dict[str, Any]:
        """No gradient steps: dampen the selected weights once (`train` is not used)."""
        import torch

        from rfau_cli.methods.loop import forget_accuracy

        params = [p for p in ctx.model.parameters() if p.requires_grad]
        retain = ctx.splits.retain
        if len(retain) > RETAIN_ROWS:
            retain = np.sort(ctx.rng.choice(retain, RETAIN_ROWS, replace=False))
        task = ctx.progress.add_task(self.name, total=2)
        i_forget = self._fisher(ctx, params, ctx.splits.forget)
        ctx.progress.advance(task)
        i_retain = self._fisher(ctx, params, retain)
        ctx.progress.advance(task)
        ctx.progress.remove_task(task)
        selection, dampening = ctx.params.selection, ctx.params.dampening
        dampened = 0
        with torch.no_grad():
            for p, f, r in zip(params, i_forget, i_retain):
                dampened += int(dampen(p, f, r, selection, dampening).sum())
        total = sum(p.numel() for p in params)
        ctx.state["ssd_dampened_fraction"] = dampened / max(total, 1)
        record = {"epoch": 1, "dampened": float(dampened), "forget_acc": forget_accuracy(ctx)}
        ctx.progress.log_epoch(self.name, record)
        return {"history": [record], "steps": 0, "trainable_parameters": total}

    def _fisher(self, ctx: FitContext, params: list[Any], rows: np.ndarray) -> list[Any]:
        """Diagonal Fisher: squared gradient of the batch-mean CE, averaged over batches.

        Batched as in the paper's code (one backward a batch, not one a row).
        """
        import torch

        sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        n_batches = 0
        size = ctx.settings.batch_size
        for start in range(0, len(rows), size):
            batch = ctx.batch(rows[start : start + size])
            with ctx.accelerator.autocast():
                ce = torch.nn.functional.cross_entropy(ctx.logits(batch), batch["labels"])
            grads = torch.autograd.grad(ce, params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s += g.float().pow(2)
            n_batches += 1
        return [s / max(n_batches, 1) for s in sums]


METHOD = SSD
