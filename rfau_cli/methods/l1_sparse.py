"""L1-sparse fine-tuning (Jia et al. 2023, "Model sparsity can simplify machine unlearning"):
cross-entropy on D_r plus an L1 penalty on all trained weights,

    L = CE(D_r) + lambda_t * sum |theta|,    lambda_t = l1 * (1 - t / T)

with lambda decaying linearly to 0 over the T steps of the run (the paper's best schedule:
sparsity early, then recovery of the kept classes' accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.finetune import cross_entropy
from rfau_cli.settings import MethodParams, param


@dataclass(frozen=True)
class L1SparseParams(MethodParams):
    l1: float = param(5e-4, "Starting weight of the L1 penalty, decayed linearly to 0 over the run.", ge=0)


class L1Sparse(Method):
    name: ClassVar[str] = "l1-sparse"
    drive: ClassVar[str] = "retain"
    uses_forget: ClassVar[bool] = False
    # l1 5e-4: the paper's gamma for CIFAR-10. Epochs and lr as finetune (its base), see there.
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 5e-3
    Params: ClassVar[type[MethodParams]] = L1SparseParams

    def setup(self, ctx: FitContext) -> None:
        from rfau_cli.methods.loop import steps_per_epoch

        self.total_steps = ctx.settings.epochs * steps_per_epoch(self, ctx)

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        ce = cross_entropy(ctx, retain)
        weight = ctx.params.l1 * max(0.0, 1.0 - step / self.total_steps)
        norm = sum(p.abs().sum() for p in ctx.model.parameters() if p.requires_grad)
        return {"loss": ce + weight * norm, "retain_ce": ce.detach(), "l1_norm": norm.detach()}


METHOD = L1Sparse
