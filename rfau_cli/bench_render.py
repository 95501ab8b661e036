"""The bench result as people read it: a markdown table, a rich table and a picture.

Rates (UA, RA, TA, MIA-efficacy) are shown in percent, the loss-attack AUC as a fraction, the
average gap to retrain in percentage points; each cell is "mean ± sample std over seeds"
(the std is left out with one seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (summary key, column title, short title for the terminal, how to format)
COLUMNS = (
    ("ua", "UA (%)", "UA %", "pct"),
    ("ra", "RA (%)", "RA %", "pct"),
    ("ta", "TA (%)", "TA %", "pct"),
    ("mia_efficacy", "MIA-efficacy (%)", "MIA %", "pct"),
    ("loss_auc", "loss-attack AUC", "loss AUC", "auc"),
    ("avg_gap_pp", "avg gap to retrain (pp)", "gap pp", "pp"),
    ("time_s", "time (s)", "time s", "sec"),
    ("peak_memory_mib", "peak memory (MiB)", "MiB", "int"),
    ("trainable_parameters", "trainable params", "params", "int"),
)
HEADER = ("method", *(c[1] for c in COLUMNS))
SHORT_HEADER = ("method", *(c[2] for c in COLUMNS))


def _cell(stat: dict[str, Any], kind: str) -> str:
    mean, std = stat.get("mean"), stat.get("std")
    if mean is None:
        return "-"
    scale, digits = {"pct": (100, 2), "pp": (1, 2), "auc": (1, 3), "sec": (1, 1), "int": (1, 0)}[kind]
    if kind == "int":
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std else "")
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def table_rows(result: dict[str, Any], short: bool = False) -> list[list[str]]:
    """One row of strings a method (the reference first), in HEADER order."""
    rows = []
    for row in result["summary"]:
        name = row["method"] + (" (reference)" if row["method"] == "retrain" else "")
        if row["status"] == "failed":
            rows.append([name, "failed" if short else f"failed: {row['errors'][0] if row['errors'] else ''}"] + [""] * (len(COLUMNS) - 1))
            continue
        if row["status"] == "partial":
            name += f" ({row['seeds_ok']}/{row['seeds']} seeds)"
        rows.append([name, *(_cell(row[key], kind) for key, _, _, kind in COLUMNS)])
    return rows


def render_markdown(result: dict[str, Any]) -> str:
    """bench.md: a title line, the table, and the errors of failed runs."""
    seeds = ", ".join(map(str, result["seeds"]))
    ref = result["reference"]
    source = f"checkpoint {ref['path']}" if ref["source"] == "checkpoint" else "retrained on D_r for each seed"
    lines = [
        "# rfau bench",
        "",
        f"Seeds: {seeds}. Reference: {source}. Cells: mean ± std over seeds. "
        "Avg gap: mean |method - reference| over UA, RA, TA, MIA-efficacy, in percentage points. "
        "Time: setup + fit of the run.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(result)]
    failures = [f"- {r['method']} seed {r['seed']}: {r['error']}" for r in result["runs"] if r["status"] != "ok"]
    if failures:
        lines += ["", "Failed runs:", "", *failures]
    return "\n".join(lines) + "\n"


def print_bench_table(result: dict[str, Any], out_dir: Path) -> None:
    """The same table on stdout (rich), and where the files are."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rfau bench: seeds {', '.join(map(str, result['seeds']))}")
    for i, title in enumerate(SHORT_HEADER):
        table.add_column(title, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in table_rows(result, short=True):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped or captured: no terminal width to fit, keep the table whole
        console = Console(width=160)
    console.print(table)
    for run in result["runs"]:
        if run["status"] != "ok":
            console.print(f"[red]failed[/]: {run['method']} seed {run['seed']}: {run['error']}", highlight=False)
    console.print(f"wall time {result['wall_time_s']:.1f}s; wrote {', '.join(str(Path(out_dir) / f) for f in result['files'])}")


def render_plot(result: dict[str, Any], path: Path) -> None:
    """bench.png: average gap to retrain against time, one point a method, error bars over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    times = []
    for row in result["summary"]:
        t, gap = row["time_s"], row["avg_gap_pp"]
        if t["mean"] is None or gap["mean"] is None:
            continue
        is_ref = row["method"] == "retrain"
        ax.errorbar(
            t["mean"], gap["mean"], xerr=t["std"] or 0.0, yerr=gap["std"] or 0.0,
            fmt="*" if is_ref else "o", markersize=11 if is_ref else 7, capsize=3,
        )
        ax.annotate(row["method"], (t["mean"], gap["mean"]), textcoords="offset points", xytext=(6, 5), fontsize=9)
        times.append(t["mean"])
    if times and min(times) > 0 and max(times) / min(times) > 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
    ax.set_xlabel("time: setup + fit (s)")
    ax.set_ylabel("average gap to retrain (pp)")
    ax.set_title(f"rfau bench ({len(result['seeds'])} seed{'s' if len(result['seeds']) > 1 else ''})")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
