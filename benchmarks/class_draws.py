"""Class mode over several draws of the tests' models: does "the class is gone, the other classes
within 2 points" hold for every seed of the recipe, not only the suite's?

    .venv/bin/python benchmarks/class_draws.py --out draws/ --seeds 0,1,2,3,4,5 \\
        --variant "gamma 0.5=--gamma 0.5" --variant "taps head=--taps head"

For each seed: the tests' digits ResNet and ViT (`toy.train_digits_model`, the ViT 60 epochs; seed
0 is the suite's fixture), digit 3 forgotten by `rfau unlearn --by class` (the real CLI, one
thread) with the defaults and with each `--variant "NAME=FLAGS"`; with `--retrain`, `rfau
retrain --by class` of the same request (the original's recipe without the class: what RFAU
stands in for; the ViT with its 60 epochs); and, with `--two-requests`, the ResNet's second
request (digit 5 from the first output) against the original's accuracy on the classes both
requests kept. Prints the other classes' test accuracy change per seed, the
mean and the worst; writes OUT/class_draws.json. Models and runs are kept under OUT and reused.
docs/results.md, "Class mode over six draws of the tests' models", has the table it printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ARCHS = {"resnet": 30, "vit": 60}  # training epochs, as tests/conftest.py
FIRST, SECOND = 3, 5  # the suite's class, and the ledger test's second request


def cli(*args: object) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "rfau_cli", *map(str, args), "--json", "-q"], env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"rfau {' '.join(map(str, args[:1]))} failed: {run.stderr.strip()[-1500:]}")
    return json.loads(run.stdout)


def class_run(out: Path, model: Path, forget: Path, data: tuple[Path, Path], flags: list[str],
              command: str = "unlearn") -> dict[str, Any]:
    if (out / "report.json").exists():
        return json.loads((out / "report.json").read_text())
    return cli(command, "--model", model, "--data", data[0], "--test-data", data[1], "--forget", forget,
               "--by", "class", "--out", out, *flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--variant", action="append", default=[], help='"NAME=FLAGS" for rfau unlearn; repeatable')
    parser.add_argument("--two-requests", action="store_true", help="also the ResNet's second request (digit 5, or 3)")
    parser.add_argument("--retrain", action="store_true", help="also rfau retrain --by class of each model's request")
    parser.add_argument("--forget-class", type=int, default=FIRST, help=f"the class to forget (default {FIRST})")
    args = parser.parse_args()
    import torch

    from rfau_cli import toy

    torch.set_num_threads(1)
    variants: dict[str, list[str]] = {"defaults": []}
    for text in args.variant:
        name, _, flags = text.partition("=")
        variants[name.strip()] = shlex.split(flags)
    seeds = [int(s) for s in args.seeds.split(",")]
    root = args.out
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "digits" / "train").exists():
        toy.digits_datasets(root / "digits")
    data = (root / "digits" / "train", root / "digits" / "test")
    lists = {}
    first = args.forget_class
    second = SECOND if first != SECOND else FIRST
    tag = "" if first == FIRST else f"-c{first}"  # runs of another class kept apart
    for name, classes in (("first", [first]), ("second", [second]), ("both", [first, second])):
        lists[name] = root / f"{name}{tag}.txt"
        lists[name].write_text("".join(f"{c}\n" for c in classes))

    results: dict[str, Any] = {"seeds": seeds, "variants": {k: " ".join(v) for k, v in variants.items()}, "runs": []}
    for seed in seeds:
        for arch, epochs in ARCHS.items():
            model = root / f"s{seed}" / arch
            if not model.exists():
                toy.train_digits_model(arch, data[0], model, epochs=epochs, seed=seed)
            runs = dict(variants)
            if args.retrain:
                runs["retrain"] = ["--epochs", str(epochs)]
            for name, flags in runs.items():
                out = root / f"s{seed}" / f"{arch}-{name.replace(' ', '_')}{tag}"
                command = "retrain" if name == "retrain" and args.retrain else "unlearn"
                report = class_run(out, model, lists["first"], data, flags, command)
                before, after = report["metrics"]["before"], report["metrics"]["after"]
                results["runs"].append({
                    "seed": seed, "arch": arch, "variant": name, "forget_acc": after["forget"]["acc"],
                    "test_forget_acc": after["test_forget"]["acc"],
                    "kept_change_pp": 100 * (after["test_retain"]["acc"] - before["test_retain"]["acc"]),
                    "steps": report["training"]["steps"], "fit_s": report["timings_s"]["fit"],
                })
                if args.two_requests and arch == "resnet" and name == "defaults":
                    again = class_run(root / f"s{seed}" / f"resnet-second{tag}", out, lists["second"], data, [])
                    original = cli("audit", "--model", model, "--data", data[0], "--test-data", data[1], "--forget",
                                   lists["both"], "--by", "class")
                    last, kept_before = again["metrics"]["after"], original["metrics"]["test_retain"]["acc"]
                    results["runs"].append({
                        "seed": seed, "arch": arch, "variant": "two requests", "forget_acc": last["forget_all"]["acc"],
                        "test_forget_acc": last["test_forget"]["acc"],
                        "kept_change_pp": 100 * (last["test_retain"]["acc"] - kept_before),
                        "steps": again["training"]["steps"], "fit_s": again["timings_s"]["fit"],
                    })
            print(f"seed {seed} {arch}: done", file=sys.stderr, flush=True)

    print(f"{'variant':<16} {'model':<7} {'other classes, pp by seed':<44} {'mean':>6} {'worst':>6} "
          f"{'D_f max':>7} {'test rows':>9}")
    for name in [*variants, "retrain", "two requests"]:
        for arch in ARCHS:
            runs = [r for r in results["runs"] if r["variant"] == name and r["arch"] == arch]
            if not runs:
                continue
            kept = np.array([r["kept_change_pp"] for r in runs])
            print(f"{name:<16} {arch:<7} {' '.join(f'{v:+.2f}' for v in kept):<44} {kept.mean():>+6.2f} "
                  f"{kept.min():>+6.2f} {max(r['forget_acc'] for r in runs):>7.3f} "
                  f"{np.mean([r['test_forget_acc'] for r in runs]):>9.3f}")
    (root / "class_draws.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
