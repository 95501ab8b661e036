"""Human-readable tables of results (rich), for stdout when `--json` is not given."""

from __future__ import annotations

from typing import Any

ROWS = (("forget", "D_f"), ("retain", "D_r"), ("test", "test"), ("test_forget", "test, forgotten classes"), ("test_retain", "test, kept classes"))


def _fmt(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def print_unlearn_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    before, after = report["metrics"]["before"], report["metrics"]["after"]
    table = Table(title=f"rfau {report['method']}: forgot {report['forget_count']} rows ({report['forget_by']})")
    for col in ("split", "acc before", "acc after", "conf before", "conf after"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for key, label in ROWS:
        if key in after:
            table.add_row(label, _fmt(before[key]["acc"]), _fmt(after[key]["acc"]), _fmt(before[key]["conf"]), _fmt(after[key]["conf"]))
    mia_b, mia_a = before.get("mia", {}), after.get("mia", {})
    for key, label in (("efficacy", "MIA-efficacy (SVC conf.)"), ("loss_auc", "loss-attack AUC")):
        if key in mia_a:
            table.add_row(label, _fmt(mia_b.get(key)), _fmt(mia_a.get(key)), "", "")
    console = Console()
    console.print(table)
    original = report["metrics"].get("original", {})
    if "retain_feature_distance" in original:
        console.print(f"retain feature distance to the original: {original['retain_feature_distance']:.2e}")
    console.print(f"wall time {report['timings_s']['total']:.1f}s; outputs: {', '.join(sorted(report['outputs']['sha256']))}")
