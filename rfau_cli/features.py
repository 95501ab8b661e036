"""Feature taps of Hugging Face classifiers, the teacher, and the relative feature distance.

A tap is one per-sample feature vector: a `hidden_states` entry of the model (flattened) or
the input of the classifier head (the pooled feature the logits are a linear function of).
The teacher is the same weights with the adapter disabled: no second copy of the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rfau_cli.errors import InputError

EPS = 1e-8


@dataclass(frozen=True)
class TapSpec:
    """Which hidden states to tap (None = all), and whether to tap the head's input."""

    hidden: tuple[int, ...] | None
    head: bool = True

    @classmethod
    def parse(cls, text: str) -> TapSpec:
        """`all`, `head`, `last`, or a comma list of hidden-state indices and `head`."""
        text = text.strip().lower()
        if text == "all":
            return cls(None, True)
        if text == "head":
            return cls((), True)
        if text == "last":
            return cls((-1,), True)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            hidden = tuple(int(p) for p in parts if p != "head")
        except ValueError:
            raise InputError(f"--taps {text!r}: use all, head, last or indices like 0,2,-1,head") from None
        return cls(hidden, "head" in parts)

    def check(self, hidden_states: int | None) -> None:
        """Refuse taps the model does not have (`hidden_states`: how many it returns; None: unknown).

        Raises:
            InputError: no tap at all, or a hidden-state index out of range.
        """
        if not self.head and self.hidden == ():
            raise InputError("--taps selects no feature: use all, head, last or indices like 0,2,-1,head")
        if hidden_states is None or self.hidden is None:
            return
        bad = [i for i in self.hidden if not -hidden_states <= i < hidden_states]
        if bad:
            raise InputError(
                f"--taps {bad[0]}: the model returns {hidden_states} hidden states "
                f"(indices 0..{hidden_states - 1} or -{hidden_states}..-1)"
            )


def find_head(model: Any) -> Any:
    """The classifier head: the last Linear producing num_labels outputs outside the body."""
    import torch

    num_labels = model.config.num_labels
    prefix = getattr(model, "base_model_prefix", "")
    found = None
    for name, module in model.named_modules():
        inside_body = prefix and (name == prefix or name.startswith(prefix + ".") or f".{prefix}." in name)
        if isinstance(module, torch.nn.Linear) and module.out_features == num_labels and not inside_body:
            found = module
    if found is None:
        raise InputError(f"{type(model).__name__}: no linear classifier head with {num_labels} outputs found")
    return found


class TapReader:
    """Runs a model and returns (logits, taps) per the spec; taps are [B, D] float tensors."""

    def __init__(self, model: Any, head: Any, spec: TapSpec) -> None:
        self.model, self.spec = model, spec
        self._head_input = None
        self._hook = head.register_forward_pre_hook(self._capture) if spec.head else None

    def _capture(self, module: Any, args: tuple[Any, ...]) -> None:
        self._head_input = args[0]

    def __call__(self, batch: dict[str, Any], model: Any | None = None) -> tuple[Any, list[Any]]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        want_hidden = self.spec.hidden is None or len(self.spec.hidden) > 0
        out = (model or self.model)(**inputs, output_hidden_states=want_hidden)
        taps = []
        if want_hidden:
            states = out.hidden_states
            chosen = states if self.spec.hidden is None else [states[i] for i in self.spec.hidden]
            taps.extend(s.flatten(1).float() for s in chosen)
        if self.spec.head:
            head_input = self._head_input
            if head_input.dim() == 3:  # token-level heads (GPT-2 `score`): the pooled token is the last
                head_input = head_input[:, -1]
            taps.append(head_input.flatten(1).float())
        return out.logits.float(), taps

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()


@contextlib.contextmanager
def adapter_disabled(model: Any) -> Iterator[None]:
    """The teacher: the same module with its LoRA residual switched off (no copy)."""
    with model.disable_adapter():
        yield


def relative_distance(student: list[Any], target: list[Any], teacher: list[Any]) -> Any:
    """d = ||h - t||^2 / (mean ||h0||^2 + eps), averaged over taps and batch.

    Dividing by the teacher's own squared norm makes taps of very different scale (a stem
    convolution vs the pooled feature) count alike, and makes the loss unit-free.
    """
    total = 0.0
    for h, t, h0 in zip(student, target, teacher, strict=True):
        scale = h0.detach().pow(2).sum(1).mean() + EPS
        total = total + (h - t).pow(2).sum(1).mean() / scale
    return total / max(len(student), 1)
