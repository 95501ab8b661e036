"""Encoded model inputs of a run, each row encoded once and kept under a memory budget.

Encoding a row (Arrow row access, image decoding, the processor or tokenizer) costs more than
the forward pass of a small model, and a run touches the same rows again and again: every
epoch revisits D_f, the retain cursor cycles D_r, the audit scores D_f, a D_r sample and the
test rows before and after. So the tensors of each row are kept in one preallocated store per
table, filled on first use, a whole batch per `Encoder` call (never row by row).

The budget (`--cache-mb`) decides which rows get a slot, most-used first: D_f (every epoch
and both audits), the test rows and the audit's D_r sample (both audits), then the rest of
D_r. Rows without a slot are encoded on the fly; when the caller knows which batches come
next (`plan`, `iterate`), a `torch.utils.data.DataLoader` with `--workers` processes encodes
them ahead while the model computes, into pinned memory on CUDA.

`Encoder` stays the only code that knows how a row becomes tensors: the cache stores exactly
what it returns, so a cached batch is bit-identical to a freshly encoded one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rfau_cli.encoding import Encoder

DEFAULT_CACHE_MB = 2048
PREFETCH_BATCHES = 2  # per worker: enough to hide encoding behind one step
BULK_ROWS = 1024  # rows per Encoder call when filling the store ahead of a plan


@dataclass
class _Store:
    """One table's slots: slot[row] is the row's place in `tensors`, or -1 (no room)."""

    table: Any
    labels: np.ndarray
    slot: np.ndarray
    filled: np.ndarray
    tensors: dict[str, Any] | None = None

    def missing(self, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` must be encoded: no slot, or a slot not filled yet."""
        slots = self.slot[rows]
        out = slots < 0
        out[~out] = ~self.filled[slots[~out]]
        return out


@dataclass
class _EncodeBatches:
    """Map-style dataset over planned batches, for the DataLoader path (picklable for workers)."""

    encoder: Encoder
    table: Any
    labels: np.ndarray
    chunks: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.encoder(self.table, self.chunks[i], self.labels)


@dataclass
class CacheStats:
    """What the cache did, for the report: rows encoded, rows served from the store."""

    budget_mb: float
    workers: int
    bytes_per_row: int = 0
    slots: int = 0
    rows_encoded: int = 0
    rows_served: int = 0
    encoder_calls: int = 0
    loader_batches: int = 0
    planned_misses: int = 0  # a planned batch asked for in another order: encoded in place

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class InputCache:
    """Rows of the train (and test) table -> the Encoder's tensors, on the CPU, cached.

    `get` serves one batch; `plan` announces batches that will be asked for in that order,
    so their rows without a slot are encoded ahead by a DataLoader; `iterate` does both.
    """

    encoder: Encoder
    train: Any
    labels: np.ndarray
    test: Any | None = None
    test_labels: np.ndarray | None = None
    budget_bytes: int = DEFAULT_CACHE_MB << 20
    workers: int = 0
    pin_memory: bool = False
    priority: Sequence[tuple[bool, np.ndarray]] = ()
    stats: CacheStats = field(init=False)
    _stores: dict[bool, _Store] = field(init=False, default_factory=dict)
    _planned: deque = field(init=False, default_factory=deque)
    _loader_iter: Any = field(init=False, default=None)
    _planned_test: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.stats = CacheStats(budget_mb=self.budget_bytes / (1 << 20), workers=self.workers)
        self._stores[False] = _Store(
            self.train, self.labels, np.full(len(self.labels), -1, np.int64), np.zeros(0, bool)
        )
        if self.test is not None:
            n = len(self.test_labels)
            self._stores[True] = _Store(self.test, self.test_labels, np.full(n, -1, np.int64), np.zeros(0, bool))
        self._allocated = self.budget_bytes <= 0  # nothing to size when nothing is cached

    # -- slots -------------------------------------------------------------------------

    def _allocate(self, sample: dict[str, Any]) -> None:
        """Size the stores from one encoded batch and give slots, most-used rows first."""
        if not len(sample["labels"]):
            return  # an empty batch says nothing about the size of a row
        self._allocated = True
        per_row = sum(v[0].numel() * v.element_size() for v in sample.values())
        self.stats.bytes_per_row = per_row
        room = self.budget_bytes // per_row
        order = [*self.priority]
        for test, store in self._stores.items():  # anything not named in `priority` comes last
            order.append((test, np.arange(len(store.labels))))
        for test, rows in order:
            store = self._stores.get(test)
            if store is None or room <= 0:
                continue
            fresh = np.unique(rows[store.slot[rows] < 0])[:room]
            base = int((store.slot >= 0).sum())
            store.slot[fresh] = base + np.arange(len(fresh))
            room -= len(fresh)
        for store in self._stores.values():
            size = int((store.slot >= 0).sum())
            self.stats.slots += size
            store.filled = np.zeros(size, bool)
            if size:
                store.tensors = {k: torch.empty((size, *v.shape[1:]), dtype=v.dtype) for k, v in sample.items()}

    def _put(self, store: _Store, rows: np.ndarray, encoded: dict[str, Any]) -> None:
        if not self._allocated:
            self._allocate(encoded)
        slots = store.slot[rows]
        keep = slots >= 0
        if store.tensors is None or not keep.any():
            return

        index = torch.as_tensor(slots[keep])
        mask = torch.as_tensor(keep)
        for k, v in encoded.items():
            store.tensors[k][index] = v[mask] if not keep.all() else v
        store.filled[slots[keep]] = True

    # -- serving -----------------------------------------------------------------------

    def get(self, rows: np.ndarray, test: bool = False) -> dict[str, Any]:
        """The Encoder's tensors for `rows` (CPU), from the store where possible."""
        rows = np.asarray(rows, dtype=np.int64)
        store = self._stores[test]
        missing = store.missing(rows)
        planned = self._take_planned(rows, test, bool(missing.any()))
        if planned is not None and missing.any():  # encoded whole, ahead, by the loader
            self._put(store, rows, planned)
            self.stats.rows_encoded += int(missing.sum())
            self.stats.rows_served += int((~missing).sum())
            return planned
        if not missing.any():
            self.stats.rows_served += len(rows)
            return {k: v[torch_index(store.slot[rows])] for k, v in store.tensors.items()}
        fresh = self._encode(store, rows[missing])
        self._put(store, rows[missing], fresh)
        self.stats.rows_encoded += int(missing.sum())
        if missing.all():
            return fresh
        self.stats.rows_served += int((~missing).sum())
        return self._assemble(store, rows, missing, fresh)

    def _assemble(self, store: _Store, rows: np.ndarray, missing: np.ndarray, fresh: dict[str, Any]) -> dict[str, Any]:
        """Rows from the store, with freshly encoded rows (no slot) put in their places."""
        out = {k: v[torch_index(np.where(missing, 0, store.slot[rows]))] for k, v in store.tensors.items()}
        where = torch_index(np.flatnonzero(missing))
        for k in out:
            out[k][where] = fresh[k]
        return out

    def _encode(self, store: _Store, rows: np.ndarray) -> dict[str, Any]:
        self.stats.encoder_calls += 1
        return self.encoder(store.table, rows, store.labels)

    # -- planned batches: the DataLoader path ------------------------------------------

    def plan(self, chunks: Iterable[np.ndarray], test: bool = False) -> None:
        """Batches that will be asked for (by `get`) in this order. Their rows that have a
        slot are encoded now, in bulk; batches holding rows without one are handed to a
        DataLoader, whose workers encode them while the model computes. Replaces any
        earlier plan."""
        self.close()
        chunks = [np.asarray(c, dtype=np.int64) for c in chunks]
        store = self._stores[test]
        todo = [c for c in chunks if len(c) and store.missing(c).any()]
        if not todo:
            return
        if not self._allocated and self.budget_bytes > 0:
            # Rows with a slot are filled by the first encoded batches; size the store first.
            self._put(store, todo[0], self._encode(store, todo[0]))
            self.stats.rows_encoded += len(todo[0])
            todo = [c for c in todo if store.missing(c).any()]
        # Rows with a slot are encoded now, in bulk (BULK_ROWS a call: per-call costs of the
        # table and the processor are paid once per thousand rows, not once per batch).
        slotted = np.unique(
            np.concatenate([c[store.missing(c) & (store.slot[c] >= 0)] for c in todo] or [np.zeros(0, np.int64)])
        )
        for start in range(0, len(slotted), BULK_ROWS):
            part = slotted[start : start + BULK_ROWS]
            self._put(store, part, self._encode(store, part))
            self.stats.rows_encoded += len(part)
        # Only batches holding rows without a slot are left for the DataLoader.
        planned = [c for c in todo if store.missing(c).any()]
        if not planned:
            return

        loader = torch.utils.data.DataLoader(
            _EncodeBatches(self.encoder, store.table, store.labels, planned),
            batch_size=None,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            prefetch_factor=PREFETCH_BATCHES if self.workers > 0 else None,
            persistent_workers=False,
        )
        self._planned = deque(planned)
        self._planned_test = test
        self._loader_iter = iter(loader)

    def _take_planned(self, rows: np.ndarray, test: bool, needed: bool) -> dict[str, Any] | None:
        """The loader's next batch when it is this one; else None (encode here instead).

        A planned batch is consumed even when its rows were filled meanwhile, so that the
        loader never waits on a batch nobody takes."""
        if not self._planned or test != self._planned_test:
            return None
        if not np.array_equal(self._planned[0], rows):
            self.stats.planned_misses += int(needed)
            return None
        self._planned.popleft()
        self.stats.loader_batches += 1
        batch = next(self._loader_iter)
        if not self._planned:
            self.close()
        return batch

    def iterate(self, chunks: Sequence[np.ndarray], test: bool = False) -> Iterator[dict[str, Any]]:
        """`get` for each chunk in turn, with the chunks' encoding planned ahead."""
        self.plan(chunks, test)
        for chunk in chunks:
            yield self.get(chunk, test)

    def close(self) -> None:
        """Drop the current plan (its worker processes exit)."""
        self._planned = deque()
        self._loader_iter = None


def torch_index(index: np.ndarray) -> Any:
    return torch.as_tensor(index, dtype=torch.long)


def build_input_cache(
    encoder: Encoder, splits: Any, audit_retain: np.ndarray | None, cache_mb: int, workers: int, cuda: bool
) -> InputCache:
    """The run's cache, with slots given in order of use: D_f, test, the audit's D_r sample, D_r."""
    priority: list[tuple[bool, np.ndarray]] = [(False, splits.forget)]
    if splits.test is not None:
        priority.append((True, np.arange(len(splits.test_labels))))
    if audit_retain is not None:
        priority.append((False, audit_retain))
    priority.append((False, splits.retain))
    return InputCache(
        encoder,
        splits.train,
        splits.labels,
        splits.test,
        splits.test_labels,
        budget_bytes=int(cache_mb) << 20,
        workers=int(workers),
        pin_memory=cuda,
        priority=priority,
    )
