"""The README.md model card of an rfau output, in the Hugging Face model-card format.

A model pushed to a hub should explain itself: YAML front matter (`base_model`,
`library_name`, `tags`), then what was forgotten (counts, classes and hashes, never the data
or the ids: those stay in ledger.json), how (method, settings, steps, stop reason), the
before/after audit and the ledger. It is rendered from the final report.json (`card_for`),
so `rfau verify` checks README.md by rendering it again; like report.json it is a record,
not in `outputs.sha256`.
"""

from __future__ import annotations

import json
from typing import Any

from rfau_cli.checkpoint import CARD_FILE
from rfau_cli.ledger import ledger_table

__all__ = ["CARD_FILE", "card_for", "render_card"]
TAGS = ("machine-unlearning", "rfau")
# (metric block, key, label) rows of the audit table, shown when the report holds them.
AUDIT_ROWS = (
    ("forget", "acc", "accuracy on this request's rows (D_f)"),
    ("forget_all", "acc", "accuracy on every row forgotten so far"),
    ("retain", "acc", "accuracy on kept training rows (D_r sample)"),
    ("test", "acc", "test accuracy"),
    ("test_retain", "acc", "test accuracy, kept classes"),
    ("test_forget", "acc", "test accuracy, forgotten classes"),
    ("test_concentrated", "acc", "test accuracy, classes the request took 30% or more of (a retrain loses some)"),
    ("test_others", "acc", "test accuracy, the other classes"),
    ("forget", "conf", "mean confidence on D_f"),
    ("mia", "efficacy", "MIA-efficacy (SVC confidence)"),
    ("mia", "loss_auc", "loss attack AUC, D_f vs test"),
    ("mia", "loss_tpr_at_1pct_fpr", "loss attack TPR at 1% FPR"),
)


def card_for(report: dict[str, Any]) -> str:
    """The card of an output from its report.json (as loaded from JSON): what `rfau unlearn`
    writes and what `rfau verify` compares README.md with."""
    ledger = report.get("ledger") or [{}]
    base = str(ledger[0].get("input_model") or report.get("inputs", {}).get("model", ""))
    library = "peft" if report.get("outputs", {}).get("save") == "adapter" else "transformers"
    return render_card(report, base, library)


def render_card(report: dict[str, Any], base_model: str, library: str) -> str:
    """The card's text from a (nearly complete) report: everything but `outputs` is read."""
    ledger = report.get("ledger") or []
    last = ledger[-1] if ledger else {}
    training = report.get("training", {})
    lines = [
        "---",
        f"base_model: {json.dumps(base_model)}",
        f"library_name: {library}",
        "tags:",
        *(f"- {t}" for t in TAGS),
        "---",
        "",
        f"# {report.get('inputs', {}).get('architecture', 'Model')} after {len(ledger)} deletion request(s)",
        "",
        f"Written by `rfau {report.get('command', 'unlearn')}` (rfau {report.get('versions', {}).get('rfau', '?')}): "
        f"the model `{base_model}` with training data removed by machine unlearning. `report.json` holds "
        "every setting and number, `ledger.json` every request; `rfau verify` checks the hashes.",
        "",
        "## What was forgotten",
        "",
        f"- This request: {report.get('forget_count')} training rows, by {report.get('forget_by')}"
        + _classes(last.get("forget_classes"))
        + f"; forget list sha256 `{report.get('inputs', {}).get('forget_list_sha256', '')}`.",
        f"- All requests so far: {len(ledger)}, "
        f"{report.get('metrics', {}).get('after', {}).get('sizes', {}).get('forget_all', '?')} rows of this data"
        + _classes(sorted({c for e in ledger for c in e.get("forget_classes") or []}))
        + ".",
        "",
        "## How",
        "",
        f"- Method: `{report.get('method')}`, seed {report.get('seed')}, on {report.get('device')} "
        f"({report.get('precision')}); built from: {last.get('built_from', 'checkpoint')}.",
        f"- Training: {training.get('epochs_run', '?')} epoch(s), {training.get('steps', '?')} step(s); "
        f"stop reason: {training.get('stop_reason') or 'epoch cap reached'}.",
        *_warning_lines(training),
        *_head_shift_lines(training),
        "- Settings: " + ", ".join(f"`{k}={_short(v)}`" for k, v in sorted(report.get("settings", {}).items())),
        f"- Input weights sha256 `{last.get('input_sha256', '')}`; output weights sha256 "
        f"`{last.get('output_sha256', '')}` ({', '.join(last.get('output_weights', []))}).",
        "",
        "## Audit, before and after",
        "",
        "| metric | before | after |",
        "|---|---|---|",
        *_audit_rows(report.get("metrics", {})),
        "",
        *_gate_lines(report.get("gates") or []),
        "## Ledger",
        "",
        *_ledger_rows(ledger),
        "",
    ]
    return "\n".join(lines)


def _warning_lines(training: dict[str, Any]) -> list[str]:
    """The run's warnings (test rows as sure as training rows, a concentrated request, targets not
    reached): whoever ships the model should read them with the audit, not only whoever ran it."""
    return [f"- {text[0].upper()}{text[1:]}" for key, text in sorted(training.items())
            if key.endswith("_warning") and isinstance(text, str) and text]  # fmt: skip


def _head_shift_lines(training: dict[str, Any]) -> list[str]:
    """The classifier head's bias moved (a request concentrated in a class: head_shift.py): the
    shipped head differs from the base model's, and anyone comparing logits should know."""
    shift = training.get("head_shift") or {}
    if not shift:
        return []
    large = ", ".join(f"{c} by {-v:.2f}" for c, v in shift.items() if v <= -0.1)
    return [
        f"- Classifier head: the bias lowered for the classes this request took much of ({large or 'none over 0.1'} "
        f"logits; the others by at most {max((-v for v in shift.values() if v > -0.1), default=0.0):.2f}), as a "
        "model retrained without their rows would be less sure of them."
    ]


def _classes(classes: Any) -> str:
    return f" (classes {', '.join(map(str, classes))})" if classes else ""


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _audit_rows(metrics: dict[str, Any]) -> list[str]:
    before, after = metrics.get("before", {}), metrics.get("after", {})
    rows = []
    for block, key, label in AUDIT_ROWS:
        if block == "test_others" and "test_concentrated" not in after:
            continue  # no class the request took most of: the other classes' rows are all of test
        b, a = before.get(block, {}).get(key), after.get(block, {}).get(key)
        if a is not None or b is not None:
            rows.append(f"| {label} | {_number(b)} | {_number(a)} |")
    return rows


def _gate_lines(gates: list[dict[str, Any]]) -> list[str]:
    """The release gates (`--require`) checked on the audit after, when there were any."""
    if not gates:
        return []
    held = sum(bool(g.get("passed")) for g in gates)
    return [
        "## Gates",
        "",
        f"{held} of {len(gates)} gate(s) held on the audit after unlearning:",
        "",
        "| gate | actual | held |",
        "|---|---|---|",
        *(f"| `{g.get('expr')}` | {_number(g.get('actual'))} | {'yes' if g.get('passed') else 'NO'} |" for g in gates),
        "",
    ]


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _ledger_rows(ledger: list[dict[str, Any]]) -> list[str]:
    table = ledger_table(ledger)
    if not table:
        return ["(empty)"]
    head = list(table[0])
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row[h] for h in head) + " |" for row in table),
    ]
