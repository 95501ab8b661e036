"""Digits image bench: class and 10% sample forgetting on a tiny ResNet, methods vs retrain.

    .venv/bin/python examples/bench_digits.py [--out runs/digits-bench] [--methods rfau,finetune]

Builds scikit-learn's digits as `datasets` folders, trains a ~20k-parameter ResNet on them
(the "original" model), then runs the two `rfau` commands a user would run:

    rfau bench --by class  --forget class.txt  ...   # forget digit 3
    rfau bench --by sample --forget sample.txt ...   # forget a random 10% of the rows

Each bench retrains the reference on D_r with the original's own recipe (30 epochs: a
reference trained differently from the original would measure the recipe, not the forgetting)
and compares every method to it; read OUT/class/bench.md and OUT/sample/bench.md, or look at the bench.png pictures.
Runs on CPU in a few minutes (for the benchmark of record see benchmarks/bench_digits.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/digits-bench"))
    parser.add_argument("--methods", default="rfau,finetune", help="comma list; see `rfau methods`")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; pass another --out")

    import datasets

    from rfau_cli import toy

    train, test = toy.digits_datasets(args.out / "data")
    model = toy.train_digits_model("resnet", train, args.out / "resnet")
    n = len(datasets.load_from_disk(str(train)))
    rows = np.sort(np.random.default_rng(0).choice(n, n // 10, replace=False))
    (args.out / "class.txt").write_text("3\n")
    (args.out / "sample.txt").write_text("\n".join(map(str, rows)) + "\n")

    for by in ("class", "sample"):
        cmd = [
            sys.executable, "-m", "rfau_cli", "bench", "--model", str(model), "--data", str(train),
            "--test-data", str(test), "--forget", str(args.out / f"{by}.txt"), "--by", by,
            "--methods", args.methods, "--out", str(args.out / by),
        ]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
