"""The hinge that keeps kept rows on their side of the decision boundary in sample mode
(rfau_cli/methods/rfau.py, `kept_margin_hinge`): zero for a row that keeps min(its own margin,
the floor), the shortfall for one that slipped, and nothing for a row the original got wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rfau_cli.methods.rfau import KEPT_MARGIN_FLOOR, KEPT_MARGIN_FLOOR_SHARE, hinge_floor, kept_margin_hinge


def test_only_rows_that_slip_below_their_floor_count() -> None:
    labels = torch.tensor([0, 0, 1, 2])
    teacher = torch.tensor([
        [5.0, 0.0, 0.0],  # margin 5: held at the floor
        [0.5, 0.0, 0.0],  # margin 0.5: its floor is its own margin
        [0.0, 3.0, 0.0],  # margin 3: held at the floor (or 3)
        [4.0, 0.0, 1.0],  # the original gets it wrong (margin -3): never held
    ])  # fmt: skip
    student = torch.tensor([
        [2.0, 0.0, 0.0],  # margin 2: at floor 1 or 2, fine, though it lost 3 logits of confidence
        [0.2, 0.0, 0.0],  # margin 0.2 < 0.5: short by 0.3
        [0.0, 0.5, 1.0],  # margin -0.5: short by 1.5 of floor 1 (it crossed the boundary)
        [9.0, 0.0, 0.0],  # anything: not counted
    ])  # fmt: skip
    assert kept_margin_hinge(student, teacher, labels, floor=1.0).item() == pytest.approx((0.3 + 1.5) / 4)
    assert kept_margin_hinge(teacher, teacher, labels).item() == 0.0  # the original itself pays nothing
    # the default floor, 2 logits: the first row (margin 2) just holds, the third is 2.5 short
    assert KEPT_MARGIN_FLOOR == 2.0
    assert kept_margin_hinge(student, teacher, labels).item() == pytest.approx((0.3 + 2.5) / 4)


def test_the_hinge_pulls_a_slipped_row_back_up() -> None:
    labels = torch.tensor([1])
    teacher = torch.tensor([[0.0, 4.0, 0.0]])
    student = torch.tensor([[0.0, 0.2, 0.5]], requires_grad=True)
    kept_margin_hinge(student, teacher, labels).backward()
    grad = student.grad[0]
    assert grad[1] < 0 and grad[2] > 0 and grad[0] == 0  # descent raises z_y, lowers the runner-up only


def test_the_auto_floor_is_a_share_of_the_median_margin_of_the_rows_the_original_gets_right() -> None:
    member = np.array([-3.0, -1.0, 2.0, 4.0, 8.0])  # two rows the original gets wrong do not count
    assert KEPT_MARGIN_FLOOR_SHARE == 0.75
    assert hinge_floor("auto", member) == pytest.approx(0.75 * 4.0)
    assert hinge_floor("auto", 10 * member) == pytest.approx(10 * hinge_floor("auto", member))  # the model's own units
    assert hinge_floor("2.5", member) == 2.5  # a number is logits, whatever the model
    assert hinge_floor("auto", np.array([-1.0, -2.0])) == 0.0  # nothing right, nothing to hold
