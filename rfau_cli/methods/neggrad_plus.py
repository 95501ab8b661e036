"""NegGrad+ (Kurmanji et al. 2023): descend on kept data and ascend on forgotten data at once.

    L = a * CE(D_r) - (1 - a) * CE(D_f),    a = retain_weight

The kept-data term is what distinguishes it from plain gradient ascent: it repairs the damage
the ascent does to the other classes while D_f's loss grows.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.finetune import cross_entropy


class NegGradPlus(Method):
    name: ClassVar[str] = "neggrad-plus"
    # retain_weight is the paper's alpha (named apart from the LoRA --alpha); 0.99 is its
    # default for CIFAR. The ascent term is small but unbounded, so it wins once D_r is fit.
    defaults: ClassVar[dict[str, float]] = {"epochs": 5, "lr": 1e-3, "retain_weight": 0.99}

    def loss(self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int) -> dict[str, Any]:
        a = float(ctx.settings.extra["retain_weight"])
        ce_f = cross_entropy(ctx, [forget])
        ce_r = cross_entropy(ctx, retain) if retain else ce_f.new_zeros(())  # --retain-ratio 0
        return {"loss": a * ce_r - (1.0 - a) * ce_f, "retain_ce": ce_r.detach(), "forget_ce": ce_f.detach()}


METHOD = NegGradPlus
