import math

import numpy as np
import pytest

from rfau_cli import metrics as M


def _direct_mentr(p, y):
    total = -(1 - p[y]) * math.log(max(p[y], 1e-30))
    for i, pi in enumerate(p):
        if i != y:
            total -= pi * math.log(max(1 - pi, 1e-30))
    return total


HAND_PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # label 0: correct, p_y = 0.7
        [0.1, 0.3, 0.6],  # label 1: wrong,   p_y = 0.3
        [0.2, 0.2, 0.6],  # label 2: correct, p_y = 0.6
    ]
)
HAND_LABELS = np.array([0, 1, 2])


def test_hand_made_confidence_and_accuracy():
    np.testing.assert_allclose(M.true_class_confidence(HAND_PROBS, HAND_LABELS), [0.7, 0.3, 0.6])
    assert M.accuracy(HAND_PROBS, HAND_LABELS) == pytest.approx(2 / 3)
    assert M.mean_confidence(HAND_PROBS, HAND_LABELS) == pytest.approx((0.7 + 0.3 + 0.6) / 3)
    np.testing.assert_allclose(M.cross_entropy_loss(HAND_PROBS, HAND_LABELS), -np.log([0.7, 0.3, 0.6]))


def test_empty_inputs_give_nan():
    empty = np.zeros((0, 3))
    labels = np.zeros(0, dtype=int)
    assert math.isnan(M.accuracy(empty, labels))
    assert math.isnan(M.mean_confidence(empty, labels))
    assert M.entropy(empty).shape == (0,)


def test_entropy_uniform_is_log_c_and_onehot_is_zero():
    for c in (2, 10, 1000):
        probs = np.full((4, c), 1.0 / c)
        np.testing.assert_allclose(M.entropy(probs), np.log(c))
    onehot = np.eye(5)
    np.testing.assert_allclose(M.entropy(onehot), 0.0, atol=1e-12)
    assert np.all(np.isfinite(M.cross_entropy_loss(onehot, np.array([1, 0, 0, 0, 0]))))


def test_modified_entropy_matches_direct_formula():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(7, 0.5), size=50)
    labels = rng.integers(0, 7, size=50)
    expected = [_direct_mentr(p, y) for p, y in zip(probs, labels)]
    np.testing.assert_allclose(M.modified_entropy(probs, labels), expected, rtol=1e-10)


def test_modified_entropy_extremes_are_finite_and_ordered():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = M.modified_entropy(probs, np.array([0, 0]))
    assert np.all(np.isfinite(out))
    assert out[0] == pytest.approx(0.0, abs=1e-12)  # confident and right
    assert out[1] > 10  # confident and wrong


def test_mia_features_shapes():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=9)
    labels = rng.integers(0, 4, size=9)
    f = M.mia_features(probs, labels)
    assert set(f) == {"correctness", "confidence", "entropy", "m_entropy", "prob"}
    for k in ("correctness", "confidence", "entropy", "m_entropy"):
        assert f[k].shape == (9, 1)
    assert f["prob"].shape == (9, 4)
    assert set(np.unique(f["correctness"])) <= {0.0, 1.0}
    np.testing.assert_allclose(f["confidence"][:, 0], M.true_class_confidence(probs, labels))


def _confident(rng, n, c=10):
    labels = rng.integers(0, c, size=n)
    p_y = rng.uniform(0.97, 0.999, size=n)
    probs = np.tile(((1 - p_y) / (c - 1))[:, None], (1, c))
    probs[np.arange(n), labels] = p_y
    return probs, labels


def _unsure(rng, n, c=10):
    labels = rng.integers(0, c, size=n)
    probs = rng.dirichlet(np.ones(c), size=n)
    p_y = rng.uniform(0.02, 0.3, size=n)
    probs[np.arange(n), labels] = 0.0
    probs = probs / probs.sum(1, keepdims=True) * (1 - p_y)[:, None]
    probs[np.arange(n), labels] = p_y
    return probs, labels


def test_svc_mia_efficacy_known_answers_and_determinism():
    rng = np.random.default_rng(0)
    mp, my = _confident(rng, 150)
    nmp, nmy = _unsure(rng, 100)  # unequal sizes: members get subsampled
    member_like = _confident(rng, 40)
    nonmember_like = _unsure(rng, 40)

    low = M.svc_mia_efficacy(mp, my, nmp, nmy, *member_like, seed=3)
    high = M.svc_mia_efficacy(mp, my, nmp, nmy, *nonmember_like, seed=3)
    assert set(low) == {"correctness", "confidence", "entropy", "m_entropy", "prob"}
    assert low["confidence"] <= 0.05
    assert high["confidence"] >= 0.95
    assert low["m_entropy"] <= 0.05 and high["m_entropy"] >= 0.95
    assert all(0.0 <= v <= 1.0 for v in low.values())

    again = M.svc_mia_efficacy(mp, my, nmp, nmy, *member_like, seed=3)
    assert again == low


def test_svc_mia_efficacy_side_by_side_equals_one_after_another():
    """The five fits run on threads: each feature's share is the one a plain loop gives it."""
    from sklearn.svm import SVC

    rng = np.random.default_rng(1)
    mp, my = _confident(rng, 120)
    nmp, nmy = _unsure(rng, 90)
    tp, ty = np.concatenate([_confident(rng, 30)[0], _unsure(rng, 30)[0]]), rng.integers(0, 10, 60)
    got = M.svc_mia_efficacy(mp, my, nmp, nmy, tp, ty, seed=5)
    im, inn = M._balance(mp, nmp, np.random.default_rng(5))
    fm, fn, ft = M.mia_features(mp[im], my[im]), M.mia_features(nmp[inn], nmy[inn]), M.mia_features(tp, ty)
    y = np.concatenate([np.ones(len(im)), np.zeros(len(inn))])
    for key in M.MIA_FEATURES:
        clf = SVC(C=3, gamma="auto", kernel="rbf").fit(np.concatenate([fm[key], fn[key]]), y)
        assert got[key] == float(np.mean(clf.predict(ft[key]) == 0)), key
    assert len(set(got.values())) > 1  # the features differ, so a mix-up of keys would show


def test_svc_mia_efficacy_empty_target_is_nan():
    rng = np.random.default_rng(0)
    mp, my = _confident(rng, 20)
    nmp, nmy = _unsure(rng, 20)
    out = M.svc_mia_efficacy(mp, my, nmp, nmy, np.zeros((0, 10)), np.zeros(0, dtype=int))
    assert set(out) == {"correctness", "confidence", "entropy", "m_entropy", "prob"}
    assert all(math.isnan(v) for v in out.values())


def test_loss_attack_separable():
    members = np.linspace(0.001, 0.1, 300)
    nonmembers = np.linspace(2.0, 5.0, 200)
    out = M.loss_attack(members, nonmembers)
    assert out["auc"] == 1.0
    assert out["tpr_at_1pct_fpr"] == 1.0
    assert out["tpr_at_0.1pct_fpr"] == 1.0
    # inverted: members have the higher loss, so the attack is maximally wrong
    inv = M.loss_attack(nonmembers, members)
    assert inv["auc"] == 0.0
    assert inv["tpr_at_1pct_fpr"] == 0.0


def test_loss_attack_tpr_at_fpr_hand_example():
    # scores -loss: member losses 0,1,2,3 ; non-member losses 0.5, 10, 11, ..., 108 (100 of them)
    members = np.array([0.0, 1.0, 2.0, 3.0])
    nonmembers = np.concatenate([[0.5], np.arange(10.0, 109.0)])
    out = M.loss_attack(members, nonmembers)
    # with FPR <= 1% (one false positive of 100 allowed) all 4 members are caught;
    # with FPR <= 0.1% (none allowed) only the member with loss 0 ranks above 0.5
    assert out["tpr_at_1pct_fpr"] == 1.0
    assert out["tpr_at_0.1pct_fpr"] == 0.25


def test_attacks_on_identical_distributions_are_chance():
    member = np.abs(np.random.default_rng(1).normal(size=2000))
    nonmember = np.abs(np.random.default_rng(2).normal(size=2000))
    out = M.loss_attack(member, nonmember)
    assert 0.45 <= out["auc"] <= 0.55
    assert 0.4 <= M.logreg_attack(member, nonmember) <= 0.6


def test_attacks_empty_or_tiny_give_nan():
    out = M.loss_attack(np.array([]), np.array([1.0, 2.0]))
    assert set(out) == {"auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"}
    assert all(math.isnan(v) for v in out.values())
    assert math.isnan(M.logreg_attack(np.array([0.1]), np.array([1.0, 2.0, 3.0])))


def test_logreg_attack_separable_and_deterministic():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.0, 0.1, size=500)
    nonmembers = rng.uniform(3.0, 6.0, size=120)  # unbalanced: members subsampled
    acc = M.logreg_attack(members, nonmembers, seed=5)
    assert acc == pytest.approx(1.0, abs=0.01)
    assert M.logreg_attack(members, nonmembers, seed=5) == acc
    # few samples: folds shrink to the per-class count instead of failing
    assert M.logreg_attack(members[:3], nonmembers[:3]) == pytest.approx(1.0)


def test_average_gap():
    m = {"fa": 10.0, "ra": 99.0, "ta": 90.0, "extra": 1e9}
    ref = {"fa": 12.0, "ra": 100.0, "ta": 87.0}
    assert M.average_gap(m, ref, ["fa", "ra", "ta"]) == pytest.approx((2 + 1 + 3) / 3)
    assert M.average_gap(m, m, ["fa"]) == 0.0
