"""LoRA adapters on the body of a classifier, with targets found at run time.

Module names differ between architectures and transformers versions (ViT's `q_proj` in 5.x,
BERT's `query`, ResNet's `convolution`), so targets are every Linear/Conv2d inside the base
model (`model.base_model_prefix`), never the classifier head.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from rfau_cli.errors import InputError


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
    return peft_model.eval()
