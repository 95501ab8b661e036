"""The bench result as people read it: a markdown table, a rich table and a picture.

Rates (UA, RA, TA, MIA-efficacy) are shown in percent, loss-attack AUCs as fractions, gaps in
percentage points and the share of the removable gap closed in percent; each cell is
"mean ± sample std over seeds" (no std with one seed). "n/a" marks what cannot be known from
this bench (the floor and the share closed need two references or more); "-" a number that
does not apply to the row or could not be computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rfau_cli.commands.bench import GAP_METRICS, NONE, REFERENCE

# (summary key, column title, short title for the terminal, how to format)
COLUMNS = (
    ("ua", "UA (%)", "UA %", "pct"),
    ("ra", "RA (%)", "RA %", "pct"),
    ("ta", "TA (%)", "TA %", "pct"),
    ("mia_efficacy", "MIA-efficacy (%)", "MIA %", "pct"),
    ("loss_auc", "loss-attack AUC", "loss AUC", "auc"),
    ("loss_auc_gap", "loss AUC gap", "AUC gap", "auc"),
    ("avg_gap_pp", "avg gap to retrain (pp)", "gap pp", "pp"),
    ("floor", "floor (pp)", "floor", "pp"),
    ("share_closed", "share closed (%)", "closed %", "share"),
    ("time_s", "time (s)", "time s", "sec"),
    ("peak_memory_mib", "peak memory (MiB)", "MiB", "int"),
    ("trainable_parameters", "trainable params", "params", "int"),
)
# Shown when the bench ran `--attacks ...,lira`, after the loss-attack columns.
LIRA_COLUMNS = (
    ("lira_auc", "LiRA AUC", "LiRA AUC", "auc"),
    ("lira_tpr", "LiRA TPR @ 1% FPR (%)", "LiRA TPR %", "pct"),
)
HEADER = ("method", *(c[1] for c in COLUMNS))
SHORT_HEADER = ("method", *(c[2] for c in COLUMNS))


def columns(result: dict[str, Any]) -> tuple[tuple[str, str, str, str], ...]:
    """The table's columns: COLUMNS, with LiRA's after the loss AUC gap when it ran."""
    if "lira" not in result.get("attacks", ()):
        return COLUMNS
    at = [c[0] for c in COLUMNS].index("loss_auc_gap") + 1
    return (*COLUMNS[:at], *LIRA_COLUMNS, *COLUMNS[at:])


def header(result: dict[str, Any], short: bool = False) -> tuple[str, ...]:
    return ("method", *(c[2 if short else 1] for c in columns(result)))
NOT_KNOWN = "n/a"


def _cell(stat: dict[str, Any] | None, kind: str, missing: str = "-") -> str:
    mean, std = (stat or {}).get("mean"), (stat or {}).get("std")
    if mean is None:
        return missing
    scale, digits = {"pct": (100, 2), "share": (100, 0), "pp": (1, 2), "auc": (1, 3), "sec": (1, 1), "int": (1, 0)}[
        kind
    ]
    if kind == "int":
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std else "")
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def _floor_known(result: dict[str, Any]) -> bool:
    return (result.get("floor") or {}).get("mean") is not None


def _row_cells(result: dict[str, Any], row: dict[str, Any]) -> list[str]:
    cells = []
    for key, _, _, kind in columns(result):
        if key == "floor":
            cells.append(_cell(result.get("floor"), kind, NOT_KNOWN))
        elif key == "share_closed" and row["method"] != REFERENCE:
            # n/a: not knowable from this bench (no floor, or nothing removable); '-' on the reference row
            cells.append(_cell(row.get(key), kind, NOT_KNOWN))
        else:
            cells.append(_cell(row.get(key), kind))
    return cells


def row_name(method: str) -> str:
    return {REFERENCE: "retrain (reference)", NONE: "none (original)"}.get(method, method)


def table_rows(result: dict[str, Any], short: bool = False) -> list[list[str]]:
    """One row of strings a method (the references and "none" first), in HEADER order."""
    rows = []
    for row in result["summary"]:
        name = row_name(row["method"])
        if row["status"] == "failed":
            rows.append(
                [name, "failed" if short else f"failed: {row['errors'][0] if row['errors'] else ''}"]
                + [""] * (len(columns(result)) - 1)
            )
            continue
        if row["status"] == "partial":
            name += f" ({row['seeds_ok']}/{row['seeds']} {'references' if row['method'] == REFERENCE else 'seeds'})"
        rows.append([name, *_row_cells(result, row)])
    return rows


def describe(result: dict[str, Any]) -> list[str]:
    """The lines above the table: what was compared with what, and the floor."""
    seeds = ", ".join(map(str, result["seeds"]))
    ref = result["reference"]
    labels = ref.get("labels") or ([ref["path"]] if ref.get("path") else [])
    if ref["source"] == "checkpoint":
        source = f"{len(labels)} checkpoint{'s' if len(labels) != 1 else ''} ({', '.join(labels)})"
    else:
        source = (f"retrained on D_r with seed{'s' if len(ref.get('seeds', [])) != 1 else ''} "
            f"{', '.join(map(str, ref.get('seeds', [])))}")
    floor = result.get("floor") or {}
    if _floor_known(result):
        removable = result.get("removable_gap_pp")
        floor_text = (
            f"Floor (mean avg gap between {floor['n']} pair{'s' if floor['n'] != 1 else ''} of references): "
            f"{_cell(floor, 'pp')} pp; doing nothing: {_cell(_none_gap(result), 'pp')} pp; removable gap: "
            + (f"{removable:.2f} pp." if removable is not None else "n/a.")
        )
        if removable is not None and removable <= 0:
            floor_text += " Doing nothing is already within the floor: share closed is n/a."
        elif removable is not None:
            floor_text += removable_parts_text(result.get("removable_by_metric_pp"))
    else:
        floor_text = ("Floor: n/a (one reference; give --reference-seeds 0,1,2 or several --reference for the "
            "floor and the share closed).")
    slope = slope_text(result)
    unseen = unseen_text(result)
    same_time = same_time_text(result)
    return [
        f"Method seeds: {seeds}. References: {source}. Every model audited on the same rows (audit seed "
        f"{result.get('audit_seed', '-')}).",
        "",
        floor_text,
        "",
        *([slope, ""] if slope else []),
        *([unseen, ""] if unseen else []),
        *([same_time, ""] if same_time else []),
        "Cells: mean ± std over method seeds. Avg gap: mean |method - reference| over UA, RA, TA, MIA-efficacy (pp), "
        "averaged over the references. Share closed: (gap of none - gap) / (gap of none - floor). "
        "Loss AUC gap: |loss-attack AUC - the references' mean|. Time: setup + fit of the run."
        + (_lira_text(result) if "lira" in result.get("attacks", ()) else ""),
    ]


# The avg gap's metrics that say how a model treats the forgotten rows, and those that say how
# it stands on the rows it keeps and on unseen rows.
FORGETTING_METRICS = ("ua", "mia_efficacy")
STANDING_METRICS = ("ra", "ta")


def removable_parts_text(parts: dict[str, float] | None) -> str:
    """Where the removable gap lies, metric by metric, and what that means for the share closed.

    A seed that came out weaker or stronger than its retrains carries an RA/TA gap that no
    unlearning of D_f should close; when that is all there is, a share closed measures how a
    method moved the model's standing, not what it forgot.
    """
    if not parts:
        return ""
    names = dict(PER_METRIC_COLUMNS)  # the per-metric table's titles: UA, RA, TA, MIA-efficacy
    listed = [k for k in (*FORGETTING_METRICS, *STANDING_METRICS) if k in parts]
    text = " Doing nothing's gap above the floor by metric: " + ", ".join(
        f"{names[k]} {parts[k]:+.2f}" for k in listed
    ) + " pp."
    forgetting = sum(max(0.0, parts[k]) for k in FORGETTING_METRICS if k in parts)
    standing = sum(max(0.0, parts[k]) for k in STANDING_METRICS if k in parts)
    if forgetting <= 0 < standing:
        text += (
            " Nothing about D_f is left to remove: the original treats the forgotten rows as its retrains"
            " do (UA and MIA-efficacy within the floor), and its gap is its standing on kept and unseen rows"
            " (RA, TA), which forgetting does not restore. The share closed does not measure forgetting here."
        )
    elif standing > forgetting:
        text += (
            " Most of it is the original's standing on kept and unseen rows (RA, TA), not the forgotten rows"
            " (UA, MIA-efficacy): read the share closed with the per-metric table."
        )
    return text


def slope_text(result: dict[str, Any]) -> str | None:
    """The class slope the references show, when the request takes much of a class."""
    from rfau_cli.class_slope import describe_slopes

    block = result.get("class_slope") or {}
    return describe_slopes(block.get("classes") or [], block.get("rfau_used"))


def unseen_text(result: dict[str, Any]) -> str | None:
    """The original's draw against its references' on unseen rows (peer_margins.py)."""
    from rfau_cli.methods.peer_margins import describe_unseen

    return describe_unseen(result.get("unseen_rows"))


def same_time_text(result: dict[str, Any]) -> str | None:
    """What --same-time-as gave each method: its epochs at the anchor's time, or why none."""
    plan = result.get("same_time")
    if not plan:
        return None
    anchor = plan["anchor"]
    if plan.get("target_s") is None:
        return f"Same time as {anchor}: not run ({anchor} has no successful run to take the time of)."
    given, left_out = [], []
    for name, entry in plan["methods"].items():
        if entry.get("epochs") is None:
            left_out.append(f"{name} ({entry.get('reason', 'no plan')})")
            continue
        default = entry.get("default_epochs_run")
        given.append(
            f"{name} {entry['epochs']} epoch{'s' if entry['epochs'] != 1 else ''}"
            + (f" ({default:g} at its defaults, {entry['per_epoch_s']:.2f} s an epoch)" if default is not None else "")
        )
    text = (
        f"Same time as {anchor} ({plan['target_s']:.1f} s a run, its mean over seeds): rows "
        f"'NAME@{anchor}-time' rerun each method with the epochs that fit in that time: "
        + ("; ".join(given) if given else "none")
        + "."
    )
    return text + (f" Left out: {'; '.join(left_out)}." if left_out else "")


def _lira_text(result: dict[str, Any]) -> str:
    info = result.get("lira") or {}
    return (
        f" LiRA ({info.get('mode', '-')}, {info.get('references', '-')} reference models, "
        f"{len(info.get('reused', []))} reused): AUC and TPR at 1% FPR of D_f against the test rows; "
        "a retrained model sits near 1%."
    )


def _none_gap(result: dict[str, Any]) -> dict[str, Any] | None:
    return (result.get("none") or {}).get("avg_gap_pp")


def render_markdown(result: dict[str, Any]) -> str:
    """bench.md: a title line, the floor, the table, and the errors of failed runs."""
    lines = [
        "# rfau bench",
        "",
        *describe(result),
        "",
        "| " + " | ".join(header(result)) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns(result))) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(result)]
    lines += per_metric_lines(result)
    lines += class_group_lines(result)
    failures = [f"- {_who(r)}: {r['error']}" for r in result["runs"] if r["status"] != "ok"]
    if failures:
        lines += ["", "Failed runs:", "", *failures]
    return "\n".join(lines) + "\n"


# The avg gap's metrics (bench.GAP_METRICS), titled as in the main table without its unit.
PER_METRIC_COLUMNS = tuple((key, title.removesuffix(" (%)")) for key, title, _, _ in COLUMNS if key in GAP_METRICS)


def per_metric_lines(result: dict[str, Any]) -> list[str]:
    """bench.md's second table: the avg gap split into its four metrics, the floor's first, so a
    method's shortfall can be told from noise metric by metric (none with fewer than two
    references: there is no floor to read them against)."""
    if not _floor_known(result):
        return []
    lines = [
        "",
        "Gap to the references per metric (pp; mean ± std over method seeds, over references for none, over "
        "pairs of references for the floor). A method at the floor on a metric is as close there as another retrain.",
        "",
        "| " + " | ".join(["method", *(title for _, title in PER_METRIC_COLUMNS)]) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(PER_METRIC_COLUMNS)) + "|",
    ]
    for row in result["summary"]:
        gaps = row.get("per_metric_gap_pp")
        if row["status"] == "failed" or not gaps:
            continue
        name = "floor (between references)" if row["method"] == REFERENCE else row_name(row["method"])
        lines.append("| " + " | ".join([name, *(_cell(gaps.get(key), "pp") for key, _ in PER_METRIC_COLUMNS)]) + " |")
    return lines


def class_group_lines(result: dict[str, Any]) -> list[str]:
    """bench.md's table for a request that takes much of some classes: each model's test accuracy
    on those classes' rows and on the others', against the original's. A retrain learns those
    classes worse, so TA read whole mixes that expected loss with harm to the rest."""
    rows = [
        r for r in result["summary"]
        if r["status"] != "failed" and (r.get("ta_concentrated") or {}).get("mean") is not None
    ]
    if not rows:
        return []
    names = [c.get("name", str(c["class"])) for c in (result.get("class_slope") or {}).get("classes", [])]
    which = f" ({', '.join(names)})" if names else ""
    base = next((r for r in rows if r["method"] == NONE), None)

    def cell(row: dict[str, Any], key: str) -> str:
        text = _cell(row.get(key), "pct")
        if base is not None and row is not base and (base.get(key) or {}).get("mean") is not None:
            text += f" ({100 * (row[key]['mean'] - base[key]['mean']):+.2f})"
        return text

    return [
        "",
        f"Test accuracy on the classes the request takes 30% or more of{which} and on the other classes "
        "(%; in brackets the change from the original, pp). A model retrained without the rows learns those "
        "classes worse: their rows carry the expected loss, the others any harm done.",
        "",
        "| method | TA, those classes (%) | TA, other classes (%) |",
        "|---|---:|---:|",
        *(f"| {row_name(r['method'])} | {cell(r, 'ta_concentrated')} | {cell(r, 'ta_others')} |" for r in rows),
    ]


def _who(run: dict[str, Any]) -> str:
    if run.get("seed") is None:
        return f"{run['method']} {run.get('label', '')}".strip()
    return f"{run['method']} seed {run['seed']}"


def print_bench_table(result: dict[str, Any], out_dir: Path) -> None:
    """The same table on stdout (rich), and where the files are."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rfau bench: seeds {', '.join(map(str, result['seeds']))}")
    for i, title in enumerate(header(result, short=True)):
        table.add_column(title, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in table_rows(result, short=True):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped or captured: no terminal width to fit, keep the table whole
        console = Console(width=180)
    console.print(table)
    console.print(describe(result)[2], highlight=False)
    for line in (slope_text(result), unseen_text(result), same_time_text(result)):
        if line:
            console.print(line, highlight=False)
    for run in result["runs"]:
        if run["status"] != "ok":
            console.print(f"[red]failed[/]: {_who(run)}: {run['error']}", highlight=False)
    console.print(
        f"wall time {result['wall_time_s']:.1f}s; wrote {', '.join(str(Path(out_dir) / f) for f in result['files'])}"
    )


def render_plot(result: dict[str, Any], path: Path) -> None:
    """bench.png: left, each method's share of the removable gap closed (error bars over seeds;
    100% is the floor, 0% doing nothing); right, the avg gap with the floor and "none" as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["summary"] if r["method"] not in (REFERENCE, NONE) and r["status"] != "failed"]
    names = [r["method"] for r in rows]
    x = list(range(len(rows)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8.0, 1.1 * len(rows) + 4.5), 4.4), dpi=120)

    shares = [r["share_closed"] for r in rows]
    if _floor_known(result) and any(s["mean"] is not None for s in shares):
        left.bar(
            x,
            [100 * (s["mean"] or 0.0) for s in shares],
            yerr=[100 * (s["std"] or 0.0) for s in shares],
            width=0.6,
            capsize=3,
            color="tab:blue",
            alpha=0.8,
        )
        left.axhline(100, color="tab:green", linestyle="--", label="floor (as close as another retrain)")
        left.axhline(0, color="tab:red", linestyle=":", label="none (doing nothing)")
        left.legend(fontsize=8, loc="best")
    else:
        left.text(
            0.5,
            0.5,
            "floor n/a: one reference\n(--reference-seeds 0,1,2)",
            ha="center",
            va="center",
            transform=left.transAxes,
        )
    left.set_ylabel("share of the removable gap closed (%)")
    left.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    left.grid(True, axis="y", alpha=0.3)

    gaps = [r["avg_gap_pp"] for r in rows]
    right.bar(
        x,
        [g["mean"] or 0.0 for g in gaps],
        yerr=[g["std"] or 0.0 for g in gaps],
        width=0.6,
        capsize=3,
        color="tab:gray",
        alpha=0.8,
    )
    floor = result.get("floor") or {}
    if floor.get("mean") is not None:
        right.axhline(floor["mean"], color="tab:green", linestyle="--", label=f"floor {floor['mean']:.2f} pp")
        if floor.get("std"):
            right.axhspan(floor["mean"] - floor["std"], floor["mean"] + floor["std"], color="tab:green", alpha=0.15)
    none = _none_gap(result) or {}
    if none.get("mean") is not None:
        right.axhline(none["mean"], color="tab:red", linestyle=":", label=f"none {none['mean']:.2f} pp")
    if floor.get("mean") is not None or none.get("mean") is not None:
        right.legend(fontsize=8)
    right.set_ylabel("average gap to the references (pp)")
    right.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    right.grid(True, axis="y", alpha=0.3)
    n = len(result["seeds"])
    fig.suptitle(
        f"rfau bench ({n} seed{'s' if n > 1 else ''}, {len(result['reference'].get('labels') or [1])} reference(s))"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
