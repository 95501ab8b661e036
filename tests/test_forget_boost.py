"""Sample mode's forget weight grows when the forgotten rows' margins are on course to miss
their targets by the epoch cap (rfau_cli/methods/rfau.py, `_boost_if_stalled`): the excess,
projected to the cap at the rate of its last two STALL_EPOCHS-epoch means, must end within the
stop rule's tolerance, or the weight doubles; never sooner than two windows after the last
doubling, and never past `max_forget_boost`. A run closing in fast enough is never pushed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from rfau_cli.methods import loop
from rfau_cli.methods.rfau import RFAU, STALL_EPOCHS, TARGET_TOLERANCE

ASKED = 1.0  # the mean drop asked: the run is done at TARGET_TOLERANCE * ASKED of excess


def _run(monkeypatch, excess_by_epoch: list[float], cap: int = 60, most: float = 8.0) -> tuple[RFAU, list[float]]:
    """Feed a method one epoch at a time, as the training loop does (the record is appended to
    the history before the stop rule sees it); returns the boost in force after each epoch."""
    monkeypatch.setattr(loop, "epochs_to_run", lambda method, ctx: cap)
    method = RFAU()
    ctx = SimpleNamespace(history=[], params=SimpleNamespace(max_forget_boost=most), state={})
    boosts = []
    for excess in excess_by_epoch:
        record = {"margin_excess": excess}
        ctx.history.append(record)
        method._boost_if_stalled(ctx, record, ASKED)
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


def test_a_run_that_slows_down_too_soon_is_pushed(monkeypatch) -> None:
    # Fast at first, then 1% an epoch from 0.4: at that rate 0.4 * 0.99^40 = 0.27 at the cap.
    excess = [0.8**epoch for epoch in range(5)] + [0.4 * 0.99**epoch for epoch in range(20)]
    _, boosts = _run(monkeypatch, excess)
    assert boosts[-1] > 1.0


def test_max_forget_boost_one_keeps_the_gentle_pull(monkeypatch) -> None:
    method, boosts = _run(monkeypatch, [0.5] * 60, most=1.0)
    assert set(boosts) == {1.0} and method.boost == 1.0
