"""Sample mode's forget loss (rfau_cli/methods/rfau.py, `forget_pull`): smooth L1 of each forget
row's margin against its target; one-sided, a row already below its target is left where it is."""

from __future__ import annotations

import pytest
import torch

from rfau_cli.methods.rfau import MARGIN_BETA, forget_pull


def _grads(one_sided: bool) -> tuple[float, torch.Tensor]:
    margin = torch.tensor([5.0, 2.5, 0.0, -1.0], requires_grad=True)
    target = torch.tensor([1.0, 2.0, 1.0, 1.0])
    loss = forget_pull(margin, target, one_sided)
    loss.backward()
    return loss.item(), margin.grad


def test_two_sided_holds_rows_below_their_target_back_up() -> None:
    assert MARGIN_BETA == 1.0
    loss, grad = _grads(one_sided=False)
    # excess 4 (linear: 3.5), 0.5 (quadratic: 0.125), shortfall 1 (0.5) and 2 (1.5)
    assert loss == pytest.approx((3.5 + 0.125 + 0.5 + 1.5) / 4)
    assert grad[0] > 0 and grad[1] > 0  # descent lowers the rows above their target
    assert grad[2] < 0 and grad[3] < 0  # and raises the rows below it


def test_one_sided_pulls_only_rows_above_their_target() -> None:
    loss, grad = _grads(one_sided=True)
    assert loss == pytest.approx((3.5 + 0.125) / 4)
    assert grad[0] > 0 and grad[1] > 0
    assert grad[2] == 0 and grad[3] == 0  # a row that went further than asked is not pulled back
    # the rows above their target feel exactly the two-sided pull
    assert torch.equal(grad[:2], _grads(one_sided=False)[1][:2])
