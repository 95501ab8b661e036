"""How much less a retrain learns a class the request took much of: the class slope, measured.

Sample mode lowers the target of a forgotten row of such a class by kappa * log(1 - f_y), kappa
being RFAU's `class_slope`: the rate at which a retrain's logit for the class falls with the
log of the share of its rows it keeps. It depends on the model, the original and the class
(docs/results.md, "The class slope"), so RFAU assumes 2.5, less half the original's
surplus surety of the class, unless told (1 is the class prior alone; docs/results.md, "The
original's surplus on a concentrated class").
`rfau bench` has what it takes to measure it: the original, retrained references and the test
rows. For every class the request takes CONCENTRATED_SHARE or more of,

    slope = (mean margin of the class's test rows under the references - under the original)
            / (mean label shift of those rows, log((1 - f_c) / (1 - f_c')), c' their runner-up)

so a user can pass the measured value to later requests concentrated in the same class of the
same model: `--set class_slopes=3:2.7,5:1.0` per class, as the bench prints it, or `--set
class_slope=2.7` for every concentrated class (a slope measured on one class did not carry over
to another on the bench's ViT: 2.7 and 1.0). Test rows, not the forgotten ones: they are
non-members of both models, so their fall is the class's, not the rows' own membership.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rfau_cli.data import class_id
from rfau_cli.errors import InputError
from rfau_cli.methods.margin_targets import class_surplus, concentrated_classes, kept_log_share, margins

# A class whose test rows' mean label shift is smaller than this (logits) gives no usable ratio.
MIN_SHIFT = 0.05


def parse_class_slopes(text: str) -> dict[str, float]:
    """`CLASS:SLOPE` pairs, comma-separated ('3:2.7,5:1.0'), as {class token: slope}.

    The syntax and the values are checked here, when the parameters are built; the class
    tokens against the model's labels by `resolve_class_slopes`, once the config is read.

    Raises:
        InputError: a pair without a colon, an empty class, a slope that is not a finite
            number of 0 or more, or a class given twice.
    """
    out: dict[str, float] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        token, sep, value = pair.rpartition(":")
        token = token.strip()
        if not sep or not token:
            raise InputError(f"--set class_slopes: {pair!r} is not CLASS:SLOPE (e.g. 3:2.7,5:1.0)")
        try:
            slope = float(value)
        except ValueError:
            raise InputError(f"--set class_slopes: the slope of class {token!r} is not a number: {value!r}") from None
        if not (math.isfinite(slope) and slope >= 0):
            raise InputError(f"--set class_slopes: the slope of class {token!r} must be a finite number of 0 or more")
        if token in out:
            raise InputError(f"--set class_slopes: class {token!r} is given twice")
        out[token] = slope
    return out


def resolve_class_slopes(text: str, id2label: dict[int, str], num_labels: int) -> dict[int, float]:
    """{class id: slope} from `class_slopes`, each class a label name of the model or its id.

    Raises:
        InputError: a class the model does not have (its classes are listed).
    """
    label2id = {name: i for i, name in id2label.items()}
    out: dict[int, float] = {}
    for token, slope in parse_class_slopes(text).items():
        cls = class_id(token, label2id, num_labels)
        if cls is not None:
            out[cls] = slope
        else:
            names = ", ".join(id2label.get(i, str(i)) for i in range(num_labels))
            raise InputError(
                f"--set class_slopes: the model has no class {token!r} (classes: {names}, or 0..{num_labels - 1})"
            )
    return out


def class_slopes(
    original: np.ndarray,
    references: list[np.ndarray],
    test_labels: np.ndarray,
    train_labels: np.ndarray,
    forget_labels: np.ndarray,
    num_labels: int,
    names: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """One entry per concentrated class: its retrains' margin fall, label shift and slope.

    `original` and each of `references` are the test rows' logits (or log-probabilities: a
    margin is the same in both). Empty when the request takes no class's rows heavily, or
    there is no reference.
    """
    taken = concentrated_classes(train_labels, forget_labels, num_labels)
    if not taken or not references:
        return []
    base, runner_up = margins(original, test_labels)
    kept = kept_log_share(train_labels, forget_labels, num_labels)
    out = []
    for c, share in sorted(taken.items()):
        rows = test_labels == c
        if not rows.any():
            continue
        falls = [float(margins(ref, test_labels)[0][rows].mean() - base[rows].mean()) for ref in references]
        shift = float((kept[c] - kept[runner_up[rows]]).mean())
        fall = float(np.mean(falls))
        usable = shift < -MIN_SHIFT
        out.append({
            "class": int(c),
            "name": (names or {}).get(c, str(c)),
            "share_forgotten": share,
            "test_rows": int(rows.sum()),
            "retrain_fall": fall,
            "retrain_fall_per_reference": falls,
            "label_shift": shift,
            "slope": fall / shift if usable else None,
            # Retrains of different seeds lose a class by very different amounts (the bench's
            # memorising ResNet, digit 5: 1.3-5.3 logits), so one reference's slope says little.
            "slope_per_reference": [f / shift for f in falls] if usable else [],
            # how much surer of the class than of the others the original is (logits), whose
            # `class_shrink` share RFAU takes away when the class has no slope of its own
            "original_surplus": class_surplus(base, test_labels, [c], 1.0)[int(c)],
        })  # fmt: skip
    return out


def describe_slopes(slopes: list[dict[str, Any]], used: float | None) -> str | None:
    """One line for bench.md and the terminal, or None when no class was taken heavily.

    `used` is RFAU's `class_slope` in the bench (None without RFAU); a class's own entry in
    `class_slopes`, when it had one, is its `rfau_used`."""
    if not slopes:
        return None
    parts = []
    for s in slopes:
        ratio = f"slope {s['slope']:.1f}" if s["slope"] is not None else "slope n/a"
        if len(s.get("slope_per_reference", [])) > 1:
            spread = s["slope_per_reference"]
            ratio += f" ({min(spread):.1f}-{max(spread):.1f} over {len(spread)} references)"
        parts.append(
            f"class {s['name']} ({100 * s['share_forgotten']:.0f}% of its rows forgotten): the references' margin "
            f"on its {s['test_rows']} test rows fell {-s['retrain_fall']:.2f} logits, label shift "
            f"{-s['label_shift']:.2f}: {ratio}"
        )
    text = "Class slope measured: " + "; ".join(parts) + "."
    if used is None:
        return text
    each = [s.get("rfau_used", used) for s in slopes]
    if all(v == used for v in each):
        text += f" RFAU used class_slope {used:g}"
    else:
        text += " RFAU used the slopes " + ", ".join(f"{s['name']}: {v:g}" for s, v in zip(slopes, each, strict=True))
    taken = [s for s in slopes if s.get("rfau_surplus")]
    if taken:
        text += ", less a share of the original's surplus surety of the class (" + ", ".join(
            f"{s['name']}: {s['rfau_surplus']:+.2f} of {s['original_surplus']:+.2f} logits" for s in taken
        ) + ")"
    # A slope below 0 (the references gained on the class: noise around no fall at all) is passed
    # on as 0, the nearest setting `class_slopes` takes: the class's rows then fall by their own
    # transported margins and no class prior. On the bench's MiniLM, whose retrains barely fell on
    # `sport` when a request took 41% of it (slopes -0.1 to 1.0), the default 2.5 forgot those rows
    # far more than the retrains did and 0 came closest (docs/results.md, "A request concentrated in
    # one class of a fine-tuned text model").
    measured = [s for s in slopes if s["slope"] is not None]
    if measured:
        pairs = ",".join(f"{_token(s)}:{max(s['slope'], 0.0):.1f}" for s in measured)
        these = "this class" if len(measured) == 1 else "these classes"
        text += f"; for later requests concentrated in {these}: --set class_slopes={pairs}"
        if any(s["slope"] < 0 for s in measured):
            text += " (a slope measured below 0, the references not learning the class worse, passed as 0)"
        text += "."
    else:
        text += " (`--set class_slopes=CLASS:SLOPE` to pass a measured one)."
    return text


def _token(slope: dict[str, Any]) -> str:
    """How `class_slopes` names the class: its label, or its id when the label holds a separator."""
    name = str(slope["name"])
    return str(slope["class"]) if any(ch in name for ch in ",:") or name != name.strip() or not name else name
