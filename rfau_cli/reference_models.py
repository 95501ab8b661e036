"""LiRA's reference models: trained through the retrain path, cached by content, reused.

    candidates (D_f, the audit's D_r sample, every test row) -> balanced membership [N, C]
    -> per reference: cached? load its scores : retrain on its rows, score, store
    -> Calibration (score matrix, membership, Gaussian fits)

Each reference trains the audited architecture from scratch (or `--retrain-init`) with the
retrain recipe, on the rows of D_r that are not candidates plus its half of the candidates
(so test rows are trained on too, by half of the references). It runs the very method and
loop `rfau retrain` runs (passed in by the command: library modules never import commands),
on a table that stacks the training rows and the test rows.

A reference is stored under `--reference-dir` in a directory named by the sha256 of
everything that decides its weights: the data and test fingerprints and labels, the
candidate rows and its own training rows, the recipe (epochs, lr, batch size, init weights'
sha256), its seed, and the identity of the architecture (the normalised config and the
processor files; not the audited weights, so auditing the original and an unlearned model
of it shares the references). It holds the merged weights (`save_pretrained`, safetensors),
its phi on the candidates (`scores.npz`) and `reference.json` (what the key was made of).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rfau_cli import lira as L
from rfau_cli.audit import Scores
from rfau_cli.data import Splits
from rfau_cli.errors import InputError
from rfau_cli.input_cache import InputCache
from rfau_cli.settings import LiraSettings

CACHE_ENV = "RFAU_CACHE"  # its `references/` holds the references; default ~/.cache/rfau
SCORES_FILE = "scores.npz"
META_FILE = "reference.json"
KEY_VERSION = 1  # bump when what a reference is (training or scoring) changes
PROCESSOR_FILES = (
    "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
    "special_tokens_map.json",
)
VOLATILE_CONFIG_KEYS = ("transformers_version", "torch_dtype", "dtype")  # set by whoever saved the checkpoint


def default_reference_dir() -> Path:
    """`$RFAU_CACHE/references`, else `$XDG_CACHE_HOME/rfau/references` (~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "references"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "rfau" / "references"


def check_reference_dir(path: Path | None) -> Path:
    """The cache directory to use; it need not exist yet (nothing is created here).

    Raises:
        InputError: the path is a file, or it (or its nearest existing parent) is not a
            writable directory.
    """
    directory = Path(path).expanduser() if path is not None else default_reference_dir()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--reference-dir {directory} is a file, not a directory")
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--reference-dir {directory}: {existing or directory} is not a writable directory")
    return directory


@dataclass(frozen=True)
class Candidates:
    """The rows LiRA scores, in one order: D_f, the audit's D_r sample, then the test rows.

    `forget` and `retain` index the training table, `test` the test table; in the stacked
    table references train on, test row t is row `n_train + t`.
    """

    forget: np.ndarray
    retain: np.ndarray
    test: np.ndarray
    n_train: int

    @classmethod
    def of(cls, splits: Splits, rows: Any) -> Candidates:
        """The rows `Job.audit` scores: in sample mode after an earlier class request (ledger)
        it leaves out the test rows of those classes, and so do the candidates."""
        test = np.arange(0 if splits.test_labels is None else len(splits.test_labels))
        if splits.by != "class" and splits.earlier_classes and test.size:
            test = test[~np.isin(splits.test_labels, splits.earlier_classes)]
        return cls(rows.forget, rows.retain, test, len(splits.labels))

    @property
    def stacked(self) -> np.ndarray:
        return np.concatenate([self.forget, self.retain, self.n_train + self.test]).astype(np.int64)

    @property
    def sizes(self) -> dict[str, int]:
        return {"forget": len(self.forget), "retain": len(self.retain), "test": len(self.test)}

    def phi(self, scores: dict[str, Scores]) -> np.ndarray:
        """The logit-scaled confidence of a model's audit scores, in candidate order."""
        parts = [scores[name] for name in ("forget", "retain", "test")]
        return np.concatenate([L.logit_confidence(s.log_probs, s.labels) for s in parts])

    def split(self, values: np.ndarray) -> dict[str, np.ndarray]:
        a, b = len(self.forget), len(self.forget) + len(self.retain)
        return {"forget": values[:a], "retain": values[a:b], "test": values[b:]}


@dataclass
class Calibration:
    """The references' phi on the candidates, who trained on what, and the Gaussian fits."""

    candidates: Candidates
    scores: np.ndarray  # [N, C]
    member: np.ndarray  # [N, C] bool
    online: bool
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fits = L.fit_gaussians(self.scores, self.member)
        self.info["variance"] = "global" if self.fits.global_variance else "per-example"

    def membership_scores(self, scores: dict[str, Scores]) -> np.ndarray:
        """Per-candidate LiRA score of the model whose audit scores these are."""
        return L.likelihood_ratio(self.candidates.phi(scores), self.fits, self.online)


@dataclass
class StackedTable:
    """The training table's rows then the test table's, as one table for the Encoder
    (`table[[rows]][column]`), so a reference trains on training and test rows alike."""

    train: Any
    test: Any
    column: str

    def __len__(self) -> int:
        return len(self.train) + (0 if self.test is None else len(self.test))

    def __getitem__(self, rows: list[int]) -> dict[str, list[Any]]:
        idx = np.asarray(rows, dtype=np.int64)
        n = len(self.train)
        out: list[Any] = [None] * len(idx)
        for mask, table, offset in ((idx < n, self.train, 0), (idx >= n, self.test, n)):
            if mask.any():
                values = table[[int(i) - offset for i in idx[mask]]][self.column]
                for place, value in zip(np.flatnonzero(mask), values):
                    out[place] = value
        return {self.column: out}


def build_calibration(job: Any, lira: LiraSettings, method: Any, train: Any, directory: Path) -> Calibration:
    """Load or train the N references and fit LiRA's Gaussians.

    Args:
        job: the audit's Job (data, encoder, accelerator, the audit's rows and seed).
        lira: count, cache directory and recipe.
        method: the retrain Method (`commands.retrain.Retrain(init)`); `train`: the shared loop.
        directory: the checked cache directory (check_reference_dir).
    """
    candidates = Candidates.of(job.splits, job.rows)
    n, online = lira.references, lira.references >= L.ONLINE_MIN
    member = L.membership(n, len(candidates.stacked), job.seed)
    settings = [replace(lira.hparams, seed=reference_seed(job.seed, i)).resolved(method) for i in range(n)]
    common = _common_key(job, lira, candidates, settings[0])
    always_in = np.setdiff1d(job.splits.retain, candidates.retain)  # D_r rows that are never candidates
    rows = [np.sort(np.concatenate([always_in, candidates.stacked[member[i]]])) for i in range(n)]
    keys = [_digest({**common, "seed": settings[i].seed, "rows": _digest(rows[i].tolist())}) for i in range(n)]
    scores: list[np.ndarray | None] = [_load_scores(directory / k, len(candidates.stacked)) for k in keys]
    todo = [i for i in range(n) if scores[i] is None]
    progress = job.progress
    steps = _steps(len(rows[0]), settings[0].batch_size) * settings[0].epochs
    progress.log(
        f"LiRA ({'online' if online else 'offline: fewer than 4 references, out-models only'}): {n} reference models "
        f"in {directory}, {n - len(todo)} cached; training {len(todo)}, each a retrain on {len(rows[0])} rows for "
        f"{settings[0].epochs} epochs ({steps} steps of {settings[0].batch_size} rows)"
    )
    if todo:
        trainer = _Trainer(job, method, train, candidates)
        task = progress.add_task("LiRA references", total=len(todo))
        for done, i in enumerate(todo):
            started = time.perf_counter()
            meta = {**common, "rows": len(rows[i])}
            scores[i] = trainer.fit_and_score(rows[i], settings[i], directory / keys[i], meta)
            progress.advance(task)
            if done == 0 and len(todo) > 1:
                took = time.perf_counter() - started
                progress.log(f"LiRA: first reference {took:.1f}s; about {took * (len(todo) - 1):.0f}s for the rest")
        progress.remove_task(task)
        trainer.close()
    info = {
        "mode": "online" if online else "offline",
        "references": n,
        "reference_dir": str(directory),
        "keys": keys,
        "reused": [keys[i] for i in range(n) if i not in todo],
        "trained": [keys[i] for i in todo],
        "candidates": candidates.sizes,
        "recipe": common["recipe"],
    }
    if not online:
        info["note"] = "offline LiRA: under 4 references, only out-models are fitted (--references 4+ for online)"
    return Calibration(candidates, np.stack(scores), member, online, info)


def reference_seed(seed: int, index: int) -> int:
    """Reference `index`'s training seed, derived from the audit seed (distinct per pair)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _steps(rows: int, batch: int) -> int:
    return max(1, -(-rows // batch))


class _Trainer:
    """Trains references on the stacked table through the retrain method and the shared loop."""

    def __init__(self, job: Any, method: Any, train: Any, candidates: Candidates) -> None:
        from rfau_cli.progress import Progress

        self.job, self.method, self.train, self.candidates = job, method, train, candidates
        splits = job.splits
        table = StackedTable(splits.train, splits.test, splits.columns.input)
        test_labels = splits.test_labels if splits.test_labels is not None else np.zeros(0, np.int64)
        self.labels = np.concatenate([splits.labels, test_labels]).astype(np.int64)
        self.table = table
        inputs = job.inputs
        # One cache for every reference: each stacked row is encoded once for all N of them.
        self.inputs = InputCache(
            job.encoder, table, self.labels,
            budget_bytes=inputs.budget_bytes if inputs is not None else 0,
            workers=inputs.workers if inputs is not None else 0,
            pin_memory=inputs.pin_memory if inputs is not None else False,
        )
        self.quiet = Progress(quiet=True)

    def fit_and_score(self, rows: np.ndarray, settings: Any, where: Path, key_parts: dict[str, Any]) -> np.ndarray:
        from rfau_cli.toy import fresh_model

        own = replace(
            self.job.splits, train=self.table, test=None, labels=self.labels, test_labels=None,
            forget=np.zeros(0, np.int64), retain=rows, forget_classes=(), by="sample",
            earlier=np.zeros(0, np.int64), earlier_classes=(), request_classes=(),
        )
        config = _base_model(self.job.model).config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            sub = replace(self.job, model=fresh_model(config), splits=own, inputs=self.inputs, progress=self.quiet)
            ctx = sub.fit_context(self.method, settings)
            self.method.setup(ctx)
            self.method.fit(ctx, self.train)
        model = ctx.model.eval()
        self.job.accelerator.free_memory()  # the loop's prepare() registered the model and optimizer
        # Scored exactly as the audited model is (Job.audit: the same rows, the same filters).
        out, _ = replace(self.job, progress=self.quiet).audit(model, ("loss",))
        phi = self.candidates.phi(out)
        _store(where, model, phi, {**key_parts, "seed": settings.seed, "epochs": settings.epochs})
        return phi

    def close(self) -> None:
        self.inputs.close()


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _common_key(job: Any, lira: LiraSettings, candidates: Candidates, settings: Any) -> dict[str, Any]:
    """What every reference of this audit shares, as JSON: the data, the rows, the recipe, the model."""
    from rfau_cli.checkpoint import sha256_file

    splits = job.splits
    config = {
        k: v for k, v in _base_model(job.model).config.to_dict().items()
        if not k.startswith("_") and k not in VOLATILE_CONFIG_KEYS
    }
    processor = {f: sha256_file(job.ref.dir / f) for f in PROCESSOR_FILES if (job.ref.dir / f).is_file()}
    init = None
    if lira.init is not None:
        from rfau_cli.checkpoint import resolve_checkpoint, weights_sha256

        init = weights_sha256(resolve_checkpoint(lira.init))
    return {
        "version": KEY_VERSION,
        "data": splits.fingerprint,
        "test": getattr(splits.test, "_fingerprint", None),
        "labels": _digest(splits.labels.tolist()),
        "test_labels": _digest([] if splits.test_labels is None else splits.test_labels.tolist()),
        "columns": [splits.columns.input, splits.columns.label],
        "candidates": _digest(candidates.stacked.tolist()),
        "recipe": {
            "epochs": settings.epochs, "lr": settings.lr, "batch_size": settings.batch_size,
            "init": "scratch" if lira.init is None else str(lira.init), "init_sha256": init,
        },
        "model": _digest(
            {"config": config, "processor": processor, "encoder": [job.encoder.task, job.encoder.num_channels,
                                                                     job.encoder.max_length]}
        ),
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _load_scores(where: Path, n_candidates: int) -> np.ndarray | None:
    """A cached reference's phi on the candidates; None when absent or unreadable (retrained)."""
    try:
        with np.load(where / SCORES_FILE) as data:
            phi = np.asarray(data["phi"], dtype=np.float64)
    except (OSError, KeyError, ValueError):
        return None
    return phi if phi.shape == (n_candidates,) else None


def _store(where: Path, model: Any, phi: np.ndarray, meta: dict[str, Any]) -> None:
    """Write the reference into a temporary sibling and rename it into place (atomic; a
    concurrent audit that stored the same key first wins, which holds the same content)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        np.savez(tmp / SCORES_FILE, phi=phi)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        try:
            os.rename(tmp, where)
        except OSError:
            if not (where / SCORES_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
