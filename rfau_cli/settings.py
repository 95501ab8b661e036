"""Frozen settings of each command, built by the CLI and read by the engines (no torch here).

Every flag value is checked when its settings object is built (`__post_init__`), so a bad
value exits 2 before any file is read. A method's own hyper-parameters are a `MethodParams`
subclass declared beside the method, set from the command line with `--set key=value`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rfau_cli.errors import InputError

BY_CHOICES = ("sample", "class")
SAVE_CHOICES = ("adapter", "merged", "both")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{option} must be {choice_list(choices)}, not {value!r}")


def choice_list(choices: tuple[str, ...] | list[str]) -> str:
    """'a, b or c'."""
    return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else "".join(choices)


def param(default: Any, help: str, *, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Any:
    """A method parameter: its default, its help (shown by `rfau methods --verbose`) and bounds."""
    return field(default=default, metadata={"help": help, "gt": gt, "ge": ge, "le": le})


@dataclass(frozen=True)
class MethodParams:
    """Base of a method's own hyper-parameters; subclasses declare fields with `param(...)`.

    Values are checked against the bounds their field declares; `from_strings` builds an
    instance from `--set key=value` pairs, each value parsed to its field's type.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"--set {f.name}={value}: must be a finite number")
            if meta.get("gt") is not None and not value > meta["gt"]:
                raise InputError(f"--set {f.name}={value}: must be greater than {meta['gt']}")
            if meta.get("ge") is not None and not value >= meta["ge"]:
                raise InputError(f"--set {f.name}={value}: must be at least {meta['ge']}")
            if meta.get("le") is not None and not value <= meta["le"]:
                raise InputError(f"--set {f.name}={value}: must be at most {meta['le']}")

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """(name, type name, default, help) of every parameter, in declaration order."""
        hints = typing.get_type_hints(cls)
        return [(f.name, hints[f.name].__name__, _default(f), f.metadata.get("help", "")) for f in fields(cls)]

    @classmethod
    def from_strings(cls, pairs: Mapping[str, str], method: str) -> MethodParams:
        """An instance with `pairs` (`--set` values, as typed) parsed over the defaults.

        Raises:
            InputError: a key the method does not have (the valid ones are listed), or a value
                that does not parse to its field's type or breaks its bounds.
        """
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        unknown = [k for k in pairs if k not in names]
        if unknown:
            valid = ", ".join(names) if names else "none"
            raise InputError(f"--set {unknown[0]}: method {method} has no such parameter; valid: {valid}")
        return cls(**{k: _parse_value(k, v, hints[k]) for k, v in pairs.items()})


def _default(f: Field) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def _parse_value(key: str, text: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        return kind(text.strip()) if kind in (int, float) else kind(text)
    except ValueError:
        raise InputError(f"--set {key}={text!r}: not a valid {kind.__name__}") from None


def parse_sets(texts: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """`--set key=value` options as (key, value) pairs, in order (a repeated key: the last wins)."""
    pairs = []
    for text in texts or ():
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set takes key=value, not {text!r}")
        pairs.append((key.strip(), value))
    return tuple(pairs)


@dataclass(frozen=True)
class MethodSettings:
    """Hyper-parameters shared by the training loop; None means "the method's default".

    `sets` holds the `--set key=value` pairs for the method's own parameters (its `Params`),
    parsed and checked by `resolved`.
    """

    epochs: int | None = None
    lr: float | None = None
    rank: int = 8
    alpha: float = 16.0
    gamma: float = 1.0
    batch_size: int | None = None  # None: the method's (Method.batch_size_for: RFAU's sample mode grows it)
    retain_ratio: int | None = None  # None: the method's default for the mode (Method.default_retain_ratio)
    target_modules: tuple[str, ...] = ()
    taps: str = "all"
    seed: int = 0
    sets: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise InputError("--epochs must be at least 1")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError("--lr must be positive")
        for name in ("batch_size", "rank"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        if self.retain_ratio is not None and self.retain_ratio < 0:
            raise InputError("--retain-ratio must be 0 or more")

    def resolved(self, method: Any, by: str = "sample") -> ResolvedSettings:
        """These settings with `method`'s defaults (epochs, lr, retain ratio for the mode `by`, its
        Params) and `--set` values filled in."""
        values = asdict(self)
        values["retain_ratio"] = int(
            self.retain_ratio if self.retain_ratio is not None else method.default_retain_ratio(by)
        )
        values["epochs"] = int(self.epochs if self.epochs is not None else method.default_epochs)
        values["lr"] = float(self.lr if self.lr is not None else method.default_lr)
        values["batch_size"] = int(self.batch_size if self.batch_size is not None else method.default_batch_size)
        params = method.Params.from_strings(dict(self.sets), method.name)
        return ResolvedSettings(
            **values, params=params, epochs_from_user=self.epochs is not None,
            batch_size_from_user=self.batch_size is not None,
        )  # fmt: skip


@dataclass(frozen=True)
class ResolvedSettings(MethodSettings):
    """Settings with the method's defaults filled in: what the run actually used."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    retain_ratio: int = 4
    params: MethodParams = MethodParams()  # the method's own, typed (ctx.params)
    # A user's --epochs is a hard cap, never raised; a method's default epochs may be raised
    # to reach its `min_steps` (loop.epochs_to_run).
    epochs_from_user: bool = False
    # Likewise a user's --batch-size is used as given; a method may grow its default for the
    # request once the data is read (Method.batch_size_for).
    batch_size_from_user: bool = False


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

    def __post_init__(self) -> None:
        _check_choice("--by", self.by, BY_CHOICES)


@dataclass(frozen=True)
class RuntimeSettings:
    device: str = "auto"
    precision: str = "auto"
    quiet: bool = False
    json: bool = False
    cache_mb: int = 2048  # encoded inputs kept in memory (input_cache.py); 0: encode every batch
    workers: int = 0  # DataLoader processes encoding the rows beyond the cache

    def __post_init__(self) -> None:
        _check_choice("--device", self.device, DEVICE_CHOICES)
        _check_choice("--precision", self.precision, PRECISION_CHOICES)
        if self.cache_mb < 0:
            raise InputError("--cache-mb must be 0 or more")
        if self.workers < 0:
            raise InputError("--workers must be 0 or more")


@dataclass(frozen=True)
class UnlearnConfig:
    model: Path
    out: Path
    data: DataSettings
    method: str = "rfau"
    save: str = "both"
    hparams: MethodSettings = MethodSettings()
    runtime: RuntimeSettings = RuntimeSettings()

    def __post_init__(self) -> None:
        _check_choice("--save", self.save, SAVE_CHOICES)

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


LIRA_REFERENCES = 8  # --references default: 4 in- and 4 out-models a candidate
LIRA_MIN_REFERENCES = 2  # below 4 only the offline (out-models) attack runs


@dataclass(frozen=True)
class LiraSettings:
    """LiRA's reference models: how many, where they are cached (None: the default cache
    directory, reference_models.default_reference_dir) and the retrain recipe they use."""

    references: int = LIRA_REFERENCES
    reference_dir: Path | None = None
    init: Path | None = None
    hparams: MethodSettings = MethodSettings(batch_size=64)

    def __post_init__(self) -> None:
        if self.references < LIRA_MIN_REFERENCES:
            raise InputError(
                f"--references must be at least {LIRA_MIN_REFERENCES} (4 or more for online LiRA; 2-3 run its "
                f"offline variant), not {self.references}"
            )


@dataclass(frozen=True)
class AuditConfig:
    """What `rfau audit` measures and against what; `require` holds the raw gate expressions.

    `lira` is used when `attacks` holds "lira"; `lira_given` says a LiRA flag was given
    (--references, --reference-dir, --retrain-*), which without the attack is an error.
    """

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
    lira: LiraSettings = LiraSettings()
    lira_given: bool = False
    per_sample: Path | None = None

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
    attacks: tuple[str, ...] = ("svc", "loss", "logreg")
    lira: LiraSettings = LiraSettings()  # its recipe: retrain_init + retrain_hparams
    # rerun every other method with the epochs that take about this method's time (same_time.py)
    same_time_as: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))
