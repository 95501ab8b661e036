import dataclasses
import math

import numpy as np
import pytest

from rfau_cli.gates import (
    Gate,
    GateResult,
    GateSyntaxError,
    UnknownGateKeyError,
    evaluate_gates,
    flatten,
    parse_gate,
)


@pytest.mark.parametrize(
    "expr,key,op,value",
    [
        ("forget.acc<=0.02", "forget.acc", "<=", 0.02),
        ("forget.acc<0.02", "forget.acc", "<", 0.02),
        ("test.acc>=0.9", "test.acc", ">=", 0.9),
        ("test.acc>0.9", "test.acc", ">", 0.9),
        ("mia.auc==0.5", "mia.auc", "==", 0.5),
        ("  forget.acc  <=  2e-2 ", "forget.acc", "<=", 0.02),
        ("gap.avg_%<=-1.5", "gap.avg_%", "<=", -1.5),
        ("mia.tpr_at_0.1pct_fpr < .01", "mia.tpr_at_0.1pct_fpr", "<", 0.01),
        ("a-b>=3", "a-b", ">=", 3.0),
    ],
)
def test_parse_each_operator(expr, key, op, value):
    g = parse_gate(expr)
    assert isinstance(g, Gate)
    assert (g.key, g.op) == (key, op)
    assert g.value == pytest.approx(value)
    assert g.expr == expr.strip()


@pytest.mark.parametrize(
    "expr",
    ["forget.acc", "forget.acc<=abc", "<=0.1", "forget.acc=0.1", "", "forget.acc<=0.1x", "a b<=1", "a<=>1"],
)
def test_bad_expressions_raise(expr):
    with pytest.raises(GateSyntaxError) as info:
        parse_gate(expr)
    msg = str(info.value)
    assert "\n" not in msg
    assert repr(expr) in msg
    assert "KEY OP NUMBER" in msg
    assert isinstance(info.value, ValueError)


def test_gate_is_frozen():
    g = parse_gate("a<1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.value = 2.0  # type: ignore[misc]


def test_flatten_nested_and_skips_non_numbers():
    report = {
        "forget": {"acc": 0.01, "n": 500, "name": "forget", "ok": True},
        "mia": {"svc": {"confidence": 0.9}, "flags": [1, 2]},
        "seed": np.int64(3),
        "np_flag": np.bool_(True),
        "top": 1.5,
        "skip": None,
    }
    flat = flatten(report)
    assert flat == {"forget.acc": 0.01, "forget.n": 500.0, "mia.svc.confidence": 0.9, "seed": 3.0, "top": 1.5}
    assert all(type(v) is float for v in flat.values())
    assert flatten({"a": {"b": 1}}, prefix="r") == {"r.a.b": 1.0}


def test_evaluate_pass_fail():
    values = {"forget.acc": 0.01, "test.acc": 0.85, "mia.auc": 0.5}
    gates = [
        parse_gate(e) for e in ("forget.acc<=0.02", "test.acc>=0.9", "mia.auc==0.5", "forget.acc<0.01", "test.acc>0.8")
    ]
    results = evaluate_gates(gates, values)
    assert all(isinstance(r, GateResult) for r in results)
    assert [r.passed for r in results] == [True, False, True, False, True]
    assert [r.actual for r in results] == [0.01, 0.85, 0.5, 0.01, 0.85]
    assert results[0].gate is gates[0]


def test_equality_uses_tolerance():
    g = parse_gate("x==0.3")
    assert evaluate_gates([g], {"x": 0.1 + 0.2})[0].passed
    assert not evaluate_gates([g], {"x": 0.3001})[0].passed
    assert evaluate_gates([parse_gate("x==0")], {"x": 1e-13})[0].passed


def test_nan_never_passes():
    nan = float("nan")
    for expr in ("x<=1", "x<1", "x>=1", "x>1", "x==1"):
        (r,) = evaluate_gates([parse_gate(expr)], {"x": nan})
        assert not r.passed
        assert math.isnan(r.actual)


def test_unknown_key_lists_valid_keys():
    values = {"test.acc": 0.9, "forget.acc": 0.1, "mia.auc": 0.5}
    with pytest.raises(UnknownGateKeyError) as info:
        evaluate_gates([parse_gate("forget.acc<=0.2"), parse_gate("forgt.acc<=0.02")], values)
    msg = str(info.value)
    assert "\n" not in msg
    assert "forgt.acc" in msg
    assert "forget.acc, mia.auc, test.acc" in msg
    assert isinstance(info.value, KeyError)


def test_empty_gate_list():
    assert evaluate_gates([], {"a": 1.0}) == []
