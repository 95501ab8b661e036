"""Human-readable tables of results (rich), for stdout when `--json` is not given."""

from __future__ import annotations

from typing import Any

ROWS = (
    ("forget", "D_f"),
    ("retain", "D_r"),
    ("test", "test"),
    ("test_forget", "test, forgotten classes"),
    ("test_retain", "test, kept classes"),
    ("test_concentrated", "test, request's classes"),
    ("test_others", "test, other classes"),
)


def _fmt(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def print_unlearn_summary(report: dict[str, Any], out: Any = None) -> None:
    """The before/after table; with earlier requests in the ledger, also every row forgotten
    so far (`forget_all`), so a later request visibly keeps the earlier ones forgotten."""
    from rich.console import Console
    from rich.table import Table

    from rfau_cli.methods.rfau import MEMORISED_AUC

    before, after = report["metrics"]["before"], report["metrics"]["after"]
    requests = len(report.get("ledger") or [])
    title = f"rfau {report['method']}: forgot {report['forget_count']} rows ({report['forget_by']})"
    if requests > 1:
        title += f", request {requests} of the ledger"
    table = Table(title=title)
    for col in ("split", "acc before", "acc after", "conf before", "conf after"):
        table.add_column(col, justify="right" if col != "split" else "left")
    rows = ROWS if requests <= 1 else (ROWS[0], ("forget_all", "D_f, all requests"), *ROWS[1:])
    for key, label in rows:
        if key == "test_others" and "test_concentrated" not in after:
            continue  # no class the request took most of: the other classes' rows are all of test
        if key in after and key in before:
            table.add_row(
                label,
                _fmt(before[key]["acc"]),
                _fmt(after[key]["acc"]),
                _fmt(before[key]["conf"]),
                _fmt(after[key]["conf"]),
            )
    mia_b, mia_a = before.get("mia", {}), after.get("mia", {})
    for key, label in (("efficacy", "MIA-efficacy (SVC conf.)"), ("loss_auc", "loss-attack AUC")):
        if key in mia_a:
            table.add_row(label, _fmt(mia_b.get(key)), _fmt(mia_a.get(key)), "", "")
    console = Console()
    console.print(table)
    original = report["metrics"].get("original", {})
    if "retain_feature_distance" in original:
        console.print(f"retain feature distance to the original: {original['retain_feature_distance']:.2e}")
    training = report.get("training") or {}
    settings = report.get("settings") or {}
    auc = training.get("memorisation_auc")
    short = None if auc is None else "memorised" if auc >= MEMORISED_AUC else "not memorised"
    verdict = None if auc is None else (
        f"{short}: a loss attack tells the original's training rows from its test rows with AUC {auc:.2f}"
    )
    shown = False  # the verdict, once: the weight's line refers to the pull's
    if "forget_pull" in training:
        shown = settings.get("forget_pull", "auto") == "auto" and verdict is not None
        console.print(f"forget pull: {training['forget_pull']} ({verdict if shown else 'asked for'})", highlight=False)
    if "kept_margin_weight" in training:
        why = "asked for"
        if settings.get("kept_margin_weight", "auto") == "auto" and verdict is not None:
            why = f"auto: {short}, as above" if shown else f"auto, {verdict}"
        console.print(f"kept-margin weight: {training['kept_margin_weight']:g} ({why})", highlight=False)
    if "kept_margin_floor" in training:
        asked = settings.get("kept_margin_floor", "auto") != "auto"
        why = "asked for" if asked else "auto: from the original's median margin on the training rows it gets right"
        console.print(f"kept-margin floor: {training['kept_margin_floor']:.2f} logits ({why})", highlight=False)
    where = f" in {out}" if out is not None else ""
    console.print(
        f"wall time {report['timings_s']['total']:.1f}s; outputs{where}: "
        f"{', '.join(sorted(report['outputs']['sha256']))}",
        highlight=False,
    )


AUDIT_ROWS = (("acc", "accuracy"), ("conf", "confidence"))
MIA_ROWS = (
    ("efficacy", "MIA-efficacy (SVC)"),
    ("loss_auc", "loss attack AUC"),
    ("loss_tpr_at_1pct_fpr", "TPR @ 1% FPR"),
    ("loss_tpr_at_0.1pct_fpr", "TPR @ 0.1% FPR"),
    ("logreg_acc", "logreg attack acc"),
)
LIRA_ROWS = (
    ("auc", "LiRA AUC"),
    ("tpr_at_1pct_fpr", "LiRA TPR @ 1% FPR"),
    ("tpr_at_0.1pct_fpr", "LiRA TPR @ 0.1% FPR"),
    ("flagged_at_1pct_fpr", "LiRA D_f flagged"),
    ("retain_auc", "LiRA AUC, D_r vs test"),
)
ORIGINAL_ROWS = (
    ("retain_feature_distance", "D_r feature dist."),
    ("forget_feature_distance", "D_f feature dist."),
    ("retain_agreement", "D_r agreement"),
    ("forget_agreement", "D_f agreement"),
)


def print_audit_summary(result: dict[str, Any], console: Any) -> None:
    """One table of every headline number (with the reference and the gap when given), then the gates."""
    from rich.table import Table

    sizes, metrics, reference = result["sizes"], result["metrics"], result.get("reference")
    settings = result["settings"]
    title = (
        f"rfau audit: D_f {sizes['forget']} rows ({settings['by']}), D_r {sizes['retain']} of "
        f"{sizes['retain_total']} rows (seeded sample), test {sizes['test']} rows"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("gate key", overflow="fold")
    table.add_column("model", justify="right")
    if reference:
        table.add_column("reference", justify="right")
        table.add_column("gap", justify="right")
    gap = (reference or {}).get("gap", {})

    def add(label: str, block: str, key: str, mine: dict[str, Any], theirs: dict[str, Any] | None) -> None:
        if key not in mine:
            return
        cells = [label, f"{block}.{key}", _num(mine[key])]
        if reference:
            block_gap: Any = gap
            for part in block.split("."):
                block_gap = block_gap.get(part, {}) if isinstance(block_gap, dict) else {}
            cells += [_num((theirs or {}).get(key)), _num(block_gap.get(key))]
        table.add_row(*cells)

    ref_metrics = (reference or {}).get("metrics", {})
    for block, split in ROWS:
        for key, name in AUDIT_ROWS:
            if block in metrics:
                add(f"{split} {name}", block, key, metrics[block], ref_metrics.get(block))
    for key, name in MIA_ROWS:
        add(name, "mia", key, metrics.get("mia", {}), ref_metrics.get("mia"))
    for key, name in LIRA_ROWS:
        add(name, "mia.lira", key, metrics.get("mia", {}).get("lira", {}), ref_metrics.get("mia", {}).get("lira"))
    for key, name in ORIGINAL_ROWS:
        add(name, "original", key, result.get("original", {}), (reference or {}).get("original"))
    console.print(table)
    lira = result.get("lira")
    if lira:
        console.print(
            f"LiRA {lira['mode']} ({lira['variance']} variance) over {lira['references']} reference models: "
            f"{len(lira['reused'])} reused from {lira['reference_dir']}, {len(lira['trained'])} trained"
            + (f". {lira['note']}" if lira.get("note") else ""),
            highlight=False,
        )
    if reference:
        keys = ", ".join(gap.get("avg_gap_keys", []))
        console.print(
            f"Avg. Gap to the reference: {_num(gap.get('avg_gap_pp'))} pp over {keys} (gaps: percentage points "
            f"for fractions, raw for feature distances)"
        )
    for gate in result.get("gates", []):
        mark = "[green]PASS[/]" if gate["passed"] else "[red]FAIL[/]"
        console.print(f"{mark} {gate['expr']}  (actual {_num(gate['actual'])})", highlight=False)


def _num(value: Any) -> str:
    """4 decimals; small non-zero values (feature distances) in scientific notation."""
    if value is None or value != value:
        return "-"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"
