"""CI gate expressions, e.g. ``rfau audit --require 'forget.acc<=0.02'``.

A gate is ``KEY OP NUMBER`` where KEY is a dotted path into the (flattened)
audit report and OP is one of ``<=``, ``<``, ``>=``, ``>``, ``==``.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from dataclasses import dataclass
from typing import Any, Mapping

_COMPARE = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_GATE_RE = re.compile(
    r"^\s*(?P<key>[A-Za-z0-9_.%-]+)\s*(?P<op><=|>=|==|<|>)\s*(?P<value>" + _NUMBER + r")\s*$"
)
FORM = "KEY OP NUMBER with OP one of <=, <, >=, >, == (e.g. 'forget.acc<=0.02')"


class GateSyntaxError(ValueError):
    """A --require expression does not match KEY OP NUMBER."""


class UnknownGateKeyError(KeyError):
    """A gate names a key absent from the report."""

    def __init__(self, unknown: list[str], valid: list[str]):
        self.unknown = list(unknown)
        self.valid = sorted(valid)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        names = ", ".join(repr(k) for k in self.unknown)
        valid = ", ".join(self.valid) if self.valid else "(none)"
        plural = "s" if len(self.unknown) != 1 else ""
        return f"unknown gate key{plural} {names}; valid keys: {valid}"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Gate:
    key: str
    op: str
    value: float
    expr: str


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    actual: float
    passed: bool


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)  # np.bool_ is not Real


def flatten(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested dicts -> {"a.b.c": float}; only int/float leaves (not bool) are kept."""
    out: dict[str, float] = {}
    for k, v in report.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        elif _is_number(v):
            out[key] = float(v)
    return out


def parse_gate(expr: str) -> Gate:
    """Parse 'KEY OP NUMBER' (spaces allowed) into a Gate; GateSyntaxError otherwise."""
    m = _GATE_RE.match(expr) if isinstance(expr, str) else None
    if m is None:
        raise GateSyntaxError(f"invalid gate expression {expr!r}: expected {FORM}")
    return Gate(key=m["key"], op=m["op"], value=float(m["value"]), expr=expr.strip())


def evaluate_gates(gates: list[Gate], values: Mapping[str, float]) -> list[GateResult]:
    """Evaluate every gate against flattened values. NaN actuals never pass.

    Raises UnknownGateKeyError (listing the valid keys) if any gate names a
    key that is not in ``values``; no gate is evaluated in that case.
    """
    unknown = [g.key for g in gates if g.key not in values]
    if unknown:
        raise UnknownGateKeyError(list(dict.fromkeys(unknown)), list(values))
    results = []
    for g in gates:
        actual = float(values[g.key])
        passed = not math.isnan(actual) and bool(_COMPARE[g.op](actual, g.value))
        results.append(GateResult(gate=g, actual=actual, passed=passed))
    return results


def gate_records(results: list[GateResult]) -> list[dict[str, Any]]:
    """Gate results as the JSON records a report holds (expr, key, op, value, actual, passed)."""
    return [
        {"expr": r.gate.expr, "key": r.gate.key, "op": r.gate.op, "value": r.gate.value, "actual": r.actual,
         "passed": r.passed}
        for r in results
    ]
