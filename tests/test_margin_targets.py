"""Sample mode's target margins (rfau_cli/methods/margin_targets.py), on synthetic margins
whose answer is known: the properties a user relies on, not the formula's digits."""

from __future__ import annotations

import numpy as np
import pytest

from rfau_cli.methods.margin_targets import (
    class_log_prior,
    class_surplus,
    class_transport_shift,
    concentrated_classes,
    expected_new_errors,
    familiar_test_rows,
    label_shift,
    margin_targets,
    percentile_in,
    transport,
)


def _population(rng: np.random.Generator, n: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, classes, n)
    return labels, labels.astype(float) + rng.normal(8.0, 1.0, n)  # members: confident, class-dependent


def test_a_row_keeps_its_percentile_from_members_to_test_rows() -> None:
    members = np.arange(100, dtype=float)  # percentiles 0.005 .. 0.995
    test = np.linspace(-5.0, 5.0, 1001)
    got = transport(np.array([24.5, 74.5]), members, test)
    assert np.allclose(got, [np.quantile(test, 0.25), np.quantile(test, 0.75)])


def test_the_target_of_a_row_does_not_depend_on_the_rest_of_the_request() -> None:
    rng = np.random.default_rng(0)
    _, members = _population(rng, 2000)
    _, test = _population(rng, 800)
    test -= 3.0  # non-members are less sure
    row = np.array([9.0])
    alone = transport(row, members, test)
    with_hard_rows = transport(np.concatenate([row, members[:40] - 2.0]), members, test)
    assert with_hard_rows[0] == alone[0]
    # ranking the request among itself (the first version) would not have kept it
    ranks = (np.argsort(np.argsort(np.concatenate([row, members[:40] - 2.0]))) + 0.5) / 41
    assert np.quantile(test, ranks[0]) != alone[0]


def test_label_shift_is_zero_for_a_uniform_request_and_lowers_a_concentrated_class() -> None:
    train = np.repeat(np.arange(10), 100)
    uniform = np.repeat(np.arange(10), 10)  # 10% of every class
    shift = label_shift(train, uniform, (uniform + 1) % 10, 10)
    assert np.allclose(shift, 0.0)
    concentrated = np.concatenate([np.full(60, 3), np.repeat([0, 1, 2, 4, 5, 6, 7, 8, 9], [5, 5, 5, 5, 4, 4, 4, 4, 4])])
    shift = label_shift(train, concentrated, np.where(concentrated == 3, 8, 3), 10)
    assert np.allclose(shift[concentrated == 3], np.log(0.4 / 0.96))  # class 3 kept 40%, class 8 96%
    assert np.all(shift[concentrated != 3] > 0)  # their runner-up (3) lost more than they did


def test_the_class_slope_lowers_only_a_class_the_request_takes_much_of() -> None:
    rng = np.random.default_rng(4)
    labels_m, members = _population(rng, 800)
    _, test = _population(rng, 400)
    test -= 3.0
    threes = np.flatnonzero(labels_m == 3)
    concentrated = np.concatenate([threes[: int(0.6 * len(threes))], np.flatnonzero(labels_m == 0)[:5]])
    uniform = np.concatenate([np.flatnonzero(labels_m == c)[:20] for c in range(4)])  # ~10% of each
    for forget in (concentrated, uniform):
        f_margin, f_labels = members[forget], labels_m[forget]
        runner_up = (f_labels + 1) % 4
        args = (f_margin, f_labels, runner_up, members, test, labels_m, 4)
        prior, sloped = margin_targets(*args, class_slope=1.0), margin_targets(*args, class_slope=2.5)
        moved = (prior < f_margin) & (sloped < f_margin)  # neither clipped at the row's own margin
        taken = int(0.6 * len(threes)) / len(threes)
        if forget is concentrated:
            threes_moved = moved & (f_labels == 3)
            assert threes_moved.any()
            assert np.allclose((sloped - prior)[threes_moved], 1.5 * np.log(1 - taken))
            assert np.allclose(sloped[f_labels == 0], prior[f_labels == 0])  # class 0 lost 5 rows: prior only
            # the class's own slope does the same, and only for that class (class 0 is not concentrated)
            own = margin_targets(*args, per_class={3: 2.5, 0: 9.0})
            assert np.allclose(own, sloped)
            assert np.allclose(margin_targets(*args, class_slope=2.5, per_class={3: 1.0}), prior)
        else:
            assert np.array_equal(sloped, prior)  # no class loses 30%: the slope does not apply
    assert np.allclose(label_shift(labels_m, labels_m[uniform], (labels_m[uniform] + 1) % 4, 4, 2.5),
                       label_shift(labels_m, labels_m[uniform], (labels_m[uniform] + 1) % 4, 4))


def test_targets_never_raise_a_margin_and_percentiles_stay_in_range() -> None:
    rng = np.random.default_rng(2)
    labels_m, members = _population(rng, 500)
    _, test = _population(rng, 300)
    test += 5.0  # a test set the model is surer of than of its training rows
    forget = np.array([0, 1, 2])
    f_margin = members[forget]
    q = margin_targets(f_margin, labels_m[forget], (labels_m[forget] + 1) % 4, members, test, labels_m, 4)
    assert np.all(q <= f_margin)
    u = percentile_in(members, np.array([-1e9, 1e9]))
    assert u[0] == 0.0 and u[1] == 1.0


def test_test_rows_as_familiar_as_training_rows_are_recognised() -> None:
    rng = np.random.default_rng(3)
    members = rng.normal(10.0, 1.0, 500)
    assert familiar_test_rows(members, members)  # training rows passed as test rows
    assert familiar_test_rows(members, members + 0.5)  # a test set easier than the training data
    assert not familiar_test_rows(members, members - 2.0)  # held-out rows: less sure


def test_concentrated_classes_are_those_a_request_takes_30_percent_of() -> None:
    train = np.repeat(np.arange(4), 100)
    assert concentrated_classes(train, np.repeat(np.arange(4), 10), 4) == {}  # a uniform 10%
    taken = concentrated_classes(train, np.concatenate([np.full(60, 2), np.full(30, 1), [0]]), 4)
    assert taken == {1: 0.3, 2: 0.6}
    assert concentrated_classes(train, np.zeros(0, dtype=np.int64), 6) == {}  # classes without rows


def test_the_class_prior_is_the_per_class_fall_the_targets_use() -> None:
    """The vector RFAU moves into the head's bias is the one the targets' label-shift term is the
    difference of: moving it there asks nothing new of the rows, it makes the class-wide part."""
    labels = np.repeat(np.arange(4), 50)
    forget = np.concatenate([np.flatnonzero(labels == 2)[:30], np.flatnonzero(labels == 1)[:5]])
    prior = class_log_prior(labels, labels[forget], 4, class_slope=2.0, per_class={1: 3.0})
    # class 2 lost 60% (concentrated: the slope), class 1 10% (prior only, its own slope unused), 0 and 3 nothing
    assert np.allclose(prior, [0.0, np.log(0.9), 2.0 * np.log(0.4), 0.0])
    runner_up = (labels[forget] + 1) % 4
    shift = label_shift(labels, labels[forget], runner_up, 4, class_slope=2.0, per_class={1: 3.0})
    assert np.allclose(shift, prior[labels[forget]] - prior[runner_up])


def test_the_surplus_of_a_class_the_original_is_surer_of_lowers_it_further() -> None:
    """Two originals of one model that differ only in how sure they are of class 2: the targets
    take `shrink` of the difference away, so both ask for about the same class level; a class with
    a slope of its own (measured against retrains of this original) keeps it as it is."""
    labels = np.repeat(np.arange(4), 50)
    forget = np.flatnonzero(labels == 2)[:30]  # 60% of class 2
    test_labels = np.repeat(np.arange(4), 20)
    plain = np.full(len(test_labels), 6.0)
    sure = np.where(test_labels == 2, 8.0, 6.0)  # 2 logits surer of class 2 than of the others
    assert class_surplus(plain, test_labels, [2], 0.5) == {2: 0.0}
    surplus = class_surplus(sure, test_labels, [2], 0.5)
    assert np.isclose(surplus[2], 1.0)
    base = class_log_prior(labels, labels[forget], 4, class_slope=2.0)
    shrunk = class_log_prior(labels, labels[forget], 4, class_slope=2.0, surplus=surplus)
    assert np.isclose(shrunk[2], base[2] - 1.0) and np.allclose(np.delete(shrunk, 2), np.delete(base, 2))
    # the class levels both originals' targets aim at: 8 + shrunk vs 6 + base differ by half of 2
    assert np.isclose((8.0 + shrunk[2]) - (6.0 + base[2]), 1.0)
    own = class_log_prior(labels, labels[forget], 4, class_slope=2.0, per_class={2: 3.0}, surplus=surplus)
    assert np.isclose(own[2], 3.0 * np.log(0.4))
    # an original less sure of the class than of the others: the class falls less, never rises
    unsure = class_surplus(np.where(test_labels == 2, -4.0, 6.0), test_labels, [2], 0.5)
    assert class_log_prior(labels, labels[forget], 4, class_slope=2.0, surplus=unsure)[2] == 0.0
    # only the classes asked for, and nothing for a class without test rows
    assert class_surplus(sure, test_labels, [2, 7], 0.5) == {2: surplus[2], 7: 0.0}


def test_a_request_too_small_for_a_new_error_turns_no_right_row_wrong() -> None:
    """MiniLM's measured rates: 2.5% of training rows wrong, 8% of test rows. A right row in the
    members' lowest 5% maps to a wrong test margin; a 5-row request (0.28 new errors expected of
    a retrain) keeps it right, a 50-row one (2.8 expected) lets it cross."""
    members = np.concatenate([np.linspace(-2.0, -0.01, 25), np.linspace(0.01, 6.0, 975)])  # 2.5% wrong
    test = np.concatenate([np.linspace(-3.0, -0.01, 80), np.linspace(0.01, 5.0, 920)])  # 8% wrong
    right_but_unsure, already_wrong, sure = 0.1, -0.5, 4.0
    request = np.array([right_but_unsure, already_wrong, sure, 3.0, 3.5])
    train_labels = np.repeat([0, 1], 50_000)  # the request's class barely loses rows: no label shift to speak of

    def targets(rows: np.ndarray) -> np.ndarray:
        return margin_targets(rows, np.zeros(len(rows), dtype=np.int64), np.ones(len(rows), dtype=np.int64),
                              members, test, train_labels, 2)  # fmt: skip

    assert expected_new_errors(5, members, test) == pytest.approx(5 * (0.08 - 0.025))
    assert transport(np.array([right_but_unsure]), members, test)[0] < 0  # the transport alone would cross
    small = targets(request)
    assert small[0] == right_but_unsure  # kept right, at its own margin
    assert small[1] < already_wrong  # a wrong row still goes where its percentile says
    assert np.all(small[2:] < request[2:]) and np.all(small[2:] > 0)  # the sure rows still fall
    large = targets(np.concatenate([request, np.full(45, 3.0)]))
    assert expected_new_errors(50, members, test) >= 0.5 and large[0] < 0  # 50 rows: it crosses
    assert np.allclose(large[1:5], small[1:5], atol=0.01)  # nothing else changes
    # A memorising model's 10-row request (none of its rows wrong, 20% of test rows): 2 expected.
    assert expected_new_errors(10, np.full(100, 5.0), np.concatenate([np.full(20, -1.0), np.full(80, 2.0)])) == 2.0
    assert expected_new_errors(5, np.array([]), test) == 0.0


def test_a_class_the_model_is_unsure_of_falls_by_its_own_gap_not_the_pooled_tail() -> None:
    """Class 0 is hard for the model on seen and unseen rows alike (a gap of 0.2 logits); classes
    1-3 were memorised (training rows 3 logits surer than test rows, with a wide low tail of test
    rows). The pooled transport puts class 0's rows in the low percentiles, where the memorised
    classes' test rows lie, and asks them to fall like those; the class's own gap says a retrain
    would see them about as they are."""
    rng = np.random.default_rng(7)
    n, m, share = 4000, 1600, [0.1, 0.3, 0.3, 0.3]
    m_labels, t_labels = rng.choice(4, n, p=share), rng.choice(4, m, p=share)
    members = np.where(m_labels == 0, rng.normal(3.0, 1.0, n), rng.normal(9.0, 1.0, n))
    test = np.where(t_labels == 0, rng.normal(2.8, 1.0, m), rng.normal(6.0, 3.0, m))  # memorised: a wide low tail
    shift = class_transport_shift(members, m_labels, test, t_labels, [0, 1])
    seen, unseen = members[m_labels == 0], test[t_labels == 0]
    pooled_drop = np.mean(seen - np.minimum(transport(seen, members, test), seen))
    assert pooled_drop > 2.0  # the pooled transport over-asks the hard class
    assert shift[0] == pytest.approx(pooled_drop - (seen.mean() - unseen.mean()))
    assert shift[0] > 1.5 and abs(shift[1]) < 0.5  # a memorised class's own gap is about the pooled one
    # the shift raises the class's rows' targets (never above their own margins); others are left alone
    forget = np.concatenate([np.flatnonzero(m_labels == 0)[:60], np.flatnonzero(m_labels == 2)[:40]])
    f_labels, f_margin = m_labels[forget], members[forget]
    args = (f_margin, f_labels, (f_labels + 1) % 4, members, test, m_labels, 4)
    plain, shifted = margin_targets(*args), margin_targets(*args, class_shift=shift)
    own = f_labels == 0
    assert np.all(shifted[own] >= plain[own]) and np.all(shifted <= f_margin)
    assert np.mean(f_margin[own] - shifted[own]) < 0.6 < 1.5 < np.mean(f_margin[own] - plain[own])
    assert np.array_equal(shifted[~own], plain[~own])
    # a class with no test rows (or none seen) gets no shift
    assert class_transport_shift(members, m_labels, test, np.full(m, 1), [0]) == {}
