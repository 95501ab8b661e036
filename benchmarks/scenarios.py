"""Deletion requests that resemble real ones: seven models x three forget sets, each one `rfau bench`.

    .venv/bin/python benchmarks/scenarios.py --out bench-out/scenarios [--scenarios resnet-mem,vit-r10]
        [--methods rfau,finetune] [--seeds 0,1,2] [--reference-seeds 0,1,2] [--original-seeds 1000,1001,1002]
        [--forget-seeds 0,1,2] [--cache bench-out/inputs]

Models (built once under `--cache`, default OUT/inputs, and reused by later runs). Each
original is trained by `rfau retrain` itself on all its rows (seed 1000; `train_original`),
the code and recipe its references are retrained with, so that original and references differ
only by D_f and the seed:

- `resnet-fit`: the digits ResNet on 4,044 rows (digits grown 3x by upsampled, rotated,
  shifted copies: `toy.grown_digits_datasets`; test 1,347 rows), 30 epochs: a model that fits
  (loss-attack AUC of a random 10% vs test 0.53).
- `resnet-mem`: the same ResNet on 1,000 rows drawn from the 3x grown digits with pixel noise
  (std 15% of full scale; test 1,347 grown noisy rows), 200 epochs at lr 1e-3, batch 100: a
  model that memorised its rows (RA 100%, TA ~80%, loss-attack AUC of a random 10% vs test
  0.68-0.70). At the digits default lr 3e-3 / batch 64, Adam's loss spikes late in training
  (long after the loss reached ~0) and one retrain of two ended mid-spike at TA 52% (the
  other 81%); at 1e-3 / 64, two of three ended at 68% (spikes in the last epoch) against 80%;
  1e-3 / 100 gave the tightest retrains (TA spread 1.7 pp over 3 seeds). Measured
  alternatives, 1,000 rows x 200 epochs (toy.py's trainer): clean original digits AUC 0.52 (it
  generalises); clean grown 0.63 (TA 91%); grown + noise 10% 0.64 (TA 87%), 30% 0.79 (TA 59%).
  The build checks AUC >= 0.65 (warns below) and records it in inputs/manifest.json.
- `resnet-big`: `resnet-fit`'s recipe on 10,784 rows (digits grown 8x; test 3,592 grown the
  same way: a test side grown less holds more unshifted originals, easier than the training
  rows, and RFAU's targets, which take the test rows as non-members, warned and asked too
  little). Where cost is told apart: a fine-tuning epoch is a pass over D_r, RFAU's follows D_f.
- `vit`: the tiny digits ViT on 2,696 rows (digits grown 2x; test 898), 60 epochs.
- `vit-big`: the ViT on `resnet-big`'s 10,784 rows, 30 epochs (four times the rows an epoch).
- `vit-mem`: the same ViT on `resnet-mem`'s 1,000 noisy rows with its recipe (200 epochs, lr
  1e-3, batch 100): a second architecture that memorised its rows (RA 97-100%, TA 68-74%,
  loss-attack AUC of all training rows vs test 0.62-0.70 over seeds 1000-1005; of a random 10%,
  the build's check, one seed of six fell under 0.65 at 0.614).
- Held out, by name only (`--scenarios resnet-mid,vit-x3,resnet-2k-mem,minilm-720`):
  `resnet-mid`, the ResNet on the ViT's 2,696 rows for 100 epochs; `vit-x3`, the ViT on the fitted ResNet's 4,044
  rows for 40 epochs; `resnet-2k-mem`, the ResNet on 2,000 of the noisy grown digits
  (`digits-noisy-2000`) for 150 epochs at `resnet-mem`'s lr and batch (loss-attack AUC
  0.64-0.67 over seeds 1000-1002: it memorised, less than `resnet-mem`); `minilm-720`, MiniLM's
  recipe on 720 sentences of the same kind (`text-720-mixed`, test 240). No default was chosen
  on them: they check that the defaults carry over to recipes they were not tuned on
  (docs/results.md, "Held-out models").
- `minilm`: the packaged MiniLM fine-tuned (3 epochs, lr 5e-5, batch 16) on 480 topic
  sentences (`toy.grown_text_datasets`; test 160) from the pre-trained body with a fresh head
  (`toy.text_init_checkpoint`), as are its references. 20% of the sentences are ambiguous
  (subject of one topic, predicates of another, either label): on pure-topic sentences the
  original and every retrain score 100% everywhere (measured: avg gap 0.00 pp, nothing to
  forget). With them: ~96% train, ~93% test accuracy; the loss-attack AUC stays ~0.52-0.55,
  the signal is in UA and MIA-efficacy.

Forget sets, each a seeded list of row indices: `r1` a random 1% of the rows, `r10` a random
10%, `c10` 10% of the rows of which 60% come from one class (class 3; "sport" for text): a
user's data is rarely uniform; `--concentrated-class N` draws them from class N instead (every
digit measured in docs/results.md, "Concentrated requests on every digit"). A scenario is
`MODEL-FORGET` (e.g. `resnet-mem-r10`); `--scenarios` takes scenario names or model names (all
three forget sets). The digits models have a fourth, by name only: `g10`, 10% of the rows as
whole images (every grown copy of each image drawn: `source` in the data), as a user's deletion
takes every copy of their item. A random 10% of grown rows leaves most copies of each forgotten
row in D_r, through which a retrain may still half know it: on `resnet-big` the retrains of
three random 10% were wrong on 2.8-3.3% of the forgotten rows against 4.1-4.2% of their test
rows, while two retrains without 135 whole images were wrong on 3.2% and 4.2% of them against
3.3% and 4.0% of their test rows; the ViTs and the smaller sets show no such difference
(docs/results.md, "Whole images").

The original is a random variable too: `--original-seeds 1000,1001,1002` trains one original
per seed (cache/models/<model>-s<seed>; 1000 keeps the plain name) and benches every scenario
once per original, all against the first one's retrains (OUT/<scenario>/original-<seed>/).
Each summary cell is then the mean over originals of each original's mean over method seeds,
± the spread over originals, with every original's share closed in its own column. Measured
(RFAU, 3 method seeds x 3 retrains): the share closed on the memorising ResNet's random 10%
was 78, 99, 90 and 53% for originals 1000-1003, on the ViT's 89, 51, 79 and 37%: one original
says little, however many method seeds and retrains it gets (docs/results.md).

So is the forget set: `--forget-seeds 0,1,2` draws one forget set of each kind per seed (seed
0 is the list above, cache/forget/<data>-<kind>.txt; seed s, <data>-<kind>-f<s>.txt), retrains
references for each, and benches every (forget set, original) pair, a "draw"
(OUT/<scenario>/forget-<f>/original-<seed>/). The retrains' own view of the forgotten rows
varies with the set: on the fitted ResNet, two random 10% sets of the same 4,044 rows left the
retrains 8.3% and 5.2% UA at the same test accuracy (93.3%, 93.9%), and the removable gap 3.0
and 1.2 pp. The cells are then over draws, and a `pooled` share, (sum of none's gaps - sum of
the method's) / (sum of none's gaps - sum of the floors), weighs each draw by what it had to
remove, where the plain mean counts a draw with almost nothing to remove (a share that is
mostly noise) like any other; a draw with nothing to remove (the floor at or above doing
nothing: retrains that disagree more than the original differs from them) is left out of it.
With several forget sets, `--peers` also runs RFAU on every draw given, as peers of the recipe
(`--set test_margins_from`), the retrains of another request of the same model, judged against
the draw's own: a random request's (r1, r10) those of the next forget set (the last set takes
the first's), a c10 or g10 one's those of the model's first r10 set (list `MODEL-r10` before
it); a row `rfau+peers`, under OUT/<scenario>/forget-<f>/original-<seed>-peers/. Measured on
the digits draws (docs/results.md, "Peers of the recipe"): the avg gap fell on 97 of 150, most
on originals weaker or stronger than their retrains.

Every reference is retrained with the original's own recipe, once per `--reference-seeds`;
each method runs once per `--seeds` (`rfau bench` docs: docs/bench.md). The summary table
(stdout, OUT/scenarios.md, OUT/scenarios.json) has one row per scenario and method: avg gap,
floor, share of the removable gap closed (mean ± std over method seeds), loss-AUC gap to the
retrained models, TA change against the original (pp) and time (`--same-time-as rfau` adds each
other method at the epochs that take RFAU's time, rows NAME@rfau-time); over several draws also the
pooled share, each draw's share, and (`ranking`) on how many draws and forget sets each method
is the lowest or within the lowest's spread. Each scenario's own
bench.json/.md/.png is under OUT/<scenario>/, its log under OUT/logs/. Exit 1 if a scenario's
bench failed (the others still run and are reported).

Timings, measured on this machine (1 CPU core visible, shared with other jobs; an idle
machine is faster) with `--methods rfau --seeds 0 --reference-seeds 0,1` and the code of
commit a546866 (resnet-mem at lr 3e-3 / batch 64). With the working tree of commit 6907aca
(input caching) retrains ran 3-5x faster: resnet-mem-r1 and -r10 with three reference seeds
took 77 s for both, the build of resnet-mem included. The two big models' rows are from the
change that added them (2 cores shared by two or three benches, seeds 0,1,2).

| step | wall time | of which |
|---|---:|---|
| build all inputs once | ~4.5 min | originals: resnet-fit 38 s, resnet-mem 44 s, vit 50 s, minilm 70 s; data sets ~20 s |
| resnet-fit-r1 / -r10 | 72 s / 72 s | retrain ~20 s each; rfau fit 2.4 s / 9.2 s |
| resnet-mem-r10 | 81 s | retrain ~33 s each; rfau fit 1.6 s |
| vit-r10 / vit-c10 | 85 s / 96 s | retrain ~32-37 s each; rfau fit 6.7 s / 8.3 s |
| minilm-r1 / -r10 | 223 s / 315 s | retrain ~36-51 s each; rfau fit 98 s / 148 s |
| resnet-big-r10, one draw, `--methods rfau,finetune,l1-sparse --same-time-as rfau` | ~4-5 min | build 26-28 s an original; retrain 12-13 s each; rfau fit 7.5-8 s |
| vit-big-r10, the same | ~6-7 min | build 38-40 s an original; retrain ~22 s each; rfau fit 19-20 s |

Every bench adds ~10 s (loading, one audit per model, the plot). A full run (3 reference
seeds, all 11 methods x 3 seeds) is about 3 retrains + 33 method runs a scenario: ~5-10 min a
digits scenario (~1-1.5 h for the nine), and far longer for MiniLM (rfau alone ~2.5 min a run):
run MiniLM with fewer methods, e.g. `--scenarios minilm --methods rfau,finetune,neggrad-plus,scrub,l1-sparse`.
"""  # noqa: E501 (a markdown table)

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORGET_SETS = ("r1", "r10", "c10")
# By name only, on the digits models (their rows name the image they were grown from): 10% of the
# rows as whole images, every grown copy of each image drawn, as a user's deletion takes every
# copy of their item. A random 10% of grown rows leaves most of each forgotten row's copies in
# D_r, and on the big ResNet a retrain still half knows the row through them (docs/results.md,
# "Whole images").
GROUPED_SETS = ("g10",)
# Of a c10 forget set, the share from its one class: "most of it". At 0.8 (80% of the class's
# rows gone) retrains of the digits ViT disagreed more (floor 11.3 pp, 2 seeds) than the original
# differed from them (10.6 pp): nothing measurable to remove.
CONCENTRATED_SHARE = 0.6
CONCENTRATED_CLASS = {"digits": 3, "text": 0}
MEMORISED_ROWS, MEMORISED_EPOCHS, MEMORISED_NOISE = 1000, 200, 0.15
MEMORISED_MIN_AUC = 0.65
TEXT_MIXED = 0.2  # share of ambiguous sentences in the text set (toy.grown_text_datasets)


@dataclass(frozen=True)
class ModelSpec:
    """How one scenario model is built; its references are retrained with the same recipe."""

    name: str
    kind: str  # "digits" or "text"
    arch: str
    data: str  # name of the data set under the cache
    epochs: int
    description: str
    lr: float | None = None  # None: rfau retrain's default (3e-3, the digits recipe)
    batch_size: int | None = None  # None: rfau retrain's default (64)

    def recipe(self, prefix: str) -> list[str]:
        """The training recipe as `rfau retrain` (prefix "--") or `rfau bench` ("--retrain-") options."""
        args = [f"{prefix}epochs", str(self.epochs)]
        if self.lr is not None:
            args += [f"{prefix}lr", str(self.lr)]
        if self.batch_size is not None:
            args += [f"{prefix}batch-size", str(self.batch_size)]
        return args


MODELS = {
    "resnet-fit": ModelSpec(
        "resnet-fit", "digits", "resnet", "digits-x3", 30, "digits ResNet, 4,044 rows, 30 epochs (fits)"
    ),
    # lr 1e-3, not the digits default 3e-3: at 3e-3 for 200 epochs, long past zero training loss,
    # Adam's loss spikes late in training and one retrain of two ended at TA 52% (the other 81%).
    "resnet-mem": ModelSpec(
        "resnet-mem",
        "digits",
        "resnet",
        f"digits-noisy-{MEMORISED_ROWS}",
        MEMORISED_EPOCHS,
        f"digits ResNet, 1,000 noisy rows, {MEMORISED_EPOCHS} epochs, lr 1e-3, batch 100 (memorised)",
        lr=1e-3,
        batch_size=100,
    ),
    # Larger D at the same recipe: a fine-tuning epoch is a pass over D_r, RFAU's cost follows D_f,
    # so this is where the cost of the two is told apart (the bench's same-time rows).
    "resnet-big": ModelSpec(
        "resnet-big", "digits", "resnet", "digits-x8", 30, "digits ResNet, 10,784 rows, 30 epochs (fits)"
    ),
    "vit": ModelSpec("vit", "digits", "vit", "digits-x2", 60, "digits ViT, 2,696 rows, 60 epochs"),
    # 30 epochs, not the small ViT's 60: four times the rows an epoch.
    "vit-big": ModelSpec("vit-big", "digits", "vit", "digits-x8", 30, "digits ViT, 10,784 rows, 30 epochs"),
    "vit-mem": ModelSpec(
        "vit-mem",
        "digits",
        "vit",
        f"digits-noisy-{MEMORISED_ROWS}",
        MEMORISED_EPOCHS,
        f"digits ViT, 1,000 noisy rows, {MEMORISED_EPOCHS} epochs, lr 1e-3, batch 100 (memorised)",
        lr=1e-3,
        batch_size=100,
    ),
    "minilm": ModelSpec(
        "minilm",
        "text",
        "minilm",
        "text-480-mixed",
        3,
        "MiniLM topics, 480 sentences (20% ambiguous), 3 epochs",
        lr=5e-5,
        batch_size=16,
    ),
    # Held out: recipes no default was chosen on, to check that the defaults carry over (by name
    # only, like g10; docs/results.md, "Held-out models").
    "resnet-mid": ModelSpec(
        "resnet-mid", "digits", "resnet", "digits-x2", 100, "digits ResNet, 2,696 rows, 100 epochs (held out)"
    ),
    "vit-x3": ModelSpec("vit-x3", "digits", "vit", "digits-x3", 40, "digits ViT, 4,044 rows, 40 epochs (held out)"),
    "resnet-2k-mem": ModelSpec(
        "resnet-2k-mem",
        "digits",
        "resnet",
        "digits-noisy-2000",
        150,
        "digits ResNet, 2,000 noisy rows, 150 epochs, lr 1e-3, batch 100 (held out; memorised)",
        lr=1e-3,
        batch_size=100,
    ),
    "minilm-720": ModelSpec(
        "minilm-720",
        "text",
        "minilm",
        "text-720-mixed",
        3,
        "MiniLM topics, 720 sentences (20% ambiguous), 3 epochs (held out)",
        lr=5e-5,
        batch_size=16,
    ),
}
# Models benched by name only: not in the default run, never used to choose a default.
HELD_OUT = ("resnet-mid", "vit-x3", "resnet-2k-mem", "minilm-720")
DEFAULT_MODELS = tuple(m for m in MODELS if m not in HELD_OUT)
# The original's training seed: not one of the reference seeds, whose retrains would otherwise
# start from the original's own initial weights and land closer to it than a retrain can.
ORIGINAL_SEED = 1000
# One bench of a scenario: (forget seed, original seed).
Draw = tuple[int, int]
FORGET_TITLES = {
    "r1": "random 1%",
    "r10": "random 10%",
    "c10": "10%, 60% from one class",
    "g10": "10% as whole images (every copy)",
}


def forget_kinds(spec: ModelSpec) -> tuple[str, ...]:
    """Every forget set a model can be benched on: the three, and whole images where rows have them."""
    return FORGET_SETS + (GROUPED_SETS if spec.kind == "digits" else ())


def scenario_names() -> list[str]:
    return [f"{m}-{f}" for m, spec in MODELS.items() for f in forget_kinds(spec)]


def parse_scenarios(text: str) -> list[str]:
    """Scenario names, or model names standing for their three forget sets, in the order given."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in MODELS:
            names += [f"{part}-{f}" for f in FORGET_SETS]
        elif part in scenario_names():
            names.append(part)
        else:
            raise SystemExit(f"unknown scenario {part!r}; choose from {', '.join([*MODELS, *scenario_names()])}")
    return list(dict.fromkeys(names))


# ---- inputs (built once into the cache) --------------------------------------------------------


def build_data(name: str, cache: Path) -> tuple[Path, Path]:
    """(train, test) of one data set, built under cache/data/<name> when missing."""
    from rfau_cli import toy

    root = cache / "data" / name
    train, test = root / "train", root / "test"
    if (train / "dataset_info.json").exists() and (test / "dataset_info.json").exists():
        return train, test
    if name == "digits-x3":
        return toy.grown_digits_datasets(root, copies=3)
    if name == "digits-x2":
        return toy.grown_digits_datasets(root, copies=2)
    if name == "digits-x8":  # test grown x8 too: held-out rows drawn like the training rows (x2 made them easier)
        return toy.grown_digits_datasets(root, copies=8)
    if name.startswith("digits-noisy-"):  # digits-noisy-N: N rows of the noisy grown digits (1,000: resnet-mem's)
        import datasets

        full_train, full_test = toy.grown_digits_datasets(
            cache / "data" / "digits-noisy", copies=3, noise=MEMORISED_NOISE
        )
        table = datasets.load_from_disk(str(full_train))
        rows = np.sort(np.random.default_rng(0).choice(len(table), int(name.rsplit("-", 1)[1]), replace=False))
        table.select(rows.tolist()).save_to_disk(str(train))
        datasets.load_from_disk(str(full_test)).save_to_disk(str(test))
        return train, test
    if name.startswith("text-") and name.endswith("-mixed"):  # text-N-mixed: N sentences, test N/3 (480: minilm's)
        rows = int(name.split("-")[1])
        return toy.grown_text_datasets(root, train_rows=rows, test_rows=rows // 3, mixed=TEXT_MIXED)
    raise ValueError(name)


def build_model(
    spec: ModelSpec, cache: Path, manifest: dict[str, Any], seed: int = ORIGINAL_SEED
) -> tuple[Path, Path, Path, Path | None]:
    """(model, train, test, init) of a scenario model, trained once under cache/models/<name>
    (cache/models/<name>-s<seed> for an original of another seed)."""
    from rfau_cli import toy

    train, test = build_data(spec.data, cache)
    key = model_key(spec, seed)
    model = cache / "models" / key
    init = cache / "models" / "minilm-init" if spec.kind == "text" else None
    if init is not None and not (init / "model.safetensors").exists():
        toy.text_init_checkpoint(train, init)
    recipe = [spec.data, *spec.recipe("--"), "--seed", str(seed)]
    if manifest.get("models", {}).get(key, {}).get("recipe") != recipe and model.exists():
        import shutil

        shutil.rmtree(model)  # built with another recipe (an older version of this script): rebuild
    if not (model / "model.safetensors").exists():
        started = time.perf_counter()
        train_original(spec, train, test, model, init, seed)
        manifest.setdefault("models", {})[key] = {
            "train_s": round(time.perf_counter() - started, 1),
            "recipe": recipe,
        }
        print(f"built {key} in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    if spec.name.endswith("-mem") and "memorised_loss_auc" not in manifest.get("models", {}).get(key, {}):
        auc = memorisation_auc(model, train, test)
        manifest.setdefault("models", {}).setdefault(key, {})["memorised_loss_auc"] = round(auc, 3)
        if auc < MEMORISED_MIN_AUC:
            print(
                f"warning: {key} loss-attack AUC {auc:.3f} < {MEMORISED_MIN_AUC}: it did not memorise",
                file=sys.stderr,
            )
    return model, train, test, init


def model_key(spec: ModelSpec, seed: int) -> str:
    """The cache name of an original: the default seed keeps the plain name (older caches)."""
    return spec.name if seed == ORIGINAL_SEED else f"{spec.name}-s{seed}"


def train_original(
    spec: ModelSpec, train: Path, test: Path, out: Path, init: Path | None, seed: int = ORIGINAL_SEED
) -> None:
    """Train the original on all of `train` with `rfau retrain` itself, the code that trains the
    references, so that the original and its references differ only by D_f and the seed.

    Measured with originals trained by toy.py's own loop instead (AdamW with weight decay, its
    own batching): the references were apart from the original where D_f cannot matter (digits
    ResNet on 4,044 rows, RA 99.35% for both retrains vs 97.90% for the original; MiniLM, TA
    87.5% vs 93.1%), a gap no unlearning method can or should close. `rfau retrain` needs a
    row to leave out, so it trains on `train` plus one copy of its row 0 and forgets the copy.
    The result is re-saved by transformers: no report or rfau metadata comes with it.
    """
    import shutil

    import datasets
    import transformers

    from rfau_cli import toy

    work = out.parent / f".{out.name}-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    table = datasets.load_from_disk(str(train))
    datasets.concatenate_datasets([table, table.select([0])]).save_to_disk(str(work / "train-plus"))
    (work / "extra.txt").write_text(f"# the copy of row 0\n{len(table)}\n")
    if init is not None:
        arch = init
    else:
        config = toy.tiny_image_config(spec.arch)
        config.architectures = [("ResNet" if spec.arch == "resnet" else "ViT") + "ForImageClassification"]
        toy.fresh_model(config).save_pretrained(str(work / "arch"))
        arch = work / "arch"
    cmd = [
        sys.executable,
        "-m",
        "rfau_cli",
        "retrain",
        "--model",
        str(arch),
        "--data",
        str(work / "train-plus"),
        "--forget",
        str(work / "extra.txt"),
        "--test-data",
        str(test),
        "--seed",
        str(seed),
        *spec.recipe("--"),
        "--out",
        str(work / "trained"),
        "--quiet",
        "--json",
    ]
    if init is not None:
        cmd += ["--init", str(init)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    auto = (
        transformers.AutoModelForSequenceClassification
        if spec.kind == "text"
        else transformers.AutoModelForImageClassification
    )
    auto.from_pretrained(str(work / "trained"), local_files_only=True).save_pretrained(str(out))
    if spec.kind == "text":
        transformers.AutoTokenizer.from_pretrained(str(work / "trained"), local_files_only=True).save_pretrained(
            str(out)
        )
    shutil.rmtree(work)


def memorisation_auc(model_dir: Path, train: Path, test: Path) -> float:
    """Loss-attack AUC of a seeded random 10% of the training rows against the test rows."""
    import datasets
    import torch
    import transformers

    from rfau_cli.metrics import loss_attack

    model = transformers.AutoModelForImageClassification.from_pretrained(str(model_dir), local_files_only=True).eval()

    def losses(table: Any) -> np.ndarray:
        pixels = torch.tensor(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in table["image"]]))[:, None]
        with torch.no_grad():
            logits = model(pixel_values=pixels).logits
        return torch.nn.functional.cross_entropy(logits, torch.tensor(list(table["label"])), reduction="none").numpy()

    table = datasets.load_from_disk(str(train))
    rows = np.random.default_rng(1).choice(len(table), len(table) // 10, replace=False)
    return loss_attack(losses(table.select(rows.tolist())), losses(datasets.load_from_disk(str(test))))["auc"]


def forget_rows(
    labels: np.ndarray, kind: str, major: int, seed: int = 0, sources: np.ndarray | None = None
) -> np.ndarray:
    """Row indices of a forget set: `r1`/`r10` uniform; `c10` 10% of the rows, 60% of them from
    class `major` (as many as it has) and the rest uniform over the other classes; `g10` whole
    `sources` (the image each row was grown from) in a seeded order, every row of each, until
    10% of the rows are taken (the last image may take it a few rows over)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    if kind == "g10":
        if sources is None:
            raise ValueError("g10 needs the rows' sources")
        images, sizes = np.unique(sources, return_counts=True)
        order = rng.permutation(len(images))
        taken = images[order[: int(np.searchsorted(np.cumsum(sizes[order]), round(n * 0.10))) + 1]]
        return np.flatnonzero(np.isin(sources, taken))
    if kind in ("r1", "r10"):
        size = max(1, round(n * (0.01 if kind == "r1" else 0.10)))
        return np.sort(rng.choice(n, size, replace=False))
    size = max(2, round(n * 0.10))
    in_class, others = np.flatnonzero(labels == major), np.flatnonzero(labels != major)
    k = min(len(in_class) - 1, round(size * CONCENTRATED_SHARE))  # never the whole class: that is class forgetting
    return np.sort(
        np.concatenate([rng.choice(in_class, k, replace=False), rng.choice(others, size - k, replace=False)])
    )


def forget_path(cache: Path, spec: ModelSpec, kind: str, seed: int = 0, major: int | None = None) -> Path:
    """The forget list of one draw: seed 0 and the default class keep the plain name (older caches);
    a c10 list on another class than CONCENTRATED_CLASS is named for it (`-class6`)."""
    if kind == "c10" and major is not None and major != CONCENTRATED_CLASS[spec.kind]:
        kind = f"{kind}-class{major}"
    return cache / "forget" / (f"{spec.data}-{kind}.txt" if seed == 0 else f"{spec.data}-{kind}-f{seed}.txt")


def write_forget(cache: Path, spec: ModelSpec, train: Path, kind: str, seed: int = 0, major: int | None = None) -> Path:
    """The forget list of one draw, drawn once into the cache; `major` is a c10 list's one class
    (default CONCENTRATED_CLASS)."""
    import datasets

    major = CONCENTRATED_CLASS[spec.kind] if major is None else major
    path = forget_path(cache, spec, kind, seed, major)
    if not path.exists():
        table = datasets.load_from_disk(str(train))
        labels, sources = np.asarray(table["label"]), None
        if kind in GROUPED_SETS:
            if "source" not in table.column_names:
                raise SystemExit(f"{train}: no `source` column (built before it had one): delete it to rebuild")
            sources = np.asarray(table["source"])
        if kind == "c10" and (labels == major).sum() < 2:
            have = int((labels == major).sum())
            raise SystemExit(f"--concentrated-class {major}: the training data has {have} rows of it (needs 2)")
        rows = forget_rows(labels, kind, major, seed, sources)
        path.parent.mkdir(parents=True, exist_ok=True)
        title = FORGET_TITLES[kind] + (f" (class {major})" if kind == "c10" else "")
        path.write_text(
            f"# {title} of {spec.data} ({len(rows)} of {len(labels)} rows, forget seed {seed})\n"
            + "\n".join(map(str, rows))
            + "\n"
        )
    return path


# ---- runs ------------------------------------------------------------------------------------


def run_scenario(
    name: str,
    args: argparse.Namespace,
    inputs: dict[str, Any],
    seed: int = ORIGINAL_SEED,
    references: list[Path] | None = None,
    forget_seed: int = 0,
    peers: list[Path] | None = None,
) -> dict[str, Any]:
    """One `rfau bench` in a subprocess (the real CLI); returns its bench.json, or the failure.

    With several originals each gets its own bench under OUT/<scenario>/original-<seed>/ (under
    OUT/<scenario>/forget-<f>/ too with several forget sets); the first original of a forget set
    retrains the references, the others are judged against those same retrains (`references`),
    so that only the original differs between them. With `peers`, RFAU alone, given them as
    `--set test_margins_from` (`--peers`), in a sibling directory named ...-peers."""
    spec = MODELS[name.rsplit("-", 1)[0]]
    model, train, test, init = inputs["models"][spec.name][seed]
    major = getattr(args, "concentrated_class", None)
    forget = write_forget(args.cache, spec, train, name.rsplit("-", 1)[1], forget_seed, major)
    out, label = args.out / name, name
    if len(args.forget_seeds) > 1:
        out, label = out / f"forget-{forget_seed}", f"{label}, forget set {forget_seed}"
    if len(args.original_seeds) > 1:
        out, label = out / f"original-{seed}", f"{label}, original {seed}"
    if peers:
        out, label = out.with_name(out.name + "-peers"), f"{label}, RFAU with peers"
    judged_by = ["--reference-seeds", args.reference_seeds, *spec.recipe("--retrain-")]
    if init is not None:
        judged_by += ["--retrain-init", str(init)]
    if references:  # retrained already: the recipe options go with them
        judged_by = [arg for path in references for arg in ("--reference", str(path))]
    cmd = [
        sys.executable,
        "-m",
        "rfau_cli",
        "bench",
        "--model",
        str(model),
        "--data",
        str(train),
        "--forget",
        str(forget),
        "--test-data",
        str(test),
        "--seeds",
        args.seeds,
        *judged_by,
        "--out",
        str(out),
        "--quiet",
    ]
    if peers:
        cmd += ["--methods", "rfau", "--set", "test_margins_from=" + ",".join(str(p) for p in peers)]
    elif args.methods:
        cmd += ["--methods", args.methods]
    if args.same_time_as and not peers:
        cmd += ["--same-time-as", args.same_time_as]
    cmd += shlex.split(args.bench_args)
    log = args.out / "logs" / (out.relative_to(args.out).as_posix().replace("/", "-") + ".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{label}] $ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = round(time.perf_counter() - started, 1)
    print(f"[{label}] exit {done.returncode} in {wall:.0f}s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        return {"status": "failed", "exit_code": done.returncode, "error": tail[0], "wall_s": wall, "command": cmd}
    bench = json.loads((out / "bench.json").read_text())
    retrained = sorted((out / "runs").glob("retrain-s*"))
    return {"status": "ok", "wall_s": wall, "command": cmd, "bench": bench, "references": retrained}


def run_draws(name: str, args: argparse.Namespace, inputs: dict[str, Any]) -> dict[Draw, dict[str, Any]]:
    """The scenario once per (forget seed, original seed). Each forget set gets its own retrains,
    made by its first original's bench; the other originals are judged against those."""
    runs: dict[Draw, dict[str, Any]] = {}
    for forget_seed in args.forget_seeds:
        references = None
        for seed in args.original_seeds:
            runs[(forget_seed, seed)] = run_scenario(name, args, inputs, seed, references, forget_seed)
            if references is None and runs[(forget_seed, seed)]["status"] == "ok":
                references = runs[(forget_seed, seed)]["references"]
    return runs


# The row `--peers` adds to every draw: RFAU given the retrains of another forget set as peers.
PEERS_ROW = "rfau+peers"


# Forget kinds whose peers are the next forget set's retrains; the others take a random request's.
RANDOM_KINDS = ("r1", "r10")


def peer_sources(
    name: str, args: argparse.Namespace, runs: dict[Draw, dict[str, Any]], done: dict[str, dict[Draw, dict[str, Any]]]
) -> dict[int, list[Path]] | None:
    """For each forget seed of `name`, the retrains its RFAU gets as peers (`--peers`): a random
    request's, the next forget set's (the last set takes the first's); a concentrated or
    whole-image one's, the first forget set's of the model's r10 scenario, which must have run
    before it (retrains that lost most of the same class would count its fall twice, on top of
    the class terms). None when there is no such scenario."""
    model, kind = name.rsplit("-", 1)
    seeds = args.forget_seeds
    if kind in RANDOM_KINDS:
        return {f: _retrains(args, runs, seeds[(seeds.index(f) + 1) % len(seeds)]) for f in seeds}
    donor = done.get(f"{model}-r10")
    return None if donor is None else {f: _retrains(args, donor, seeds[0]) for f in seeds}


def _retrains(args: argparse.Namespace, runs: dict[Draw, dict[str, Any]], forget_seed: int) -> list[Path]:
    """A forget set's retrains: made by its first original's bench (`run_draws`); [] if it failed."""
    return list((runs.get((forget_seed, args.original_seeds[0])) or {}).get("references") or [])


def run_peer_draws(
    name: str,
    args: argparse.Namespace,
    inputs: dict[str, Any],
    runs: dict[Draw, dict[str, Any]],
    done: dict[str, dict[Draw, dict[str, Any]]],
) -> None:
    """`--peers`: RFAU once more on every draw, given as peers of the recipe (`--set
    test_margins_from`) the retrains of another request of the same model (`peer_sources`),
    judged against the draw's own retrains: what a team that benched an earlier request of the
    same model has, never the request's own answer. Its summary row joins the draw's bench as
    PEERS_ROW; a failed peers bench is recorded under the draw's `peers_error`."""
    sources = peer_sources(name, args, runs, done)
    if sources is None:
        model = name.rsplit("-", 1)[0]
        print(f"[{name}] --peers: no {model}-r10 ran before it to take peers from; skipped", file=sys.stderr)
        return
    for (forget_seed, seed), run in runs.items():
        own, peers = _retrains(args, runs, forget_seed), sources.get(forget_seed)
        if run["status"] != "ok" or not own or not peers:
            continue
        again = run_scenario(name, args, inputs, seed, own, forget_seed, peers=peers)
        run["peers_wall_s"] = again["wall_s"]
        if again["status"] != "ok":
            run["peers_error"] = again["error"]
            continue
        row = next(r for r in again["bench"]["summary"] if r["method"] == "rfau")
        run["bench"]["summary"].append({**row, "method": PEERS_ROW})


def draw_label(draw: Draw, forget_seeds: int, originals: int) -> str:
    """How one draw is named in tables and scenarios.json: only the seeds that vary."""
    parts = ([f"forget-{draw[0]}"] if forget_seeds > 1 else []) + ([f"original-{draw[1]}"] if originals > 1 else [])
    return "/".join(parts)


def across_draws(name: str, runs: dict[Draw, dict[str, Any]]) -> list[dict[str, Any]]:
    """One draw: its rows (± over method seeds). Several (forget sets x originals): each cell is
    the mean over draws of each draw's mean over method seeds, ± the spread over draws, and the
    per-draw means are kept (`per_draw`, in the order of `draws`). The share closed also gets
    `pooled`: (sum of none's gaps - sum of the method's) / (sum of none's gaps - sum of the
    floors) over the draws, which weighs each draw by its removable gap: a forget set whose
    retrains barely differ from the original (0.5 pp on one digits ResNet set) gives a share
    that is mostly noise, and the plain mean counts it like any other."""
    per_draw = {draw: summary_rows(name, run) for draw, run in runs.items()}
    if len(per_draw) == 1:
        return next(iter(per_draw.values()))
    failed = [(draw, rows[0]) for draw, rows in per_draw.items() if "error" in rows[0]]
    ok = {draw: {r["method"]: r for r in rows} for draw, rows in per_draw.items() if "error" not in rows[0]}
    n_forget, n_orig = len({d[0] for d in runs}), len({d[1] for d in runs})
    failed_rows = [
        {**row, "scenario": f"{name} ({draw_label(draw, n_forget, n_orig).replace('/', ', ')})"} for draw, row in failed
    ]
    if not ok:
        return failed_rows[:1]
    out = []
    for method in next(iter(ok.values())):
        draws = [d for d, rows in ok.items() if method in rows]
        cells = [ok[d][method] for d in draws]
        row = {"scenario": name, "method": method, "status": cells[0]["status"], "draws": [list(d) for d in draws]}
        for key in ("avg_gap_pp", "floor_pp", "share_closed", "loss_auc", "loss_auc_gap", "ta_change_pp", "time_s"):
            # None where a draw has no value (a share where nothing was removable), so that
            # per_draw stays aligned with draws
            each = [c[key]["mean"] if c[key] and c[key].get("mean") is not None else None for c in cells]
            means = [m for m in each if m is not None]
            row[key] = {
                "mean": float(np.mean(means)) if means else None,
                "std": float(np.std(means)) if len(means) > 1 else None,
                "n": len(means),
                "per_draw": each,
            }
        row["share_closed"]["pooled"] = pooled_share(ok, draws, method)
        row["per_metric_gap_pp"] = {
            key: _over_draws([(c.get("per_metric_gap_pp") or {}).get(key) for c in cells]) for key in PER_METRIC
        }
        out.append(row)
    standing = ranking(ok)
    for row in out:
        if row["method"] in standing:
            row["rank"] = standing[row["method"]]
    return out + failed_rows


def ranking(ok: dict[Draw, dict[str, dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Where each method stands against the others on the issue's bar: the lowest avg gap, or
    within the lowest's spread (its mean + std). Per draw, the spread is the lowest method's over
    its seeds. Per forget set with several originals, each method's mean over the set's originals
    is compared, the spread the lowest's over those originals: one original is one draw of the
    model, and a method that wins on it can lose on the next (the ViT's third digit-3 list:
    SCRUB's 3.04 pp against RFAU's 3.61 on original 1000, 8.24 against 3.76 over six). Only the
    draws where every compared method ran; empty with fewer than two methods (none and the
    retrains are not compared)."""
    methods = sorted({m for rows in ok.values() for m in rows} - {"none", "retrain"})

    def gap(rows: dict[str, dict[str, Any]], method: str) -> tuple[float, float] | None:
        stat = (rows.get(method) or {}).get("avg_gap_pp") or {}
        return None if stat.get("mean") is None else (stat["mean"], stat.get("std") or 0.0)

    full = {d: {m: gap(rows, m) for m in methods} for d, rows in ok.items()}
    full = {d: g for d, g in full.items() if None not in g.values()}
    if len(methods) < 2 or not full:
        return {}
    counts = ("lowest", "within", "lists", "lists_lowest", "lists_within")
    out = {m: {"draws": len(full), **dict.fromkeys(counts, 0)} for m in methods}

    def tally(gaps: dict[str, tuple[float, float]], prefix: str) -> None:
        best = min(gaps, key=lambda m: gaps[m][0])
        out[best][prefix + "lowest"] += 1
        for m, (mean, _) in gaps.items():
            out[m][prefix + "within"] += int(mean <= gaps[best][0] + gaps[best][1])

    for gaps in full.values():
        tally(gaps, "")
    for forget_seed in sorted({d[0] for d in full}):
        draws = [d for d in full if d[0] == forget_seed]
        if len(draws) < 2:
            continue
        for m in methods:
            out[m]["lists"] += 1
        means = {m: [full[d][m][0] for d in draws] for m in methods}
        tally({m: (float(np.mean(v)), float(np.std(v))) for m, v in means.items()}, "lists_")
    return out


def _over_draws(stats: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean over draws of each draw's mean, ± the spread over draws."""
    means = [st["mean"] for st in stats if st and st.get("mean") is not None]
    return {
        "mean": float(np.mean(means)) if means else None,
        "std": float(np.std(means)) if len(means) > 1 else None,
        "n": len(means),
    }


def pooled_share(ok: dict[Draw, dict[str, dict[str, Any]]], draws: list[Draw], method: str) -> float | None:
    """(sum of none's gaps - sum of `method`'s) / (sum of none's gaps - sum of the floors), over
    the draws that have something to remove: where the retrains disagree with each other more
    than the original differs from them (the floor at or above doing nothing; MiniLM's second
    random 10% list: 13.5 against 11.6 pp) there is no removable gap to share, as in the bench's
    own share closed."""
    closed = removable = 0.0
    for d in draws:
        none, mine, floor = ok[d]["none"]["avg_gap_pp"], ok[d][method]["avg_gap_pp"], ok[d][method]["floor_pp"]
        if not (none and mine and floor) or None in (none.get("mean"), mine.get("mean"), floor.get("mean")):
            return None
        if none["mean"] - floor["mean"] <= 0:
            continue
        closed += none["mean"] - mine["mean"]
        removable += none["mean"] - floor["mean"]
    return closed / removable if removable > 0 else None


def summary_rows(name: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    """scenario x method rows: avg gap, floor, share closed, loss-AUC gap, TA change, time."""
    if run["status"] != "ok":
        return [{"scenario": name, "method": "(bench failed)", "error": run["error"]}]
    bench = run["bench"]
    rows = {r["method"]: r for r in bench["summary"]}
    ta_none = rows["none"]["ta"]["mean"]
    out = []
    for method, row in rows.items():
        ta = row["ta"]
        out.append(
            {
                "scenario": name,
                "method": method,
                "status": row["status"],
                "avg_gap_pp": row["avg_gap_pp"],
                "floor_pp": {k: bench["floor"].get(k) for k in ("mean", "std", "n")},
                "share_closed": row["share_closed"],
                "loss_auc": row["loss_auc"],
                "loss_auc_gap": row["loss_auc_gap"],
                "ta_change_pp": {
                    "mean": None if ta["mean"] is None or ta_none is None else 100 * (ta["mean"] - ta_none),
                    "std": None if ta["std"] is None else 100 * ta["std"],
                },
                "time_s": row["time_s"],
                # UA, RA, TA and MIA-efficacy one by one; the retrain row's is the floor's (bench.py).
                "per_metric_gap_pp": row.get("per_metric_gap_pp"),
            }
        )
    return out


def _fmt(stat: dict[str, Any] | None, scale: float = 1.0, digits: int = 2, missing: str = "-") -> str:
    if not stat or stat.get("mean") is None:
        return missing
    text = f"{stat['mean'] * scale:.{digits}f}"
    return text + (f" ± {stat['std'] * scale:.{digits}f}" if stat.get("std") is not None else "")


TABLE_HEADER = (
    "scenario",
    "method",
    "avg gap (pp)",
    "floor (pp)",
    "share closed (%)",
    "loss AUC gap",
    "TA change (pp)",
    "time (s)",
)


def render_table(rows: list[dict[str, Any]]) -> str:
    several = any("per_draw" in (r.get("share_closed") or {}) for r in rows)
    header = (*TABLE_HEADER, "pooled share (%)", "share per draw (%)") if several else TABLE_HEADER
    ranked = several and any("rank" in r for r in rows)
    if ranked:
        header = (*header, "lowest / within the lowest's spread")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['method']} | {r['error']} |" + " |" * (len(header) - 3))
            continue
        share = "-" if r["method"] == "retrain" else _fmt(r["share_closed"], 100, 0, "n/a")
        lines.append(
            "| "
            + " | ".join(
                [
                    r["scenario"],
                    {"retrain": "retrain (reference)", "none": "none (original)"}.get(r["method"], r["method"]),
                    _fmt(r["avg_gap_pp"]),
                    _fmt(r["floor_pp"], missing="n/a"),
                    share,
                    _fmt(r["loss_auc_gap"], digits=3),
                    _fmt(r["ta_change_pp"]),
                    _fmt(r["time_s"], digits=1),
                    *(_draw_cells(r) if several else []),
                    *([_rank_cell(r.get("rank"))] if ranked else []),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


# The avg gap's four metrics (rfau bench's GAP_METRICS), as the per-metric table titles them.
PER_METRIC = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-efficacy"}


def render_per_metric(rows: list[dict[str, Any]]) -> str:
    """The avg gap split into its four metrics, the floor's on the retrain row: which metric a
    method falls short on, read against what two retrains differ by on it. Empty when no row
    has the split (a bench with one reference has no floor to read it against)."""
    kept = [r for r in rows if "error" not in r and any((r.get("per_metric_gap_pp") or {}).values())]
    if not kept:
        return ""
    lines = [
        "| scenario | method | " + " | ".join(f"{t} gap (pp)" for t in PER_METRIC.values()) + " |",
        "|---|---|" + "---:|" * len(PER_METRIC),
    ]
    for r in kept:
        gaps = r["per_metric_gap_pp"]
        name = {"retrain": "floor (between references)", "none": "none (original)"}.get(r["method"], r["method"])
        lines.append(f"| {r['scenario']} | {name} | " + " | ".join(_fmt(gaps.get(k)) for k in PER_METRIC) + " |")
    return "\n".join(lines)


def _rank_cell(rank: dict[str, int] | None) -> str:
    """'5 / 6 of 6 draws; 1 / 1 of 1 forget sets': lowest, and lowest or within the lowest's spread."""
    if not rank:
        return "-"
    text = f"{rank['lowest']} / {rank['within']} of {rank['draws']} draws"
    if rank["lists"]:
        text += f"; {rank['lists_lowest']} / {rank['lists_within']} of {rank['lists']} forget sets"
    return text


def _draw_cells(row: dict[str, Any]) -> list[str]:
    """The pooled share and each draw's share, grouped by forget set when there are several."""
    share = row.get("share_closed") or {}
    if row["method"] == "retrain" or "per_draw" not in share:
        return ["-", "-"]
    pooled = "n/a" if share.get("pooled") is None else f"{100 * share['pooled']:.0f}"
    draws, values = row.get("draws", []), ["n/a" if v is None else f"{100 * v:.0f}" for v in share["per_draw"]]
    if len({d[0] for d in draws}) <= 1:
        return [pooled, ", ".join(values) or "-"]
    groups: dict[int, list[str]] = {}
    for (forget_seed, _), v in zip(draws, values, strict=True):
        groups.setdefault(forget_seed, []).append(v)
    return [pooled, "; ".join(f"f{f}: {', '.join(v)}" for f, v in groups.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_MODELS),
        help=f"comma list of scenarios or models (default: all 21 but the held-out models', {', '.join(HELD_OUT)})",
    )
    parser.add_argument("--methods", default="", help="comma list (default: every registered method)")
    parser.add_argument("--seeds", default="0,1,2", help="method seeds (default 0,1,2)")
    parser.add_argument("--reference-seeds", default="0,1,2", help="seeds of the retrained references (default 0,1,2)")
    parser.add_argument(
        "--original-seeds",
        default=str(ORIGINAL_SEED),
        help=f"training seeds of the originals (default {ORIGINAL_SEED}); with several, every scenario is "
        "benched once per original against the same retrains and reported over originals",
    )
    parser.add_argument(
        "--forget-seeds",
        default="0",
        help="seeds of the forget sets (default 0); with several, each forget set gets its own retrains and "
        "every scenario is reported over forget sets x originals",
    )
    parser.add_argument(
        "--concentrated-class",
        type=int,
        default=None,
        metavar="N",
        help=f"the one class of the c10 forget sets (default {CONCENTRATED_CLASS['digits']} for the digits models, "
        f"{CONCENTRATED_CLASS['text']} for text): a request concentrated in another class; its lists are named "
        "<data>-c10-classN[-fS].txt",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help=f"also run RFAU on every draw with `--set test_margins_from=` the retrains of another request: the "
        f"next forget set's (r1, r10; needs two --forget-seeds or more) or the model's r10 set 0 (c10, g10; list "
        f"MODEL-r10 first): a row `{PEERS_ROW}`",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="where data, models and forget lists are kept (default OUT/inputs)"
    )
    parser.add_argument(
        "--bench-args", default="", help="extra `rfau bench` options for every scenario, e.g. '--epochs 30'"
    )
    parser.add_argument(
        "--same-time-as",
        default="",
        metavar="METHOD",
        help="also bench every other method at the epochs that take METHOD's time, in each draw "
        "(`rfau bench --same-time-as`; rows NAME@METHOD-time)",
    )
    args = parser.parse_args()
    names = parse_scenarios(args.scenarios)
    args.original_seeds = [int(s) for s in args.original_seeds.split(",") if s.strip()]
    args.forget_seeds = list(dict.fromkeys(int(s) for s in args.forget_seeds.split(",") if s.strip()))
    if not args.forget_seeds or min(args.forget_seeds) < 0:
        parser.error("--forget-seeds must be given, as seeds of 0 or more")
    if args.peers and len(args.forget_seeds) < 2:
        parser.error("--peers takes the retrains of another forget set: give two --forget-seeds or more")
    if not args.original_seeds or set(args.original_seeds) & {int(s) for s in args.reference_seeds.split(",")}:
        parser.error("--original-seeds must be given and must not share a seed with --reference-seeds")
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # nothing is ever downloaded (DESIGN.md)
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.out.exists():
        parser.error(f"--out {args.out} already exists")
    args.cache = (args.cache or args.out / "inputs").resolve()
    (args.out / "logs").mkdir(parents=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    manifest_path = args.cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    inputs: dict[str, Any] = {"models": {}}
    for spec in dict.fromkeys(MODELS[n.rsplit("-", 1)[0]] for n in names):
        inputs["models"][spec.name] = {s: build_model(spec, args.cache, manifest, s) for s in args.original_seeds}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    build_s = round(time.perf_counter() - started, 1)

    runs: dict[str, dict[Draw, dict[str, Any]]] = {}
    rows = []
    for name in names:
        runs[name] = run_draws(name, args, inputs)
        if args.peers:
            run_peer_draws(name, args, inputs, runs[name], runs)
        rows += across_draws(name, runs[name])
    table = render_table(rows)
    per_metric = render_per_metric(rows)
    print(table + (f"\n\n{per_metric}" if per_metric else ""))
    peers_text = f"; `{PEERS_ROW}`: RFAU given another request's retrains as peers" if args.peers else ""
    intro = [
        "# rfau scenarios",
        "",
        f"Method seeds {args.seeds}; reference seeds {args.reference_seeds}; originals (training seeds) "
        f"{', '.join(map(str, args.original_seeds))}; forget sets (seeds) {', '.join(map(str, args.forget_seeds))}; "
        f"methods: {args.methods or 'all registered'}{peers_text}. "
        "Share closed = (gap of none - gap) / (gap of none - floor), "
        + (
            "mean over draws (forget set x original) of each draw's mean over method seeds, ± the spread over "
            "draws; pooled share = (sum of none's gaps - sum of the method's) / (sum of none's gaps - sum of the "
            "floors) over the draws, which weighs each draw by its removable gap; "
            if len(args.original_seeds) * len(args.forget_seeds) > 1
            else "mean ± std over method seeds; "
        )
        + "loss AUC gap = |loss-attack AUC - the retrained references' mean|; TA change = TA - the original's TA. "
        "Time: setup + fit of one run.",
        "",
        *[
            f"- `{n}`: {MODELS[n.rsplit('-', 1)[0]].description}; forget {FORGET_TITLES[n.rsplit('-', 1)[1]]}"
            + (f" (class {major})" if n.endswith("-c10") and (major := args.concentrated_class) is not None else "")
            + "; "
            + f"{sum(r['wall_s'] + r.get('peers_wall_s', 0) for r in runs[n].values()):.0f} s"
            for n in names
        ],
        "",
    ]
    record = {
        "benchmark": "scenarios",
        "seeds": args.seeds,
        "reference_seeds": args.reference_seeds,
        "original_seeds": args.original_seeds,
        "forget_seeds": args.forget_seeds,
        "concentrated_class": args.concentrated_class,
        "methods": args.methods or "all",
        "peers": args.peers,
        "inputs": manifest,
        "build_s": build_s,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "scenarios": {
            "/".join([n, draw_label(draw, len(args.forget_seeds), len(args.original_seeds))]).rstrip("/"): {
                "status": r["status"],
                "wall_s": r["wall_s"],
                "command": r["command"],
                **({"peers_error": r["peers_error"]} if "peers_error" in r else {}),
                **(
                    {"error": r["error"]}
                    if r["status"] != "ok"
                    else {
                        "floor": r["bench"]["floor"],
                        "none": r["bench"]["none"],
                        "removable_gap_pp": r["bench"]["removable_gap_pp"],
                        "reference_loss_auc": r["bench"]["reference_loss_auc"],
                        "summary": r["bench"]["summary"],
                    }
                ),
            }
            for n, by_draw in runs.items()
            for draw, r in by_draw.items()
        },
        "table": rows,
    }
    (args.out / "scenarios.json").write_text(json.dumps(record, indent=2) + "\n")
    split = (
        [
            "",
            "The avg gap per metric (pp; the same cells as above, the floor's on the retrain row): a method at the "
            "floor on a metric is as close there as another retrain.",
            "",
            per_metric,
        ]
        if per_metric
        else []
    )
    (args.out / "scenarios.md").write_text("\n".join([*intro, table, *split]) + "\n")
    failed = [
        f"{n} ({draw_label(draw, 2, 2)}{', peers' if 'peers_error' in r else ''})"
        for n, by_draw in runs.items()
        for draw, r in by_draw.items()
        if r["status"] != "ok" or "peers_error" in r
    ]
    print(
        f"\nwrote {args.out / 'scenarios.json'} and scenarios.md in {record['wall_time_s']:.0f}s"
        + (f"; failed: {', '.join(failed)} (see {args.out / 'logs'})" if failed else ""),
        file=sys.stderr,
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
