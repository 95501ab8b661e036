"""Registry of unlearning methods: name -> (module path, one-line summary).

A plain dict so `rfau methods` and `--help` list methods without importing torch; a method's
module is imported only when it is chosen. Each module defines `METHOD`, a `Method` subclass.
"""

from __future__ import annotations

import importlib
from typing import Any

from rfau_cli.errors import InputError

REGISTRY: dict[str, tuple[str, str]] = {
    "rfau": ("rfau_cli.methods.rfau", "LoRA residuals: zero on kept data, shifted on forgotten data (default)"),
    "rfau-full": ("rfau_cli.methods.rfau_full", "RFAU's losses on all body weights instead of a LoRA residual"),
    "finetune": ("rfau_cli.methods.finetune", "Fine-tune all weights on the kept data only (catastrophic forgetting)"),
    "grad-ascent": ("rfau_cli.methods.grad_ascent", "Gradient ascent on the forget cross-entropy (no kept-data term)"),
    "neggrad-plus": (
        "rfau_cli.methods.neggrad_plus",
        "Descend on kept data, ascend on forgotten data (Kurmanji et al. 2023)",
    ),
    "random-label": (
        "rfau_cli.methods.random_label",
        "Train forgotten rows toward random other labels, kept rows as usual",
    ),
    "salun": ("rfau_cli.methods.salun", "Random labels on the forget-salient half of the weights (Fan et al. 2024)"),
    "scrub": (
        "rfau_cli.methods.scrub",
        "Student moves away from the original on D_f, stays close on D_r (Kurmanji et al. 2023)",
    ),
    "bad-teacher": (
        "rfau_cli.methods.bad_teacher",
        "Distil a random teacher on D_f, the original on D_r (Chundawat et al. 2023)",
    ),
    "l1-sparse": ("rfau_cli.methods.l1_sparse", "Fine-tune on kept data with a decaying L1 penalty (Jia et al. 2023)"),
    "ssd": (
        "rfau_cli.methods.ssd",
        "Dampen weights far more important to D_f than to D_r; no training (Foster et al. 2024)",
    ),
}


def method_class(name: str) -> Any:
    """The `Method` subclass registered under `name` (its module imports numpy, not torch)."""
    if name not in REGISTRY:
        raise InputError(f"unknown method {name!r}; choose one of: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name][0]).METHOD


def load_method(name: str) -> Any:
    """Instantiate the method registered under `name`."""
    return method_class(name)()
