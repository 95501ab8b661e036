"""The benchmark of record: every registered method vs retrain on the digits ResNet.

    .venv/bin/python benchmarks/bench_digits.py --out bench-digits/ [--seeds 0,1,2] [--methods rfau,finetune]

Three settings, each one `rfau bench` run (the real CLI, in a subprocess): forgetting class 3,
forgetting a seeded random 10% of the training rows, and `memorised`: forgetting 10% of the
rows of a model that memorised its data (300 training rows, 150 epochs: loss-attack AUC 0.72
on D_f, where the full-data model is at ~0.5 and sample forgetting has nothing to remove). The
reference is retrained from scratch on D_r for every seed with the original's own recipe. Prints one table
(the avg gap to retrain is the ranking number) and writes `OUT/bench_digits.json`, plus each
setting's bench.json/.md/.png under `OUT/class` and `OUT/sample`.

Data and the original model are built under `--cache` (default OUT/inputs) when missing, so a
rerun with the same cache skips the 30-epoch training. Measured on 2 idle CPU cores: the class
setting with all 11 registered methods and 3 seeds took 75 s, so both settings fit in a few
minutes (plus about a minute to train the original once); a machine shared with other jobs
was 10-30x slower.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FORGET_CLASS = 3
SAMPLE_FRACTION = 0.10


def prepare(cache: Path) -> tuple[Path, Path, Path, dict[str, Path]]:
    """Digits train/test, the original ResNet, and the two forget lists (built once)."""
    import datasets

    from rfau_cli import toy

    cache.mkdir(parents=True, exist_ok=True)
    train, test = cache / "digits" / "train", cache / "digits" / "test"
    if not train.exists():
        toy.digits_datasets(cache / "digits")
    model = cache / "resnet"
    if not (model / "model.safetensors").exists():
        toy.train_digits_model("resnet", train, model)
    n = len(datasets.load_from_disk(str(train)))
    rows = np.sort(np.random.default_rng(0).choice(n, int(n * SAMPLE_FRACTION), replace=False))
    forget = {"class": cache / "class.txt", "sample": cache / "sample.txt"}
    forget["class"].write_text(f"# forget digit {FORGET_CLASS}\n{FORGET_CLASS}\n")
    forget["sample"].write_text("\n".join(map(str, rows)) + "\n")
    return train, test, model, forget


MEMORISED_ROWS, MEMORISED_EPOCHS = 300, 150


def prepare_memorised(cache: Path, train: Path) -> tuple[Path, Path, Path]:
    """A 300-row subset of the training data, a model over-fitted on it, and 10% of it to forget."""
    import datasets

    from rfau_cli import toy

    root = cache / "memorised"
    subset, model, forget = root / "train", root / "resnet", root / "sample.txt"
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(datasets.load_from_disk(str(train))), MEMORISED_ROWS, replace=False))
    if not subset.exists():
        datasets.load_from_disk(str(train)).select(rows.tolist()).save_to_disk(str(subset))
    if not (model / "model.safetensors").exists():
        toy.train_digits_model("resnet", subset, model, epochs=MEMORISED_EPOCHS)
    drop = np.sort(rng.choice(MEMORISED_ROWS, MEMORISED_ROWS // 10, replace=False))
    forget.write_text("\n".join(map(str, drop)) + "\n")
    return subset, model, forget


def run_setting(name: str, by: str, args: argparse.Namespace, train: Path, test: Path, model: Path, forget: Path,
                retrain_epochs: int | None) -> dict:
    out = args.out / name
    cmd = [
        sys.executable, "-m", "rfau_cli", "bench", "--model", str(model), "--data", str(train), "--forget", str(forget),
        "--by", by, "--test-data", str(test), "--seeds", args.seeds, "--out", str(out), "--quiet",
    ]
    if args.methods:
        cmd += ["--methods", args.methods]
    if args.retrain_epochs or retrain_epochs:
        cmd += ["--retrain-epochs", str(args.retrain_epochs or retrain_epochs)]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return json.loads((out / "bench.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
    parser.add_argument("--methods", default="", help="comma list (default: every registered method)")
    parser.add_argument("--settings", default="class,sample,memorised", help="comma list of class, sample, memorised")
    parser.add_argument("--retrain-epochs", type=int, default=None, help="reference epochs (default: retrain's 30)")
    parser.add_argument("--cache", type=Path, default=None, help="where data and the original model are kept")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out} already exists")
    args.out.mkdir(parents=True)
    started = time.perf_counter()
    train, test, model, forget = prepare(args.cache or args.out / "inputs")
    from rfau_cli.commands.bench_render import HEADER, table_rows

    settings = {
        "class": ("class", train, model, forget["class"], None, f"class {FORGET_CLASS}"),
        "sample": ("sample", train, model, forget["sample"], None, "10% of rows"),
    }
    if "memorised" in args.settings:
        subset, memorised, memorised_forget = prepare_memorised(args.cache or args.out / "inputs", train)
        settings["memorised"] = ("sample", subset, memorised, memorised_forget, MEMORISED_EPOCHS,
                                 f"10% of the {MEMORISED_ROWS} rows of a model that memorised them")
    results, titles = {}, {}
    for name in args.settings.split(","):
        by, data, ckpt, ids, epochs, titles[name] = settings[name]
        results[name] = run_setting(name, by, args, data, test, ckpt, ids, epochs)
    lines = []
    for by, result in results.items():
        lines += [f"\n## {by}: {titles[by]}", ""]
        lines += ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    text = "\n".join(lines)
    print(text)
    record = {
        "benchmark": "digits-resnet",
        "seeds": args.seeds,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "settings": {
            by: {"summary": r["summary"], "runs": r["runs"], "versions": r["versions"]} for by, r in results.items()
        },
    }
    (args.out / "bench_digits.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "bench_digits.md").write_text(text.lstrip() + "\n")
    print(f"\nwrote {args.out / 'bench_digits.json'} in {record['wall_time_s']}s", file=sys.stderr)


if __name__ == "__main__":
    main()
