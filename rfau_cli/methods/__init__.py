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
}


def method_names() -> list[str]:
    return list(REGISTRY)


def load_method(name: str) -> Any:
    """Instantiate the method registered under `name`."""
    if name not in REGISTRY:
        raise InputError(f"unknown method {name!r}; choose one of: {', '.join(REGISTRY)}")
    module = importlib.import_module(REGISTRY[name][0])
    return module.METHOD()
