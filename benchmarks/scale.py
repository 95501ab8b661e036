"""How the cost of `rfau unlearn` and of `rfau retrain` grows with |D| at a fixed |D_f|.

    .venv/bin/python benchmarks/scale.py --out scale/ [--sizes 2000,8000,32000] [--forget 100]

Digits are grown with `toy.grown_digits_datasets` (seeded variants of each of the 1,348
training images; the first |D| rows of its shuffled table), or, without it, with shifted
copies (each 8x8 image moved by up to 2 pixels: 25 variants, 33,700 rows at most); the test
set is the 449 original test images. For each size an original ResNet is trained with the toy recipe
(30 epochs, lr 3e-3, batch 64), then the real CLI runs in a subprocess:

- `rfau unlearn` (RFAU, defaults) forgetting a seeded random `--forget` rows;
- `rfau retrain` from scratch with the original's recipe (its defaults are that recipe).

For both it reads the report's wall time per phase and peak memory, and prints one table;
the |D| at which unlearning becomes cheaper than retraining (total wall time, and fit vs
training time) is interpolated on a log scale. It also measures, in this process, the fit
throughput of RFAU (rows/s of one step: 1 forget + k retain batches, teacher from the cache)
against a plain cross-entropy step on the same model and the same 1 + k batches. Writes
`OUT/scale.json` and `OUT/scale.png` (time against |D|).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_SHIFT = 2
DIGITS_TRAIN_ROWS = 1348  # training images of digits after toy's 25% test split


def shifts(max_shift: int = MAX_SHIFT) -> list[tuple[int, int]]:
    """(dy, dx) pairs, smallest moves first, so a small grown set is mostly original images."""
    pairs = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    return sorted(pairs, key=lambda p: (abs(p[0]) + abs(p[1]), p))


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved by (dy, dx) pixels; what moves in is black (0), as around a digit."""
    out = np.zeros_like(image)
    h, w = image.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = image[ys, xs]
    return out


def grown_digits(train_dir: Path, out: Path, rows: int) -> Path:
    """A `rows`-row digits training set: the original images, then shifted copies of them."""
    import datasets
    from PIL import Image

    if out.exists():
        return out
    table = datasets.load_from_disk(str(train_dir))
    images = [np.asarray(im, dtype=np.uint8) for im in table["image"]]
    labels = list(table["label"])
    variants = shifts()
    if rows > len(images) * len(variants):
        raise SystemExit(f"--sizes: at most {len(images) * len(variants)} rows can be grown from digits")
    new_images, new_labels = [], []
    for dy, dx in variants:
        for image, label in zip(images, labels):
            if len(new_labels) == rows:
                break
            new_images.append(Image.fromarray(shift_image(image, dy, dx), mode="L"))
            new_labels.append(label)
    grown = datasets.Dataset.from_dict({"image": new_images, "label": new_labels}, features=table.features)
    grown.save_to_disk(str(out))
    return out


def grown_train(cache: Path, rows: int) -> tuple[Path, Path]:
    """(train, test) with `rows` training rows. Uses `toy.grown_digits_datasets` (seeded
    variants of every training image; the test side is the 449 original test images) when
    the package has it, else the shifted copies of `grown_digits`."""
    from rfau_cli import toy

    if not hasattr(toy, "grown_digits_datasets"):
        if not (cache / "digits" / "train").exists():
            toy.digits_datasets(cache / "digits")
        return grown_digits(cache / "digits" / "train", cache / f"train{rows}", rows), cache / "digits" / "test"
    import datasets

    copies = -(-rows // DIGITS_TRAIN_ROWS)
    base = cache / f"grown_x{copies}"
    if not (base / "train").exists():
        toy.grown_digits_datasets(base, copies=copies, test_copies=1)
    out = cache / f"train{rows}"
    if not out.exists():
        datasets.load_from_disk(str(base / "train")).select(range(rows)).save_to_disk(str(out))  # rows are shuffled
    return out, base / "test"


def prepare(cache: Path, sizes: list[int], forget: int) -> dict[int, dict[str, Path]]:
    """Per size: the grown data, an original ResNet trained on it, and a forget list (kept)."""
    from rfau_cli import toy

    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for n in sizes:
        data, test = grown_train(cache, n)
        model = cache / f"resnet{n}"
        if not (model / "model.safetensors").exists():
            print(f"training the original ResNet on {n} rows", file=sys.stderr, flush=True)
            toy.train_digits_model("resnet", data, model)
        ids = cache / f"forget{n}_{forget}.txt"
        rows = np.sort(np.random.default_rng(0).choice(n, forget, replace=False))
        ids.write_text("\n".join(map(str, rows)) + "\n")
        out[n] = {"data": data, "model": model, "forget": ids, "test": test}
    return out


# `python -m rfau_cli ARGS`, plus the CPU seconds of each phase and of the whole process on
# stderr: on a shared machine the wall time mostly measures the neighbours.
CPU_WRAPPER = """
import contextlib, json, sys, time
cpu0 = time.process_time()
from rfau_cli import progress
phase, cpu = progress.Progress.phase, {}
@contextlib.contextmanager
def timed(self, name):
    start = time.process_time()
    with phase(self, name):
        yield
    cpu[name] = cpu.get(name, 0.0) + time.process_time() - start
progress.Progress.phase = timed
from rfau_cli.cli import main
try:
    main()
finally:
    cpu["process"] = time.process_time() - cpu0
    sys.stderr.write("RFAU_CPU_S " + json.dumps(cpu) + chr(10))
"""


def run_cli(command: str, inputs: dict[str, Path], out: Path, extra: list[str]) -> dict[str, Any]:
    """One `rfau unlearn|retrain` in a fresh process: its report, the process's wall time and
    the CPU time of each phase."""
    cmd = [
        sys.executable, "-c", CPU_WRAPPER, command, "--model", str(inputs["model"]), "--data", str(inputs["data"]),
        "--test-data", str(inputs["test"]), "--forget", str(inputs["forget"]), "--out", str(out), "--quiet", "--json",
        *extra,
    ]
    print("$ rfau", " ".join(cmd[3:]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    report = json.loads(done.stdout)
    timings = report["timings_s"]
    cpu_lines = (line for line in done.stderr.splitlines() if line.startswith("RFAU_CPU_S "))
    cpu = next((json.loads(line.split(" ", 1)[1]) for line in cpu_lines), {})
    return {
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "wall_s": round(wall, 3),
        "timings_s": timings,
        "outside_fit_s": round(wall - timings.get("fit", 0.0), 3),
        "peak_rss_mib": round(report["peak_memory_mib"]["cpu_rss_mib"], 1),
        "steps": report["training"]["steps"],
        "epochs_run": report["training"].get("epochs_run"),
        "stop_reason": report["training"].get("stop_reason"),
        "forget_acc_after": report["metrics"]["after"]["forget"]["acc"],
        "test_acc_after": report["metrics"]["after"]["test"]["acc"],
        "caches": report.get("caches"),
    }


def crossover(sizes: list[int], unlearn: list[float], retrain: list[float]) -> dict[str, Any]:
    """The |D| where unlearning becomes cheaper: interpolated (log |D|) between measured sizes
    where retrain - unlearn changes sign, else extrapolated from straight-line fits."""
    diff = [r - u for u, r in zip(unlearn, retrain)]
    if diff[0] > 0:
        return {"rows": None, "how": f"cheaper at every size measured (from {sizes[0]})"}
    for i in range(1, len(sizes)):
        if diff[i] > 0:
            a, b = np.log(sizes[i - 1]), np.log(sizes[i])
            t = diff[i - 1] / (diff[i - 1] - diff[i])
            return {"rows": int(round(float(np.exp(a + t * (b - a))))), "how": "interpolated"}
    bu, au = np.polyfit(sizes, unlearn, 1)
    br, ar = np.polyfit(sizes, retrain, 1)
    if br <= bu:
        return {"rows": None, "how": "not cheaper within the sizes measured, and retraining does not grow faster"}
    return {"rows": int(round((au - ar) / (br - bu))), "how": "extrapolated from linear fits"}


def throughput(inputs: dict[str, Path], steps: int, repeats: int) -> dict[str, Any]:
    """Rows/s of one RFAU step (1 forget + k retain batches through the student, teacher from
    its cache, backward into the adapter) against a plain cross-entropy fine-tuning step of
    the same model on the same 1 + k batches, and against cross-entropy through the same
    LoRA adapter (which separates LoRA's own cost from RFAU's); measured alternately here."""
    import copy

    import torch

    from rfau_cli.checkpoint import resolve_checkpoint
    from rfau_cli.job import prepare_job
    from rfau_cli.methods.base import join
    from rfau_cli.methods.rfau import RFAU
    from rfau_cli.progress import Progress
    from rfau_cli.settings import DataSettings, MethodSettings, RuntimeSettings

    ref = resolve_checkpoint(inputs["model"])
    data = DataSettings(inputs["data"], str(inputs["forget"]), test_data=inputs["test"])
    job = prepare_job(ref, data, RuntimeSettings(quiet=True), 0, Progress(True))
    plain = copy.deepcopy(job.model).eval()
    method = RFAU()
    settings = MethodSettings().resolved(method)
    ctx = job.fit_context(method, settings)
    method.setup(ctx)
    k, size = settings.retain_ratio, settings.batch_size
    forget = ctx.batch(ctx.splits.forget[:size])
    retain = [ctx.batch(ctx.splits.retain[i * size : (i + 1) * size]) for i in range(k)]
    rows = len(forget["rows"]) + sum(len(b["rows"]) for b in retain)
    lora = torch.optim.AdamW([p for p in ctx.model.parameters() if p.requires_grad], lr=1e-3)
    full = torch.optim.AdamW(plain.parameters(), lr=1e-3)
    both = join([forget, *retain])
    inputs_ce = {k_: v for k_, v in both.items() if k_ not in ("rows", "labels")}

    def rfau_step() -> None:
        loss = method.loss(ctx, forget, retain, 0)["loss"]
        lora.zero_grad(set_to_none=True)
        loss.backward()
        lora.step()

    def ce_lora_step() -> None:  # the same adapter, trained by plain cross-entropy: LoRA's own cost
        loss = torch.nn.functional.cross_entropy(ctx.model(**inputs_ce).logits, both["labels"])
        lora.zero_grad(set_to_none=True)
        loss.backward()
        lora.step()

    def ce_step() -> None:
        loss = torch.nn.functional.cross_entropy(plain(**inputs_ce).logits, both["labels"])
        full.zero_grad(set_to_none=True)
        loss.backward()
        full.step()

    steps_by_name = {"rfau": rfau_step, "cross_entropy": ce_step, "cross_entropy_lora": ce_lora_step}
    out: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for fn in steps_by_name.values():  # warm-up: caches filled, allocator warm
        fn()
    # CPU time of this process: on a shared machine wall time mostly measures the neighbours.
    clock = time.process_time if ctx.device.type == "cpu" else time.perf_counter
    for _ in range(repeats):
        for name, fn in steps_by_name.items():
            started = clock()
            for _ in range(steps):
                fn()
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            out[name].append(rows * steps / (clock() - started))
    best = {name: float(np.median(v)) for name, v in out.items()}
    return {
        "rows_per_step": rows,
        "clock": "process CPU time" if ctx.device.type == "cpu" else "wall",
        "torch_threads": torch.get_num_threads(),
        "rows_per_s": {name: round(v, 1) for name, v in best.items()},
        "ratio": round(best["rfau"] / best["cross_entropy"], 3),
        "ratio_to_lora_cross_entropy": round(best["rfau"] / best["cross_entropy_lora"], 3),
        "all_rows_per_s": out,
    }


def _per_step(run: dict[str, Any]) -> float:
    return run["cpu_s"].get("fit", 0.0) / max(run["steps"], 1)


def _cache(run: dict[str, Any], which: str, key: str) -> Any:
    block = (run.get("caches") or {}).get(which)
    return "-" if not block else block.get(key, "-")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for command, style in (("unlearn", "o-"), ("retrain", "s-")):
        runs = [result["runs"][str(n)][command] for n in sizes]
        ax.plot(sizes, [r["wall_s"] for r in runs], style, label=f"rfau {command}: wall")
        ax.plot(sizes, [r["timings_s"]["fit"] for r in runs], style.replace("-", "--"), label=f"rfau {command}: fit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("|D| (training rows)")
    ax.set_ylabel("seconds")
    ax.set_title(f"Digits ResNet, |D_f| = {result['forget']} rows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    parser.add_argument("--sizes", default="2000,8000,32000", help="comma list of |D| (default 2000,8000,32000)")
    parser.add_argument("--forget", type=int, default=100, help="|D_f|, the same at every size (default 100)")
    parser.add_argument("--cache", type=Path, default=None, help="where grown data and originals are kept")
    parser.add_argument("--steps", type=int, default=20, help="steps per throughput measurement")
    parser.add_argument("--repeats", type=int, default=5, help="alternating throughput measurements (median kept)")
    parser.add_argument("--extra", default="", help="extra flags for `rfau unlearn`, e.g. '--cache-mb 0'")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out} already exists")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    inputs = prepare(args.cache or args.out / "inputs", sizes, args.forget)
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    for n in sizes:
        runs[str(n)] = {
            "unlearn": run_cli("unlearn", inputs[n], args.out / f"unlearn{n}", args.extra.split()),
            "retrain": run_cli("retrain", inputs[n], args.out / f"retrain{n}", []),
        }
    result: dict[str, Any] = {
        "benchmark": "scale-digits-resnet",
        "forget": args.forget,
        "sizes": sizes,
        "runs": runs,
        "crossover_wall": crossover(
            sizes,
            [runs[str(n)]["unlearn"]["wall_s"] for n in sizes],
            [runs[str(n)]["retrain"]["wall_s"] for n in sizes],
        ),
        "crossover_fit": crossover(
            sizes,
            [runs[str(n)]["unlearn"]["timings_s"]["fit"] for n in sizes],
            [runs[str(n)]["retrain"]["timings_s"]["fit"] for n in sizes],
        ),
        "fit_growth": round(
            runs[str(sizes[-1])]["unlearn"]["timings_s"]["fit"] / runs[str(sizes[0])]["unlearn"]["timings_s"]["fit"], 3
        ),
        "fit_growth_cpu": round(
            runs[str(sizes[-1])]["unlearn"]["cpu_s"]["fit"] / runs[str(sizes[0])]["unlearn"]["cpu_s"]["fit"], 3
        ),
        "fit_growth_per_step": round(
            _per_step(runs[str(sizes[-1])]["unlearn"]) / _per_step(runs[str(sizes[0])]["unlearn"]), 3
        ),
        "throughput": throughput(inputs[sizes[0]], args.steps, args.repeats),
    }
    header = [
        "|D|",
        "command",
        "wall s",
        "load",
        "audits",
        "setup",
        "fit",
        "outside fit",
        "fit CPU s",
        "CPU outside fit",
        "peak RSS MiB",
        "steps",
        "fit CPU ms/step",
        "rows encoded",
        "teacher rows",
        "stop",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for n in sizes:
        for command in ("unlearn", "retrain"):
            r, t = runs[str(n)][command], runs[str(n)][command]["timings_s"]
            c = r["cpu_s"]
            audits = t.get("audit_before", 0.0) + t.get("audit_after", 0.0)
            lines.append(
                "| "
                + " | ".join(
                    [
                        str(n),
                        command,
                        f"{r['wall_s']:.1f}",
                        f"{t.get('load', 0):.1f}",
                        f"{audits:.1f}",
                        f"{t.get('setup', 0):.1f}",
                        f"{t.get('fit', 0):.1f}",
                        f"{r['outside_fit_s']:.1f}",
                        f"{c.get('fit', 0):.1f}",
                        f"{c.get('process', 0) - c.get('fit', 0):.1f}",
                        f"{r['peak_rss_mib']:.0f}",
                        str(r["steps"]),
                        f"{1000 * c.get('fit', 0) / max(r['steps'], 1):.1f}",
                        str(_cache(r, "inputs", "rows_encoded")),
                        str(_cache(r, "teacher", "rows_computed")),
                        str(r["stop_reason"]),
                    ]
                )
                + " |"
            )
    tp = result["throughput"]
    lines += [
        "",
        f"unlearning cheaper than retraining (wall) from |D| = {result['crossover_wall']['rows']} "
        f"({result['crossover_wall']['how']})",
        f"unlearning fit cheaper than retraining's training from |D| = {result['crossover_fit']['rows']} "
        f"({result['crossover_fit']['how']})",
        f"RFAU fit time x{result['fit_growth']} (CPU time x{result['fit_growth_cpu']}) from |D| = {sizes[0]} to"
        f" {sizes[-1]} (|D_f| = {args.forget}); CPU time per step x{result['fit_growth_per_step']}",
        f"fit throughput: RFAU {tp['rows_per_s']['rfau']} rows/s, plain cross-entropy "
        f"{tp['rows_per_s']['cross_entropy']} rows/s"
        f" (ratio {tp['ratio']}, {tp['rows_per_step']} rows a step); cross-entropy through the same LoRA adapter"
        f" {tp['rows_per_s']['cross_entropy_lora']} rows/s (RFAU / that: {tp['ratio_to_lora_cross_entropy']})",
    ]
    text = "\n".join(lines)
    print(text)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "scale.md").write_text(text + "\n")
    plot(result, args.out / "scale.png")
    print(f"wrote {args.out / 'scale.json'} and {args.out / 'scale.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
