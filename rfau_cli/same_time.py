"""Epochs that give each method of a bench about the same time as one chosen method.

Why: the methods' defaults cost very different amounts (a fine-tuning baseline's five epochs
take a fraction of RFAU's run), so a table of defaults compares quality at unequal cost. A
method that wins by running longer has not won; one that loses because it ran a tenth as
long has not lost either. `rfau bench --same-time-as METHOD` reruns every other method with
as many epochs as fit in METHOD's time, measured on the same machine in the same bench.

The plan comes from the bench's own default runs: a run's time is its setup plus its fit, and
its fit grows with the epochs it ran, so
    epochs = round((anchor's mean time - the method's mean setup) / its mean fit time an epoch)
at least 1. A method whose runs took no gradient steps (SSD dampens once) has no epochs to
scale and is left out, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def same_time_label(method: str, anchor: str) -> str:
    """The bench row of `method` rerun at `anchor`'s time, e.g. "finetune@rfau-time"."""
    return f"{method}@{anchor}-time"


def plan_same_time(runs: Sequence[dict[str, Any]], anchor: str, methods: Sequence[str]) -> dict[str, Any]:
    """The epochs each of `methods` (other than `anchor`) gets to take about `anchor`'s time.

    `runs` are the bench's method runs at their defaults: {method, status, time_s, setup_s,
    fit_s, epochs_run, steps}. Returns {anchor, target_s, methods: {name: {epochs, default
    epochs_run, per_epoch_s, setup_s} or {epochs: None, reason}}}; target_s is None (and every
    method left out) when the anchor has no successful run.
    """
    target = _mean([r.get("time_s") for r in _ok(runs, anchor)])
    plans: dict[str, dict[str, Any]] = {}
    for name in methods:
        if name == anchor:
            continue
        ok = _ok(runs, name)
        if target is None:
            plans[name] = {"epochs": None, "reason": f"{anchor} has no successful run to take the time of"}
            continue
        if not ok:
            plans[name] = {"epochs": None, "reason": "no successful run at its defaults to time an epoch"}
            continue
        if not all(r.get("steps") and r.get("epochs_run") for r in ok):
            plans[name] = {"epochs": None, "reason": "it takes no gradient steps: no epochs to scale"}
            continue
        per_epoch = float(np.mean([r["fit_s"] / r["epochs_run"] for r in ok]))
        setup = _mean([r.get("setup_s") for r in ok]) or 0.0
        epochs = max(1, round((target - setup) / per_epoch)) if per_epoch > 0 else 1
        plans[name] = {
            "epochs": int(epochs),
            "default_epochs_run": _mean([r["epochs_run"] for r in ok]),
            "per_epoch_s": round(per_epoch, 4),
            "setup_s": round(setup, 4),
        }
    return {"anchor": anchor, "target_s": None if target is None else round(target, 3), "methods": plans}


def _ok(runs: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("method") == name and r.get("status") == "ok"]


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
