"""The report.json schema (keys as constants) and its writer."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

from rfau_cli import __version__

SCHEMA_VERSION = 1
TOOL = "rfau"
REPORT_KEYS = (
    "schema_version",
    "tool",
    "command",
    "versions",
    "inputs",
    "forget_count",
    "method",
    "settings",
    "seed",
    "device",
    "precision",
    "timings_s",
    "peak_memory_mib",
    "trainable_parameters",
    "training",
    "metrics",
    "outputs",
    "ledger",
)


def report_header(command: str) -> dict[str, Any]:
    """The keys every JSON rfau writes starts with: schema, tool, command and library versions."""
    return {"schema_version": SCHEMA_VERSION, "tool": TOOL, "command": command, "versions": library_versions()}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers (imported lazily, already loaded)."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "rfau": __version__}
    for name in ("torch", "transformers", "peft", "accelerate", "datasets", "safetensors", "numpy", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to python, NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(clean(report), indent=2, sort_keys=False)


def write_report(report: dict[str, Any], path: Path) -> None:
    Path(path).write_text(dumps(report) + "\n")
