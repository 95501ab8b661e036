"""LoRA adapters on the body of a classifier, with targets found at run time.

Module names differ between architectures and transformers versions (ViT's `q_proj` in 5.x,
BERT's `query`, ResNet's `convolution`), so targets are every Linear/Conv2d inside the base
model (`model.base_model_prefix`), never the classifier head.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Conv2d as LoraConv2d

from rfau_cli.errors import InputError

# A LoRA convolution computes conv(x, W) + s * B(A(x)): three convolutions forward, each with
# its backward. Folding the adapter into the weight, conv(x, W + s * B @ A), is the same
# function with one convolution, at the price of the full weight gradient of W (in*k*k*out
# multiply-adds a position) instead of A's and B's (about 3r*(in*k*k + out)): cheaper in
# arithmetic when out <= ~3r, and always one op instead of three. On the toy digits ResNet
# (16-32 channels, 8x8 images, rank 8) the separate adapter made a training step 1.7x the
# plain fine-tuning step, mostly per-op overhead (docs/performance.md). Folded when out <= 4r:
# real convolutions (64+ channels at rank 8) keep PEFT's own forward.
FOLD_MAX_OUT_PER_RANK = 4


def find_lora_targets(model: Any, requested: tuple[str, ...] = ()) -> list[str]:
    """Full names of the body's Linear/Conv2d modules, filtered by `requested` name parts."""
    prefix = getattr(model, "base_model_prefix", "")
    body = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and (not prefix or name.startswith(prefix + "."))
    ]
    if not requested:
        if not body:
            raise InputError(f"{type(model).__name__}: no Linear/Conv2d modules found under {prefix!r}")
        return body
    chosen = [n for n in body if any(n == r or n.endswith("." + r) or r in n.split(".") for r in requested)]
    if not chosen:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in body})
        raise InputError(
            f"--target-modules {','.join(requested)} matched no body module; available: {', '.join(leaves)}"
        )
    unmatched = [r for r in requested if not any(n == r or n.endswith("." + r) or r in n.split(".") for n in body)]
    if unmatched:
        raise InputError(f"--target-modules {unmatched[0]} matched no body module (the others did)")
    return chosen


def attach_lora(model: Any, targets: list[str], rank: int, alpha: float, seed: int) -> Any:
    """Wrap the model in a PeftModel whose only trainable parameters are the LoRA factors."""
    torch.manual_seed(seed)
    # Sorted: the same targets in any discovery order give the same adapter (and adapter_config.json).
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=sorted(targets), bias="none")
    peft_model = get_peft_model(model, config)
    fold_small_convolutions(peft_model, rank)
    return peft_model.eval()


def fold_small_convolutions(model: Any, rank: int) -> int:
    """Give every LoRA Conv2d with at most FOLD_MAX_OUT_PER_RANK * rank output channels the
    folded forward (`_folded_forward`); returns how many. Same outputs to float rounding,
    same parameters and state dict: saving, merging and PEFT loading are unaffected."""
    folded = 0
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if (
            isinstance(module, LoraConv2d)
            and isinstance(base, torch.nn.Conv2d)
            and base.groups == 1
            # PEFT's A convolution takes the base's kernel, stride and padding but neither its
            # dilation nor its padding mode: only then is the folded conv the same function.
            and all(d == 1 for d in base.dilation)
            and base.padding_mode == "zeros"
            and base.out_channels <= FOLD_MAX_OUT_PER_RANK * rank
        ):
            module.forward = types.MethodType(_folded_forward, module)
            folded += 1
    return folded


def _folded_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """conv(x, W + sum_a s_a * B_a @ A_a): PEFT's vanilla LoRA Conv2d forward in one convolution.

    Anything else (adapter disabled for the teacher, merged weights, per-row adapter names,
    DoRA, dropout, a bias on B) goes to PEFT's own forward.
    """
    if self.disable_adapters or self.merged or args or kwargs:
        return type(self).forward(self, x, *args, **kwargs)
    base = self.base_layer
    weight = base.weight
    for a in self.active_adapters:
        if a not in self.lora_A:
            continue
        if (
            a in self.lora_variant
            or not isinstance(self.lora_dropout[a], torch.nn.Identity)
            or self.lora_B[a].bias is not None
        ):
            return type(self).forward(self, x)
        down, up = self.lora_A[a].weight, self.lora_B[a].weight  # [r, in, k, k], [out, r, 1, 1]
        delta = (up.flatten(1) @ down.flatten(1)).view_as(weight) * self.scaling[a]
        weight = weight + delta.to(weight.dtype)
    return base._conv_forward(x, weight, base.bias)

