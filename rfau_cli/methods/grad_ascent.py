"""Gradient ascent (GA, "NegGrad"): maximise the cross-entropy of D_f (Thudi et al. 2022).

Without any term on kept data it soon damages every class, so it runs few, small steps: the
defaults stop about when D_f is no longer recognised (one pass of D_f is a few steps).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.finetune import cross_entropy


class GradAscent(Method):
    name: ClassVar[str] = "grad-ascent"
    uses_retain: ClassVar[bool] = False
    # Measured on the digits ResNet (class 3): lr 1e-4 for 3 epochs still left 78% of D_f
    # recognised; 3e-4 forgot it but halved the other classes' accuracy; 2e-4 for 3 epochs
    # forgets (~0.1) at a cost of ~15 points on the kept classes, the method's known trade-off.
    default_epochs: ClassVar[int] = 3
    default_lr: ClassVar[float] = 2e-4

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        ce = cross_entropy(ctx, [forget])
        return {"loss": -ce, "forget_ce": ce.detach()}


METHOD = GradAscent
