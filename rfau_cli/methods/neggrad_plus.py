"""NegGrad+ (Kurmanji et al. 2023): descend on kept data and ascend on forgotten data at once.

    L = a * CE(D_r) - (1 - a) * CE(D_f),    a = retain_weight

The kept-data term is what distinguishes it from plain gradient ascent: it repairs the damage
the ascent does to the other classes while D_f's loss grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.finetune import cross_entropy
from rfau_cli.settings import MethodParams, param


@dataclass(frozen=True)
class NegGradPlusParams(MethodParams):
    retain_weight: float = param(0.99, "a: weight of CE(D_r); the ascent on CE(D_f) has weight 1 - a.", ge=0, le=1)


class NegGradPlus(Method):
    name: ClassVar[str] = "neggrad-plus"
    # retain_weight is the paper's alpha (named apart from the LoRA --alpha); 0.99 is its
    # default for CIFAR. The ascent term is small but unbounded, so it wins once D_r is fit.
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 1e-3
    Params: ClassVar[type[MethodParams]] = NegGradPlusParams

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        a = ctx.params.retain_weight
        ce_f = cross_entropy(ctx, [forget])
        ce_r = cross_entropy(ctx, retain) if retain else ce_f.new_zeros(())  # --retain-ratio 0
        return {"loss": a * ce_r - (1.0 - a) * ce_f, "retain_ce": ce_r.detach(), "forget_ce": ce_f.detach()}


METHOD = NegGradPlus
