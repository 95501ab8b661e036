"""The class slope a bench measures from its references (rfau_cli/class_slope.py), on synthetic
logits whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from rfau_cli.class_slope import class_slopes, describe_slopes, parse_class_slopes, resolve_class_slopes
from rfau_cli.errors import InputError
from rfau_cli.methods.margin_targets import kept_log_share, margins


def _logits(rng: np.random.Generator, labels: np.ndarray, classes: int) -> np.ndarray:
    z = rng.normal(0.0, 1.0, (len(labels), classes))
    z[np.arange(len(labels)), labels] += 6.0
    return z


def test_a_retrain_that_loses_twice_label_shift_on_the_class_measures_slope_two() -> None:
    rng = np.random.default_rng(0)
    train = np.repeat(np.arange(4), 100)
    forget = np.concatenate([np.full(60, 2), [0, 1, 3]])  # 60% of class 2
    test = np.repeat(np.arange(4), 25)
    original = _logits(rng, test, 4)
    _, runner_up = margins(original, test)
    kept = kept_log_share(train, forget, 4)
    retrains = []
    for noise in (0.3, -0.3):  # two references, falling 2x label shift +- 0.3
        ref = original.copy()
        rows = np.flatnonzero(test == 2)
        ref[rows, 2] += 2.0 * (kept[2] - kept[runner_up[rows]]) + noise
        retrains.append(ref)
    (got,) = class_slopes(original, retrains, test, train, forget, 4, {2: "bird"})
    assert got["class"] == 2 and got["name"] == "bird" and got["share_forgotten"] == 0.6
    assert got["test_rows"] == 25 and len(got["retrain_fall_per_reference"]) == 2
    assert np.isclose(got["label_shift"], np.log(0.4) - np.log(0.99), atol=0.01)
    assert np.isclose(got["slope"], 2.0)
    assert got["slope_per_reference"][0] < 2.0 < got["slope_per_reference"][1]  # +0.3 falls less, -0.3 more
    line = describe_slopes([got], 2.5)
    assert "class bird (60% of its rows forgotten)" in line and "slope 2.0 (" in line and "class_slope 2.5" in line
    assert "over 2 references)" in line
    assert line.endswith("--set class_slopes=bird:2.0.")  # what to pass on, for the class measured
    # an original one logit surer of the class's test rows: a surplus one logit larger, which the
    # line reports with the share RFAU took away
    sure = original.copy()
    sure[test == 2, 2] += 1.0
    (surer,) = class_slopes(sure, retrains, test, train, forget, 4, {2: "bird"})
    assert surer["original_surplus"] == pytest.approx(got["original_surplus"] + 1.0)
    line = describe_slopes([{**surer, "rfau_surplus": 0.5 * surer["original_surplus"]}], 2.5)
    half, whole = 0.5 * surer["original_surplus"], surer["original_surplus"]
    assert f"class_slope 2.5, less a share of the original's surplus surety of the class (bird: {half:+.2f} of " \
           f"{whole:+.2f} logits)" in line  # fmt: skip
    assert "surplus" not in describe_slopes([{**surer, "rfau_surplus": 0.0}], 2.5)


def test_nothing_is_measured_for_a_uniform_request_or_without_references() -> None:
    rng = np.random.default_rng(1)
    train = np.repeat(np.arange(4), 100)
    test = np.repeat(np.arange(4), 25)
    original = _logits(rng, test, 4)
    uniform = np.repeat(np.arange(4), 10)
    assert class_slopes(original, [original], test, train, uniform, 4) == []
    assert class_slopes(original, [], test, train, np.full(60, 2), 4) == []
    assert describe_slopes([], 2.5) is None


def test_a_slope_measured_below_zero_is_passed_on_as_zero() -> None:
    """References that gained on the class: the advice is 0, the nearest slope `class_slopes`
    takes (the measured negative value would be refused), and that setting resolves."""
    gained = {"name": "3", "share_forgotten": 0.5, "test_rows": 10, "retrain_fall": 0.2, "label_shift": -0.7,
              "slope": -0.3}
    line = describe_slopes([gained], 1.0)
    assert line.endswith("--set class_slopes=3:0.0 (a slope measured below 0, the references not learning the class "
                         "worse, passed as 0).")
    assert resolve_class_slopes("3:0.0", {3: "3"}, 10) == {3: 0.0}
    unusable = {**gained, "slope": None}  # a label shift too small for a ratio: nothing to pass on
    assert describe_slopes([unusable], 1.0).endswith("(`--set class_slopes=CLASS:SLOPE` to pass a measured one).")


def test_two_classes_measured_are_passed_on_each_with_its_own_slope() -> None:
    """A request concentrated in two classes: each gets its slope in one `class_slopes` setting,
    and the line says which slope RFAU used for each (a label holding a separator goes by id)."""
    entry = {"share_forgotten": 0.6, "test_rows": 25, "retrain_fall": -2.0, "label_shift": -0.9, "slope": 2.2}
    slopes = [{**entry, "class": 3, "name": "3", "rfau_used": 2.5},
              {**entry, "class": 5, "name": "five: odd", "slope": 1.04, "rfau_used": 1.0}]  # fmt: skip
    line = describe_slopes(slopes, 1.0)
    assert "RFAU used the slopes 3: 2.5, five: odd: 1" in line
    assert line.endswith("for later requests concentrated in these classes: --set class_slopes=3:2.2,5:1.0.")
    assert resolve_class_slopes("3:2.2,5:1.0", {3: "3", 5: "five: odd"}, 10) == {3: 2.2, 5: 1.0}


def test_class_slopes_name_classes_by_label_or_id_and_refuse_anything_else() -> None:
    labels = {0: "news", 1: "sport", 2: "tech"}
    assert parse_class_slopes("") == {} and parse_class_slopes(" sport : 2.5 , 0:1") == {"sport": 2.5, "0": 1.0}
    assert resolve_class_slopes("sport:2.5,0:1", labels, 3) == {1: 2.5, 0: 1.0}
    refused = [("sport=2", "is not CLASS:SLOPE"), (":2", "is not CLASS:SLOPE"), ("sport:x", "not a number"),
               ("sport:-1", "0 or more"), ("sport:nan", "finite"), ("sport:1,sport:2", "given twice")]  # fmt: skip
    for bad, says in refused:
        with pytest.raises(InputError, match=says):
            parse_class_slopes(bad)
    for missing in ("cars:2", "3:2", "-1:2"):
        with pytest.raises(InputError, match="the model has no class .*classes: news, sport, tech, or 0..2"):
            resolve_class_slopes(missing, labels, 3)
