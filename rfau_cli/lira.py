"""LiRA, the likelihood-ratio membership attack (Carlini et al. 2022), as pure numpy.

    log-probs -> logit-scaled confidence -> Gaussian fits over reference models
              -> per-sample likelihood ratio -> AUC / TPR at a fixed FPR / flagged rows

A global loss threshold cannot tell a hard unseen sample from a memorised one; LiRA asks,
for each sample x, how the target's confidence on x compares with the confidences of
reference models that did ("in") and did not ("out") train on x. Every function here takes
arrays and returns arrays or numbers (no model, no device); reference_models.py trains the
references and produces the score matrices.

Decisions (the paper's, where it has one):
- The statistic is phi = log(p_y / (1 - p_y)), computed in log space from log-probabilities
  (log p_y - logsumexp_{k != y} log p_k) and clipped to +-LOGIT_CLIP: p_y is thereby kept
  within e^-30 of 0 and 1, so a saturated softmax is a large finite number, never inf.
- Variances: with few reference models a per-example variance from 2-4 values is noise, so
  below PER_EXAMPLE_MIN in- or out-models per sample one pooled within-sample variance is used
  for every sample and for both sides (the paper's "global variance" for small shadow-model
  counts). It is the variance of each score around its own sample's (and side's) mean, not
  around the mean of all samples.
- Online (in- and out-models): score = log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out).
  Offline (out-models only, for few references): score = (phi - mu_out) / s_out, the one-sided
  test; it ranks rows like the paper's 1 - P[Z > phi].
- Membership is balanced: each candidate is in exactly floor(N/2) references, so every
  sample has both fits even with N = 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfau_cli import metrics as M

LOGIT_CLIP = 30.0  # |phi| cap: p_y within e^-30 (~1e-13) of 0 and 1
PER_EXAMPLE_MIN = 16  # in- and out-models per sample needed for per-example variances
VAR_FLOOR = 1e-6  # keeps a zero variance (identical reference scores) from dividing by zero
ONLINE_MIN = 4  # references needed for the online attack (>= 2 in- and 2 out-models a sample)
FPR_1PCT, FPR_01PCT = 0.01, 0.001


def logit_confidence(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) per row, from [N, C] log-probabilities, clipped to +-LOGIT_CLIP."""
    lp = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lp.shape[0] == 0:
        return np.zeros(0)
    rows = np.arange(lp.shape[0])
    own = lp[rows, y]
    others = lp.copy()
    others[rows, y] = -np.inf
    top = others.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # p_y == 1 exactly: log(1 - p_y) = -inf, clipped below
        rest = np.log(np.exp(others - top).sum(axis=1)) + top[:, 0]  # log(1 - p_y), stable
    return np.clip(own - rest, -LOGIT_CLIP, LOGIT_CLIP)


def membership(n_references: int, n_candidates: int, seed: int) -> np.ndarray:
    """[N, C] bool: reference i trains on candidate j. Each column has exactly N // 2 True
    (a seeded random choice of references), so every candidate has in- and out-models."""
    rng = np.random.default_rng(seed)
    ranks = rng.random((n_references, n_candidates)).argsort(axis=0).argsort(axis=0)
    return ranks < n_references // 2


@dataclass(frozen=True)
class GaussianFits:
    """Per-candidate means and standard deviations of phi over in- and out-models."""

    mean_in: np.ndarray
    std_in: np.ndarray
    mean_out: np.ndarray
    std_out: np.ndarray
    global_variance: bool


def fit_gaussians(scores: np.ndarray, member: np.ndarray, per_example_min: int = PER_EXAMPLE_MIN) -> GaussianFits:
    """Fit N(mu, s) to each candidate's in-scores and out-scores.

    Args:
        scores: [N, C] phi of each reference model on each candidate.
        member: [N, C] bool, reference i trained on candidate j.
        per_example_min: per-example variances only when every candidate has at least this
            many in- and out-models; else one pooled variance per side.
    Returns:
        GaussianFits with [C] arrays (nan mean where a side has no model).
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(member, dtype=bool)
    if s.shape != m.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and member {m.shape} must be the same [N, C] shape")
    n_in, n_out = m.sum(0), (~m).sum(0)
    fewest = min(int(n_in.min()), int(n_out.min())) if s.shape[1] else 0
    use_global = fewest < per_example_min
    mean_in, sq_in, dof_in = _side(s, m)
    mean_out, sq_out, dof_out = _side(s, ~m)
    if use_global:
        # One variance for every sample and both sides: with equal variances the online score
        # is linear in phi, so a target trained longer than the references (phi beyond mu_in)
        # still scores as a member instead of falling off a narrower in-Gaussian.
        dof = float(dof_in.sum() + dof_out.sum())
        var = (sq_in.sum() + sq_out.sum()) / dof if dof > 0 else VAR_FLOOR
        std = np.full(s.shape[1], np.sqrt(max(var, VAR_FLOOR)))
        return GaussianFits(mean_in, std, mean_out, std, True)
    std_in = np.sqrt(np.maximum(sq_in / np.clip(dof_in, 1, None), VAR_FLOOR))
    std_out = np.sqrt(np.maximum(sq_out / np.clip(dof_out, 1, None), VAR_FLOOR))
    return GaussianFits(mean_in, std_in, mean_out, std_out, False)


def _side(s: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-candidate mean, sum of squared deviations and degrees of freedom of one side."""
    count = mask.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, s, 0.0).sum(0) / count
    squares = np.where(mask, (s - np.nan_to_num(mean)) ** 2, 0.0).sum(0)
    return mean, squares, np.clip(count - 1, 0, None)


def likelihood_ratio(target: np.ndarray, fits: GaussianFits, online: bool) -> np.ndarray:
    """Per-candidate membership score of the target model's phi (higher: more likely a member).

    Online: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out). Offline: (phi - mu_out) / s_out.
    """
    t = np.asarray(target, dtype=np.float64)
    if not online:
        return (t - fits.mean_out) / fits.std_out
    return _log_normal(t, fits.mean_in, fits.std_in) - _log_normal(t, fits.mean_out, fits.std_out)


def _log_normal(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def threshold_at_fpr(nonmember_scores: np.ndarray, fpr: float) -> float:
    """The score above which at most `fpr` of the non-members lie (flag: score > threshold).

    The k-th largest non-member score with k = floor(fpr * n) + 1; inf without non-members.
    """
    neg = np.sort(np.asarray(nonmember_scores, dtype=np.float64))[::-1]
    if neg.size == 0:
        return float("inf")
    return float(neg[min(int(np.floor(fpr * neg.size)), neg.size - 1)])


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """AUC, TPR at 1% and 0.1% FPR (the loss attack's definitions), and the share of members
    flagged at the 1% FPR threshold of the non-members; nan where a side is empty."""
    pos = np.asarray(member_scores, dtype=np.float64)
    neg = np.asarray(nonmember_scores, dtype=np.float64)
    rates = M.loss_attack(-pos, -neg)  # its score is -loss: pass -score to rank by score
    flagged = float(np.mean(pos > threshold_at_fpr(neg, FPR_1PCT))) if pos.size and neg.size else float("nan")
    return {**rates, "flagged_at_1pct_fpr": flagged}
