"""What the model still knows about D_f: scoring a model on the splits, then the metrics.

Scoring (model -> per-sample logits and head features) is the only part that touches torch;
every number is then computed by the pure functions of metrics.py. `rfau unlearn` calls the
same functions for the before/after numbers of its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rfau_cli import metrics as M
from rfau_cli.data import Splits
from rfau_cli.encoding import Encoder

RETAIN_SAMPLE_MIN = 2000  # D_r is scored on a seeded sample of max(|test|, this) rows
SCORE_BATCH = 256
ATTACKS = ("svc", "loss", "logreg")
# Metrics of the "Avg. Gap" (SalUn): unlearning accuracy, retain and test accuracy, MIA-efficacy.
GAP_KEYS = ("forget.ua", "retain.acc", "test.acc", "mia.efficacy")


@dataclass(frozen=True)
class AuditRows:
    """The rows scored: all of D_f, a seeded sample of D_r, all test rows."""

    forget: np.ndarray
    retain: np.ndarray
    retain_total: int

    @classmethod
    def choose(cls, splits: Splits, seed: int) -> AuditRows:
        n_test = len(splits.test_labels) if splits.test_labels is not None else 0
        size = min(len(splits.retain), max(n_test, RETAIN_SAMPLE_MIN))
        rng = np.random.default_rng(seed)
        retain = np.sort(rng.choice(splits.retain, size, replace=False))
        return cls(splits.forget, retain, len(splits.retain))


@dataclass(frozen=True)
class Scores:
    """Per-sample outputs of one model on one set of rows."""

    log_probs: np.ndarray
    labels: np.ndarray
    features: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs)

    @property
    def losses(self) -> np.ndarray:
        return -self.log_probs[np.arange(len(self.labels)), self.labels]

    def subset(self, mask: np.ndarray) -> Scores:
        return Scores(self.log_probs[mask], self.labels[mask], self.features[mask])


def score(model: Any, encoder: Encoder, splits: Splits, rows: AuditRows, accelerator: Any, progress: Any) -> dict[str, Scores]:
    """Run the model once over D_f, the D_r sample and test (no gradients)."""
    from rfau_cli.features import TapReader, TapSpec, find_head

    reader = TapReader(model, find_head(model), TapSpec((), True))
    try:
        out = {
            "forget": _score_rows(reader, encoder, splits.train, splits.labels, rows.forget, accelerator, progress),
            "retain": _score_rows(reader, encoder, splits.train, splits.labels, rows.retain, accelerator, progress),
        }
        if splits.test is not None:
            test_rows = np.arange(len(splits.test_labels))
            out["test"] = _score_rows(reader, encoder, splits.test, splits.test_labels, test_rows, accelerator, progress)
    finally:
        reader.close()
    return out


def _score_rows(reader: Any, encoder: Encoder, table: Any, labels: np.ndarray, rows: np.ndarray, accelerator: Any, progress: Any) -> Scores:
    import torch

    log_probs, features = [], []
    task = progress.add_task("scoring", total=len(rows))
    for start in range(0, len(rows), SCORE_BATCH):
        chunk = rows[start : start + SCORE_BATCH]
        batch = {k: v.to(accelerator.device) for k, v in encoder(table, chunk, labels).items() if k != "labels"}
        with torch.no_grad(), accelerator.autocast():
            logits, taps = reader(batch)
        log_probs.append(torch.log_softmax(logits.double(), -1).cpu().numpy())
        features.append(taps[-1].float().cpu().numpy())
        progress.advance(task, len(chunk))
    progress.remove_task(task)
    width = reader.model.config.num_labels
    return Scores(
        np.concatenate(log_probs) if log_probs else np.zeros((0, width)),
        labels[rows],
        np.concatenate(features) if features else np.zeros((0, 0), dtype=np.float32),
    )


def split_metrics(s: Scores) -> dict[str, float]:
    probs = s.probs
    acc = M.accuracy(probs, s.labels)
    return {
        "acc": acc,
        "ua": 1.0 - acc,
        "conf": M.mean_confidence(probs, s.labels),
        "loss": float(s.losses.mean()) if len(s.labels) else float("nan"),
    }


def compute_metrics(
    scores: dict[str, Scores],
    forget_classes: tuple[int, ...],
    seed: int,
    attacks: tuple[str, ...] = ATTACKS,
) -> dict[str, Any]:
    """Every audit number from the scores. Class forgetting splits test by class.

    Non-members for the attacks are test rows: in class mode those of the forgotten classes
    for the loss attacks (a retrained model sees them exactly like D_f) and those of the kept
    classes for the SVC shadow set (members are kept-class training rows).
    """
    out: dict[str, Any] = {name: split_metrics(s) for name, s in scores.items()}
    test = scores.get("test")
    if test is None:
        return out
    if forget_classes:
        in_forget = np.isin(test.labels, forget_classes)
        out["test_forget"] = split_metrics(test.subset(in_forget))
        out["test_retain"] = split_metrics(test.subset(~in_forget))
        shadow_nonmember, attack_nonmember = test.subset(~in_forget), test.subset(in_forget)
    else:
        shadow_nonmember = attack_nonmember = test
    forget, retain = scores["forget"], scores["retain"]
    mia: dict[str, Any] = {}
    if "svc" in attacks and len(shadow_nonmember.labels) and len(retain.labels):
        members = retain.subset(np.random.default_rng(seed).permutation(len(retain.labels))[: len(shadow_nonmember.labels)])
        svc = M.svc_mia_efficacy(
            members.probs, members.labels, shadow_nonmember.probs, shadow_nonmember.labels,
            forget.probs, forget.labels, seed=seed,
        )
        mia["svc"] = svc
        mia["efficacy"] = svc["confidence"]
    if "loss" in attacks and len(attack_nonmember.labels):
        loss = M.loss_attack(forget.losses, attack_nonmember.losses)
        mia.update({f"loss_{k}": v for k, v in loss.items()})
    if "logreg" in attacks and len(attack_nonmember.labels) >= 2:
        mia["logreg_acc"] = M.logreg_attack(forget.losses, attack_nonmember.losses, seed=seed)
    out["mia"] = mia
    return out


def compare_to_original(scores: dict[str, Scores], original: dict[str, Scores]) -> dict[str, float]:
    """Relative head-feature distance to the original model, and prediction agreement."""
    out = {}
    for name in ("retain", "forget"):
        a, b = scores[name], original[name]
        if len(a.labels) == 0:
            continue
        scale = float((b.features.astype(np.float64) ** 2).sum(1).mean()) + 1e-8
        out[f"{name}_feature_distance"] = float(((a.features - b.features).astype(np.float64) ** 2).sum(1).mean() / scale)
        out[f"{name}_agreement"] = float((a.log_probs.argmax(1) == b.log_probs.argmax(1)).mean())
    return out


def reference_gap(metrics: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """|metric - reference| per metric (percentage points for fractions) and the Avg. Gap."""
    from rfau_cli.gates import flatten

    mine, ref = flatten(metrics), flatten(reference)
    gaps = {k: abs(mine[k] - ref[k]) * 100 for k in mine if k in ref and not k.startswith("sizes")}
    present = [k for k in GAP_KEYS if k in gaps]
    avg = float(np.mean([gaps[k] for k in present])) if present else float("nan")
    return {"per_metric_pp": gaps, "avg_gap_pp": avg, "avg_gap_keys": present}
