"""RFAU's fit against the retrain it replaces, on one model, measured alternately in one run.

    .venv/bin/python benchmarks/fit_cost.py --model M --data TRAIN --test-data TEST \\
        --forget ids.txt --out fitcost/ [--rounds 3] [--extra '--rank 4']

Each round runs `rfau unlearn` (RFAU, defaults plus `--extra`) and `rfau retrain` (the
original's recipe: its defaults) through the real CLI in fresh processes (`scale.run_cli`:
wall time, and the CPU time of each phase, which the neighbours of a shared machine inflate
far less). Rounds alternate so that both commands meet the same load. Then, in this process,
the fit throughput of one RFAU step against a plain cross-entropy step on the same model and
batches (`scale.throughput`). Prints a table; writes OUT/fit_cost.json.

For the scenarios' well-fitted ResNet (issue 8's "10% of the digits" target), after
`benchmarks/scenarios.py` built its inputs under CACHE:

    .venv/bin/python benchmarks/fit_cost.py --model CACHE/models/resnet-fit \\
        --data CACHE/data/digits-x3/train --test-data CACHE/data/digits-x3/test \\
        --forget CACHE/forget/digits-x3-r10.txt --out fitcost/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scale import run_cli, throughput


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of the fit times, and the per-round ratios RFAU / retrain."""

    def fit(run: dict[str, Any], clock: str) -> float:
        return run["cpu_s"].get("fit", 0.0) if clock == "cpu" else run["timings_s"].get("fit", 0.0)

    out: dict[str, Any] = {}
    for clock in ("cpu", "wall"):
        ratios = [fit(r["unlearn"], clock) / max(fit(r["retrain"], clock), 1e-9) for r in rounds]
        out[clock] = {
            "unlearn_fit_s": round(float(np.median([fit(r["unlearn"], clock) for r in rounds])), 3),
            "retrain_fit_s": round(float(np.median([fit(r["retrain"], clock) for r in rounds])), 3),
            "ratios": [round(x, 3) for x in ratios],
            "ratio_median": round(float(np.median(ratios)), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the original checkpoint")
    parser.add_argument("--data", type=Path, required=True, help="its training data (saved dataset)")
    parser.add_argument("--test-data", type=Path, required=True, help="held-out data (saved dataset)")
    parser.add_argument("--forget", type=Path, required=True, help="forget list (row ids, one a line)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating unlearn/retrain rounds (default 3)")
    parser.add_argument("--extra", default="", help="extra flags for `rfau unlearn`, e.g. '--rank 4'")
    parser.add_argument("--steps", type=int, default=20, help="steps per throughput measurement (0: skip it)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating throughput measurements (median kept)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out} already exists")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    args.out.mkdir(parents=True)
    inputs = {"model": args.model, "data": args.data, "test": args.test_data, "forget": args.forget}
    rounds = [
        {
            "unlearn": run_cli("unlearn", inputs, args.out / f"unlearn{i}", args.extra.split()),
            "retrain": run_cli("retrain", inputs, args.out / f"retrain{i}", []),
        }
        for i in range(args.rounds)
    ]
    result: dict[str, Any] = {"benchmark": "fit-cost", "inputs": {k: str(v) for k, v in inputs.items()},
                              "extra": args.extra, "rounds": rounds, "summary": summarise(rounds)}
    if args.steps:
        result["throughput"] = throughput(inputs, args.steps, args.repeats)
    lines = [
        "| round | command | fit s | fit CPU s | steps | fit CPU ms/step | wall outside fit s | CPU outside fit s"
        " | forget acc | test acc | stop |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, pair in enumerate(rounds):
        for command, r in pair.items():
            cpu = r["cpu_s"]
            lines.append(
                f"| {i + 1} | {command} | {r['timings_s'].get('fit', 0):.2f} | {cpu.get('fit', 0):.2f} | {r['steps']}"
                f" | {1000 * cpu.get('fit', 0) / max(r['steps'], 1):.2f} | {r['outside_fit_s']:.2f}"
                f" | {cpu.get('process', 0) - cpu.get('fit', 0):.2f} | {r['forget_acc_after']:.4f}"
                f" | {r['test_acc_after']:.4f} | {r['stop_reason']} |"
            )
    s = result["summary"]
    lines += [
        "",
        f"RFAU fit / retrain training, CPU time: {s['cpu']['ratios']} (median {s['cpu']['ratio_median']});"
        f" wall time: {s['wall']['ratios']} (median {s['wall']['ratio_median']})",
    ]
    if args.steps:
        tp = result["throughput"]
        lines.append(
            f"fit throughput: RFAU {tp['rows_per_s']['rfau']} rows/s, plain cross-entropy"
            f" {tp['rows_per_s']['cross_entropy']} (ratio {tp['ratio']}), cross-entropy through the same adapter"
            f" {tp['rows_per_s']['cross_entropy_lora']} (RFAU / that: {tp['ratio_to_lora_cross_entropy']});"
            f" {tp['rows_per_step']} rows a step, {tp['clock']}"
        )
    text = "\n".join(lines)
    print(text)
    (args.out / "fit_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'fit_cost.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
