"""Pure metric functions for unlearning audits.

Everything here takes numpy arrays (softmax probabilities ``probs`` of shape
[N, C] whose rows sum to 1, integer ``labels`` of shape [N], or per-sample
losses of shape [N]) and returns python floats or numpy arrays. No model,
device or class count is baked in.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Mapping

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC

_TINY = 1e-30  # floor applied before every log, so log(0) never appears
MIA_FEATURES = ("correctness", "confidence", "entropy", "m_entropy", "prob")


def _as_probs_labels(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if p.size == 0 and p.ndim < 2:
        p = p.reshape(0, 0)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-d [N, C], got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {p.shape[0]} rows but labels has {y.shape[0]}")
    return p, y


def _safe_log(x: np.ndarray) -> np.ndarray:
    return np.log(np.clip(x, _TINY, None))


def true_class_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y: probability assigned to the true class of each row. Shape [N], in [0, 1]."""
    p, y = _as_probs_labels(probs, labels)
    return p[np.arange(p.shape[0]), y]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """mean(argmax_c p_c == y): top-1 accuracy as a fraction in [0, 1]; nan if N == 0."""
    p, y = _as_probs_labels(probs, labels)
    if p.shape[0] == 0:
        return float("nan")
    return float(np.mean(np.argmax(p, axis=1) == y))


def mean_confidence(probs: np.ndarray, labels: np.ndarray) -> float:
    """mean(p_y): average true-class probability in [0, 1]; nan if N == 0."""
    conf = true_class_confidence(probs, labels)
    if conf.size == 0:
        return float("nan")
    return float(np.mean(conf))


def entropy(probs: np.ndarray) -> np.ndarray:
    """H(p) = -sum_c p_c log p_c per row, in nats (log clipped at 1e-30). Shape [N]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0 and p.ndim < 2:
        return np.zeros(0)
    return -np.sum(p * _safe_log(p), axis=1)


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i), in nats.

    Song & Mittal 2021 ("Systematic evaluation of privacy risks of machine
    learning models"): unlike plain entropy it is monotone in correctness, low
    for confident correct predictions and high for confident wrong ones.
    Shape [N]; logs clipped at 1e-30.
    """
    p, y = _as_probs_labels(probs, labels)
    n = p.shape[0]
    rows = np.arange(n)
    py = p[rows, y]
    others = p * _safe_log(1.0 - p)  # p_i log(1 - p_i) for every class
    others[rows, y] = 0.0
    return -(1.0 - py) * _safe_log(py) - np.sum(others, axis=1)


def cross_entropy_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log p_y per row, in nats (p_y clipped at 1e-30). Shape [N]."""
    return -_safe_log(true_class_confidence(probs, labels))


def mia_features(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample membership-inference features.

    "correctness" [N,1] float 0/1 (argmax == y), "confidence" [N,1] (p_y),
    "entropy" [N,1], "m_entropy" [N,1] (modified entropy), "prob" [N,C].
    """
    p, y = _as_probs_labels(probs, labels)
    n = p.shape[0]
    correct = (np.argmax(p, axis=1) == y) if p.shape[1] > 0 else np.zeros(n, bool)
    return {
        "correctness": correct.astype(np.float64).reshape(n, 1),
        "confidence": true_class_confidence(p, y).reshape(n, 1),
        "entropy": entropy(p).reshape(n, 1),
        "m_entropy": modified_entropy(p, y).reshape(n, 1),
        "prob": p.copy(),
    }


def _balance(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays selecting min(len(a), len(b)) rows of each, subsampling the larger."""
    ia, ib = np.arange(len(a)), np.arange(len(b))
    if len(a) > len(b):
        ia = np.sort(rng.choice(len(a), size=len(b), replace=False))
    elif len(b) > len(a):
        ib = np.sort(rng.choice(len(b), size=len(a), replace=False))
    return ia, ib


def svc_mia_efficacy(
    member_probs: np.ndarray,
    member_labels: np.ndarray,
    nonmember_probs: np.ndarray,
    nonmember_labels: np.ndarray,
    target_probs: np.ndarray,
    target_labels: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """SVC MIA-efficacy (Jia et al. 2023 sparse unlearning; Fan et al. 2024 SalUn).

    For each feature of ``mia_features``, fit SVC(C=3, gamma='auto', kernel='rbf')
    on members (label 1, e.g. retain set) vs non-members (label 0, e.g. test
    set), then report the fraction of target samples (e.g. forget set)
    predicted non-member, in [0, 1]: higher means the target looks more
    "forgotten". The larger shadow side is subsampled (seeded) to the smaller.
    Empty target gives nan for every key.
    """
    mp, my = _as_probs_labels(member_probs, member_labels)
    np_, ny = _as_probs_labels(nonmember_probs, nonmember_labels)
    tp, ty = _as_probs_labels(target_probs, target_labels)
    if tp.shape[0] == 0:
        return {k: float("nan") for k in MIA_FEATURES}
    if mp.shape[0] == 0 or np_.shape[0] == 0:
        raise ValueError("svc_mia_efficacy needs at least one member and one non-member sample")
    im, inn = _balance(mp, np_, np.random.default_rng(seed))
    fm, fn, ft = mia_features(mp[im], my[im]), mia_features(np_[inn], ny[inn]), mia_features(tp, ty)
    y_shadow = np.concatenate([np.ones(len(im)), np.zeros(len(inn))])

    def forgotten_share(key: str) -> float:
        clf = SVC(C=3, gamma="auto", kernel="rbf")
        clf.fit(np.concatenate([fm[key], fn[key]], axis=0), y_shadow)
        return float(np.mean(clf.predict(ft[key]) == 0))

    # The five fits are independent and libsvm releases the GIL: on threads they run side by side,
    # with the same results. They were 3.85 s of a 4.0 s audit of 14,376 rows on one core
    # (docs/performance.md); an `rfau unlearn` audits twice.
    with ThreadPoolExecutor(min(len(MIA_FEATURES), _usable_cpus())) as pool:
        return dict(zip(MIA_FEATURES, pool.map(forgotten_share, MIA_FEATURES)))


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the platform tells), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def loss_attack(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> dict[str, float]:
    """Loss-threshold membership attack (score = -loss, members labelled 1).

    Returns ROC AUC (0.5 = chance, 1 = members fully separable) and the true
    positive rate at false positive rate <= 1% and <= 0.1% (largest TPR on the
    ROC curve whose FPR does not exceed the budget), all fractions in [0, 1].
    nan everywhere if either side is empty.
    """
    keys = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
    m = np.asarray(member_losses, dtype=np.float64).reshape(-1)
    n = np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
    if m.size == 0 or n.size == 0:
        return {k: float("nan") for k in keys}

    y = np.concatenate([np.ones(m.size), np.zeros(n.size)])
    score = -np.concatenate([m, n])
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)

    def tpr_at(x: float) -> float:
        return float(np.max(tpr[fpr <= x]))

    return {
        "auc": float(roc_auc_score(y, score)),
        "tpr_at_1pct_fpr": tpr_at(0.01),
        "tpr_at_0.1pct_fpr": tpr_at(0.001),
    }


def logreg_attack(
    member_losses: np.ndarray,
    nonmember_losses: np.ndarray,
    folds: int = 10,
    seed: int = 0,
) -> float:
    """Cross-validated logistic-regression MIA on the 1-d loss feature.

    The starting-kit attack of the NeurIPS 2023 machine unlearning challenge:
    balance the two sets (seeded subsample of the larger), fit
    LogisticRegression under StratifiedKFold(min(folds, n per class),
    shuffled, seeded) and return mean accuracy in [0, 1]; 0.5 means members
    and non-members are indistinguishable. nan if either side has < 2 samples.
    """
    m = np.asarray(member_losses, dtype=np.float64).reshape(-1)
    n = np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
    if m.size < 2 or n.size < 2:
        return float("nan")

    im, inn = _balance(m, n, np.random.default_rng(seed))
    x = np.concatenate([m[im], n[inn]]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(im)), np.zeros(len(inn))])
    cv = StratifiedKFold(n_splits=min(folds, len(im)), shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy")
    return float(np.mean(scores))


def average_gap(metrics: Mapping[str, float], reference: Mapping[str, float], keys: Iterable[str]) -> float:
    """mean_k |metrics[k] - reference[k]|, in the units of the inputs (callers pass %).

    The "Avg. Gap" of unlearning papers: distance of an unlearned model's
    metrics from the retrained-from-scratch reference. nan if keys is empty.
    """
    gaps = [abs(float(metrics[k]) - float(reference[k])) for k in keys]
    if not gaps:
        return float("nan")
    return float(np.mean(gaps))
