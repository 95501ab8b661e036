"""Sample mode's forget weight grows when the forgotten rows' margins are on course to miss
their targets by the epoch cap (rfau_cli/methods/rfau.py, `_boost_if_stalled`): the excess,
projected to the cap at its mean rate since the weight last changed (first STALL_EPOCHS-epoch
window to the latest), must end within the stop rule's tolerance, or the weight doubles; never
sooner than two windows after the last doubling, and never past `max_forget_boost`. A run closing
in fast enough is never pushed, nor one that slows down as it goes but gets there."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rfau_cli.methods import loop
from rfau_cli.methods.rfau import RFAU, STALL_EPOCHS, TARGET_TOLERANCE

ASKED = 1.0  # the mean drop asked: the run is done at TARGET_TOLERANCE * ASKED of excess


def _run(
    monkeypatch,
    excess_by_epoch: list[float],
    cap: int = 60,
    most: float = 8.0,
    asked: float = ASKED,
    scale: float = 0.0,
) -> tuple[RFAU, list[float]]:
    """Feed a method one epoch at a time, as the training loop does (the record is appended to
    the history before the stop rule sees it); returns the boost in force after each epoch.
    `scale`: the original's median margin on the training rows it gets right (0: unknown)."""
    monkeypatch.setattr(loop, "epochs_to_run", lambda method, ctx: cap)
    method = RFAU()
    method.margin_scale = scale
    ctx = SimpleNamespace(history=[], params=SimpleNamespace(max_forget_boost=most), state={})
    boosts = []
    for excess in excess_by_epoch:
        record = {"margin_excess": excess}
        ctx.history.append(record)
        method._boost_if_stalled(ctx, record, asked)
        boosts.append(record["forget_boost"])
    assert ctx.state["forget_boost"] == boosts[-1]  # the report carries the last factor
    return method, boosts


def test_a_stalled_run_doubles_its_pull_every_two_windows_up_to_the_cap(monkeypatch) -> None:
    _, boosts = _run(monkeypatch, [0.5] * 60)
    first = 2 * STALL_EPOCHS  # the first epoch with two windows behind it
    assert boosts[: first - 1] == [1.0] * (first - 1)
    assert boosts[first - 1] == 2.0
    assert boosts[first - 1 + 2 * STALL_EPOCHS] == 4.0
    assert boosts[first - 1 + 4 * STALL_EPOCHS] == 8.0
    assert max(boosts) == 8.0 and boosts[-1] == 8.0  # never past max_forget_boost


def test_a_slow_run_on_course_for_its_target_is_not_pushed(monkeypatch) -> None:
    # 5% closer an epoch from 3x the asked drop: slow, noisy, but within tolerance well before
    # a 100-epoch cap (the memorising ResNet's requests look like this).
    noise = np.random.default_rng(0).uniform(0.9, 1.1, 100)
    excess = [3.0 * 0.95**epoch * n for epoch, n in enumerate(noise)]
    assert excess[-1] < TARGET_TOLERANCE * ASKED
    _, boosts = _run(monkeypatch, excess[:80], cap=100)
    assert set(boosts) == {1.0}


# A memorising digits ResNet's request on the bench (random 10%, rfau seed 0), every epoch's
# mean excess: it slows down as it goes and meets its targets at epoch 85 of a 100-epoch cap.
# Judged on its last two windows, noisy and slowing, the old rule doubled its weight at epoch 48.
MEMORISING_RUN = [
    2.92, 2.63, 2.53, 2.4, 2.29, 2.21, 2.09, 1.96, 1.88, 1.85, 1.8, 1.7, 1.65, 1.65, 1.55, 1.44, 1.41, 1.42,
    1.35, 1.31, 1.32, 1.3, 1.17, 1.1, 1.18, 1.16, 1.06, 1.07, 1.1, 1.11, 0.99, 0.95, 0.95, 0.99, 0.97, 0.86,
    0.83, 0.84, 0.79, 0.81, 0.82, 0.77, 0.7, 0.73, 0.69, 0.71, 0.71, 0.8, 0.71, 0.66, 0.66, 0.67, 0.63, 0.61,
    0.62, 0.6, 0.58, 0.57, 0.54, 0.57, 0.55, 0.55, 0.54, 0.57, 0.55, 0.51, 0.5, 0.54, 0.5, 0.5, 0.44, 0.41,
    0.45, 0.52, 0.43, 0.36, 0.41, 0.46, 0.41, 0.39, 0.38, 0.38, 0.4, 0.37, 0.34,
]
MEMORISING_ASKED = 3.42  # its mean asked drop: 0.34 is within the tolerance


def test_a_run_that_slows_down_but_gets_there_is_not_pushed(monkeypatch) -> None:
    excess = [e / MEMORISING_ASKED for e in MEMORISING_RUN]  # in units of the asked drop
    assert excess[-1] <= TARGET_TOLERANCE * ASKED
    _, boosts = _run(monkeypatch, excess[:-1], cap=100)
    assert set(boosts) == {1.0}


def test_a_run_that_stops_closing_in_is_pushed(monkeypatch) -> None:
    # Fast at first, then 1% an epoch from 0.4: at that rate 0.4 * 0.99^55 = 0.23 at the cap,
    # over twice the tolerance. The mean rate since the start hides the knee for a while, not
    # for ever.
    excess = [0.8**epoch for epoch in range(5)] + [0.4 * 0.99**epoch for epoch in range(55)]
    _, boosts = _run(monkeypatch, excess)
    assert boosts[-1] > 1.0
    assert boosts.index(2.0) < 45  # in time to act on the last quarter of the run


def test_the_rate_after_a_doubling_is_measured_at_the_new_weight(monkeypatch) -> None:
    # Stuck at 0.5 until the first doubling (epoch 10), then closing in 20% an epoch: on course,
    # so the weight stays at 2 although the run's start was a stall.
    excess = [0.5] * 10 + [0.5 * 0.8**epoch for epoch in range(30)]
    _, boosts = _run(monkeypatch, excess)
    assert boosts[9] == 2.0 and set(boosts[10:]) == {2.0}


def test_max_forget_boost_one_keeps_the_gentle_pull(monkeypatch) -> None:
    method, boosts = _run(monkeypatch, [0.5] * 60, most=1.0)
    assert set(boosts) == {1.0} and method.boost == 1.0


def test_a_request_with_almost_nothing_to_drop_stops_at_the_models_margin_resolution(monkeypatch) -> None:
    """An original that barely memorised asks its rows to drop a tenth of a logit: a tenth of that
    is under the noise of a pull fading near its target, and such runs doubled their pull to the
    cap and ran to the step cap doing nothing measurable. The run is also at its targets within
    TARGET_FLOOR_SHARE (0.5%) of the model's median margin."""
    from rfau_cli.methods.rfau import TARGET_FLOOR_SHARE

    method = RFAU()
    method.margin_scale = 4.0  # the median margin of the training rows the original gets right
    assert method.tolerance(0.1) == pytest.approx(TARGET_FLOOR_SHARE * 4.0)  # 0.02 logits, not 0.01
    assert method.tolerance(3.0) == pytest.approx(TARGET_TOLERANCE * 3.0)  # a real drop: 10% of it, as before
    assert RFAU().tolerance(0.1) == pytest.approx(TARGET_TOLERANCE * 0.1)  # no scale known: relative only
    # 0.1 asked, the excess stuck at 0.015 logits: within the model's resolution, never pushed; without
    # the scale the same run doubles its forget weight up to the cap
    _, boosts = _run(monkeypatch, [0.015] * 60, asked=0.1, scale=4.0)
    assert set(boosts) == {1.0}
    _, boosts = _run(monkeypatch, [0.015] * 60, asked=0.1)
    assert boosts[-1] == 8.0
