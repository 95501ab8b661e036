"""Frozen settings of each command, built by the CLI and read by the engines (no torch here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MethodSettings:
    """Hyper-parameters shared by the training loop; None means "the method's default"."""

    epochs: int | None = None
    lr: float | None = None
    rank: int = 8
    alpha: float = 16.0
    gamma: float = 1.0
    batch_size: int = 32
    retain_ratio: int = 4
    target_modules: tuple[str, ...] = ()
    taps: str = "all"
    seed: int = 0

    def resolved(self, defaults: dict[str, float]) -> ResolvedSettings:
        values = asdict(self)
        values["epochs"] = int(self.epochs if self.epochs is not None else defaults.get("epochs", 10))
        values["lr"] = float(self.lr if self.lr is not None else defaults.get("lr", 1e-3))
        extra = {k: v for k, v in defaults.items() if k not in values}
        return ResolvedSettings(**values, extra=extra, epochs_from_user=self.epochs is not None)


@dataclass(frozen=True)
class ResolvedSettings(MethodSettings):
    """Settings with the method's defaults filled in: what the run actually used."""

    epochs: int = 10
    lr: float = 1e-3
    extra: dict[str, float] = field(default_factory=dict)
    # A user's --epochs is a hard cap, never raised; a method's default epochs may be raised
    # to reach its `min_steps` (loop.epochs_to_run).
    epochs_from_user: bool = False


@dataclass(frozen=True)
class DataSettings:
    """Where the data is and how to read it."""

    data: Path
    forget: str
    by: str = "sample"
    split: str = "train"
    test_data: Path | None = None
    id_column: str | None = None
    input_column: str | None = None
    label_column: str | None = None


@dataclass(frozen=True)
class RuntimeSettings:
    device: str = "auto"
    precision: str = "auto"
    quiet: bool = False
    json: bool = False
    cache_mb: int = 2048  # encoded inputs kept in memory (input_cache.py); 0: encode every batch
    workers: int = 0  # DataLoader processes encoding the rows beyond the cache


@dataclass(frozen=True)
class UnlearnConfig:
    model: Path
    out: Path
    data: DataSettings
    method: str = "rfau"
    save: str = "both"
    hparams: MethodSettings = MethodSettings()
    runtime: RuntimeSettings = RuntimeSettings()

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class AuditConfig:
    """What `rfau audit` measures and against what; `require` holds the raw gate expressions."""

    model: Path
    data: DataSettings
    adapter: Path | None = None
    original: Path | None = None
    reference: Path | None = None
    attacks: tuple[str, ...] = ("svc", "loss", "logreg")
    require: tuple[str, ...] = ()
    out: Path | None = None
    seed: int = 0
    runtime: RuntimeSettings = RuntimeSettings()

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class RetrainConfig:
    """`rfau retrain`: train the same architecture on D_r only (init None means from scratch)."""

    model: Path
    out: Path
    data: DataSettings
    init: Path | None = None
    hparams: MethodSettings = MethodSettings(batch_size=64)
    runtime: RuntimeSettings = RuntimeSettings()

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class BenchConfig:
    """`rfau bench`: methods (empty: every registered one) against retrained references.

    `hparams` applies to every method (None epochs/lr: each method's own default), whose seed
    is replaced by each of `seeds` in turn. The references are the `references` checkpoints,
    or else one retrain per `reference_seeds` (empty: per `seeds`) with the recipe
    `retrain_init` + `retrain_hparams`. Two references or more give the noise floor.
    """

    model: Path
    out: Path
    data: DataSettings
    methods: tuple[str, ...] = ()
    references: tuple[Path, ...] = ()
    reference_seeds: tuple[int, ...] = ()
    retrain_init: Path | None = None
    retrain_hparams: MethodSettings = MethodSettings(batch_size=64)
    seeds: tuple[int, ...] = (0,)
    hparams: MethodSettings = MethodSettings()
    runtime: RuntimeSettings = RuntimeSettings()

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))
