"""Bad teacher (Chundawat et al. 2023): distil an incompetent teacher on D_f and the
competent one on D_r.

Competent teacher: the frozen original. Incompetent teacher: a randomly initialised model of
the same config (seeded with --seed), so forgotten rows get the near-uniform answers of a
model that never learned anything. The student (the model) minimises KL(teacher || student)
at temperature 1 (the paper's), per row against the teacher its split calls for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rfau_cli.methods.base import FitContext, Method, join
from rfau_cli.methods.scrub import distill_kl
from rfau_cli.settings import MethodParams, param


@dataclass(frozen=True)
class BadTeacherParams(MethodParams):
    kd_t: float = param(1.0, "Distillation temperature of both KL terms (the paper's 1).", gt=0)


class BadTeacher(Method):
    name: ClassVar[str] = "bad-teacher"
    needs_teacher_copy: ClassVar[bool] = True
    # The paper: 1 epoch over D_f plus a 30% sample of D_r, Adam lr 1e-4, temperature 1. One
    # pass over a small D_f is a handful of steps here, so a few epochs at 1e-3 give the student
    # about as many updates per forgotten row; each step's k retain batches play the D_r sample.
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 1e-3
    Params: ClassVar[type[MethodParams]] = BadTeacherParams

    def setup(self, ctx: FitContext) -> None:
        import torch

        from rfau_cli.toy import fresh_model

        with torch.random.fork_rng(devices=[]):  # do not disturb the run's global RNG stream
            torch.manual_seed(ctx.settings.seed)
            bad = fresh_model(ctx.model.config)
        self.incompetent = bad.to(ctx.device).eval().requires_grad_(False)

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        import torch

        t = ctx.params.kd_t
        batch = join([forget, *retain])
        n_f = len(forget["rows"])
        with torch.no_grad():
            bad = ctx.logits(forget, model=self.incompetent)
            good = ctx.logits(join(retain), model=ctx.original) if retain else bad[:0]
        logits = ctx.logits(batch)
        kl_f = distill_kl(logits[:n_f], bad, t)
        kl_r = distill_kl(logits[n_f:], good, t) if retain else torch.zeros((), device=kl_f.device)
        # Weighted by rows, as the paper's single KL over a mixed batch.
        n = len(batch["rows"])
        loss = (kl_f * n_f + kl_r * (n - n_f)) / n
        return {"loss": loss, "forget_kl": kl_f.detach(), "retain_kl": kl_r.detach()}


METHOD = BadTeacher
