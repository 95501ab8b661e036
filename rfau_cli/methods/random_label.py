"""Random labels (RL; Golatkar et al. 2020, Hayase et al. 2020, the RL row of Fan et al. 2024):
train the forgotten rows toward wrong labels and the kept rows toward their own.

The wrong label of a forget row is drawn afresh at each step: uniformly among the kept
classes in class mode (a forgotten class is never a target), uniformly among the other
classes in sample mode.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rfau_cli.errors import RunError
from rfau_cli.methods.base import FitContext, Method
from rfau_cli.methods.finetune import cross_entropy


def random_labels(
    labels: np.ndarray, num_labels: int, excluded: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """For each label, a uniformly random class that is neither it nor one of `excluded`."""
    allowed = np.setdiff1d(np.arange(num_labels), excluded)
    pos = np.searchsorted(allowed, labels)
    own = (pos < len(allowed)) & (allowed[np.minimum(pos, len(allowed) - 1)] == labels)
    n_choices = len(allowed) - own.astype(np.int64)  # the own class is skipped when allowed
    if (n_choices < 1).any():
        raise RunError("random labels: no other class left to relabel forgotten rows with")
    draw = (rng.random(len(labels)) * n_choices).astype(np.int64)
    draw += own & (draw >= pos)  # step over the row's own class
    return allowed[draw]


def random_label_loss(ctx: FitContext, forget: dict[str, Any], retain: list[dict[str, Any]]) -> dict[str, Any]:
    """CE(D_f, random wrong labels) + CE(D_r, labels): shared by random-label and salun."""
    import torch

    true = forget["labels"].cpu().numpy()
    wrong = random_labels(true, ctx.num_labels, tuple(ctx.splits.forget_classes), ctx.rng)
    wrong_t = torch.as_tensor(wrong, device=forget["labels"].device)
    ce_f = cross_entropy(ctx, [forget], labels=wrong_t)
    ce_r = cross_entropy(ctx, retain) if retain else torch.zeros((), device=ce_f.device)
    return {"loss": ce_f + ce_r, "forget_ce": ce_f.detach(), "retain_ce": ce_r.detach()}


class RandomLabel(Method):
    name: ClassVar[str] = "random-label"
    # Fan et al. run RL 10 epochs at SGD lr 0.01; AdamW at 1e-3 reaches the same point on
    # these small models within a few passes of D_f (each with k retain batches).
    default_epochs: ClassVar[int] = 5
    default_lr: ClassVar[float] = 1e-3

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        return random_label_loss(ctx, forget, retain)


METHOD = RandomLabel
