"""The teacher's logits and taps of every training row, computed once per run.

The teacher (the frozen original: the same weights with the adapter disabled, or the frozen
copy of methods without an adapter) sees fixed inputs (no augmentation is used), so its
output on a row never changes during a run. Before, the forget rows' teacher outputs were
recomputed at every step (each forget row once an epoch) and only retain rows were kept.

Slots go to D_f first (every epoch uses all of it), then D_r, until the budget is spent;
rows beyond it are recomputed when asked for, as before. Only the rows of a batch that are
not stored yet go through the teacher, so no row is ever forwarded twice while it has a slot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CACHE_BUDGET_BYTES = 1 << 30  # logits + taps in float32, on the run's device


class TeacherCache:
    """Teacher (logits, taps) per training row, filled on first use."""

    def __init__(
        self, forget: np.ndarray, retain: np.ndarray, n_rows: int, budget_bytes: int = CACHE_BUDGET_BYTES
    ) -> None:
        self.order = np.concatenate([forget, retain]).astype(np.int64)  # slot priority
        self.n_rows = n_rows
        self.budget_bytes = budget_bytes
        self.slot: np.ndarray | None = None
        self.filled: np.ndarray | None = None
        self.store: list[Any] | None = None
        self.forwards = 0  # teacher forward passes (calls), for tests and the report
        self.rows_computed = 0
        self.rows_served = 0

    def get(self, ctx: Any, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
        rows = np.asarray(batch["rows"], dtype=np.int64)
        known = np.zeros(len(rows), dtype=bool)
        if self.slot is not None:
            slots = self.slot[rows]
            known = slots >= 0
            known[known] = self.filled[slots[known]]
            if known.all():
                self.rows_served += len(rows)
                idx = _index(slots, self.store[0].device)
                return self.store[0][idx], [s[idx] for s in self.store[1:]]
        need = np.flatnonzero(~known)
        uniq, first = np.unique(rows[need], return_index=True)
        if len(uniq) == len(rows):  # nothing stored yet, no repeated row: the batch as it is
            logits, taps = self._forward(ctx, batch)
            self._put(rows, [logits, *taps])
            return logits, taps
        # Only the rows not stored yet go through the teacher, each once (a batch that wraps
        # around the retain cursor's pass can hold a row twice).
        logits, taps = self._forward(ctx, _select(batch, need[first]))
        fresh = [logits, *taps]
        self._put(uniq, fresh)
        slots = self.slot[rows]
        device = fresh[0].device
        out = [torch.empty((len(rows), *f.shape[1:]), dtype=torch.float32, device=device) for f in fresh]
        has_slot = slots >= 0
        if has_slot.any():
            idx, pos = _index(slots[has_slot], device), _index(np.flatnonzero(has_slot), device)
            for o, stored in zip(out, self.store):
                o[pos] = stored[idx]
        if not has_slot.all():  # beyond the budget: straight from this forward
            which = _index(np.searchsorted(uniq, rows[~has_slot]), device)
            pos = _index(np.flatnonzero(~has_slot), device)
            for o, f in zip(out, fresh):
                o[pos] = f[which].float()
        self.rows_served += int(known.sum())
        return out[0], out[1:]

    def _forward(self, ctx: Any, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
        self.forwards += 1
        self.rows_computed += len(batch["rows"])
        return ctx.teacher(batch)

    def _allocate(self, tensors: list[Any]) -> None:
        """Slots for as many rows as the budget holds, D_f first."""
        per_row = sum(t[0].numel() * 4 for t in tensors)
        rows = self.order[: max(0, self.budget_bytes // max(per_row, 1))]
        self.slot = np.full(self.n_rows, -1, dtype=np.int64)
        self.slot[rows] = np.arange(len(rows))
        self.filled = np.zeros(len(rows), dtype=bool)
        device = tensors[0].device
        self.store = [torch.zeros((len(rows), *t.shape[1:]), device=device) for t in tensors]

    def _put(self, rows: np.ndarray, tensors: list[Any]) -> None:
        if self.slot is None:  # the first teacher output sizes the store
            self._allocate(tensors)
        slots = self.slot[rows]
        keep = slots >= 0
        if not keep.any():
            return
        idx = _index(slots[keep], tensors[0].device)
        pick = _index(np.flatnonzero(keep), tensors[0].device)
        for store, t in zip(self.store, tensors):
            store[idx] = t[pick].float()
        self.filled[slots[keep]] = True

    def stats(self) -> dict[str, int]:
        return {
            "forwards": self.forwards,
            "rows_computed": self.rows_computed,
            "rows_served": self.rows_served,
            "slots": 0 if self.filled is None else len(self.filled),
        }


def _index(index: np.ndarray, device: Any) -> Any:
    return torch.as_tensor(index, dtype=torch.long, device=device)


def _select(batch: dict[str, Any], which: np.ndarray) -> dict[str, Any]:
    """The rows `which` (positions) of a batch: tensors and the `rows` array alike."""
    out = {}
    for k, v in batch.items():
        out[k] = v[which] if isinstance(v, np.ndarray) else v[_index(which, v.device)]
    return out
