"""Datasets in, index sets out: loading, column detection, forget lists, D_f / D_r / test.

Everything that can be checked without a model is checked here, before any training, so bad
input is reported as one line with exit code 2 and nothing written.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import InputError

IMAGE_COLUMNS = ("image", "img", "pixel_values")
TEXT_COLUMNS = ("text", "sentence", "content", "review")
LABEL_COLUMNS = ("label", "labels", "class", "target")
_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Columns:
    """Which column holds the input (image or text) and which the label."""

    input: str
    label: str


@dataclass(frozen=True)
class ForgetList:
    """The forget file's ids as written, and its sha256 (for the report)."""

    ids: tuple[str, ...]
    sha256: str
    source: str


@dataclass(frozen=True)
class Splits:
    """Row indices of D_f and D_r in the training table, the labels, and the test table."""

    train: Any
    test: Any | None
    columns: Columns
    labels: np.ndarray
    test_labels: np.ndarray | None
    forget: np.ndarray
    retain: np.ndarray
    forget_classes: tuple[int, ...]
    by: str
    fingerprint: str


def load_table(path: Path, split: str = "train", flag: str = "--data") -> Any:
    """Read a `save_to_disk` dir, a DatasetDict split, a parquet/csv/json(l) file or an image folder."""
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{flag} not found: {path}")
    datasets.disable_progress_bars()
    if path.is_file():
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InputError(f"{flag} {path}: unsupported file type (use parquet, csv, json or jsonl)")
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        table = datasets.load_from_disk(str(path))
        if isinstance(table, datasets.DatasetDict):
            if split not in table:
                raise InputError(f"{flag} {path} has no split {split!r} (splits: {', '.join(table)})")
            table = table[split]
        return table
    if any(p.suffix.lower() in _IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()):
        return datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
    raise InputError(f"{flag} {path} is not a saved dataset, a data file or an image folder")


def detect_columns(table: Any, task: str, input_column: str | None, label_column: str | None) -> Columns:
    """Find the input and label columns by name, or check the ones given with flags."""
    names = list(table.column_names)
    wanted = IMAGE_COLUMNS if task == "image" else TEXT_COLUMNS
    input_col = input_column or next((c for c in wanted if c in names), None)
    label_col = label_column or next((c for c in LABEL_COLUMNS if c in names), None)
    for col, what, flag in ((input_col, task, "--input-column"), (label_col, "label", "--label-column")):
        if col is None or col not in names:
            raise InputError(f"no {what} column found (columns: {', '.join(names)}); name it with {flag}")
    return Columns(input_col, label_col)


def encode_labels(values: list[Any], num_labels: int, id2label: dict[int, str], flag: str) -> np.ndarray:
    """Labels as class ids; label names are mapped through the model's id2label."""
    label2id = {name: i for i, name in id2label.items()}
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            out[i] = int(value)
        elif isinstance(value, str) and value in label2id:
            out[i] = label2id[value]
        elif isinstance(value, str) and value.lstrip("-").isdigit():
            out[i] = int(value)
        else:
            raise InputError(f"{flag}: label {value!r} in row {i} is not a class of the model")
    bad = np.flatnonzero((out < 0) | (out >= num_labels))
    if bad.size:
        raise InputError(
            f"{flag}: label {out[bad[0]]} in row {bad[0]} is outside the model's {num_labels} classes"
        )
    return out


def read_forget_list(path: str) -> ForgetList:
    """One id a line; `#` comments and blank lines ignored; `-` reads stdin."""
    if path == "-":
        raw = sys.stdin.read().encode()
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise InputError(f"--forget file not found: {file}")
        raw = file.read_bytes()
    ids = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        token = line.split("#", 1)[0].strip()
        if token:
            ids.append(token)
    if not ids:
        raise InputError(f"--forget {path} lists no ids")
    return ForgetList(tuple(ids), hashlib.sha256(raw).hexdigest(), path)


def resolve_forget_rows(
    forget: ForgetList, table: Any, by: str, labels: np.ndarray, id_column: str | None, id2label: dict[int, str]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Turn forget ids into row indices of D_f (and the forgotten classes for `--by class`)."""
    n = len(labels)
    if by == "class":
        label2id = {name: i for i, name in id2label.items()}
        classes = []
        for token in forget.ids:
            if token in label2id:
                classes.append(label2id[token])
            elif token.lstrip("-").isdigit() and 0 <= int(token) < max(len(id2label), int(labels.max()) + 1):
                classes.append(int(token))
            else:
                raise InputError(f"--forget: unknown class {token!r} (classes: 0..{int(labels.max())} or names)")
        classes = tuple(sorted(set(classes)))
        rows = np.flatnonzero(np.isin(labels, classes))
        if rows.size == 0:
            raise InputError(f"--forget: no training rows have class {', '.join(map(str, classes))}")
    elif by == "sample":
        classes = ()
        if id_column:
            if id_column not in table.column_names:
                raise InputError(f"--id-column {id_column!r} not in data (columns: {', '.join(table.column_names)})")
            where = {str(v): i for i, v in enumerate(table[id_column])}
            missing = [t for t in forget.ids if t not in where]
            if missing:
                raise InputError(f"--forget: id {missing[0]!r} not found in column {id_column!r}")
            rows = np.array(sorted({where[t] for t in forget.ids}), dtype=np.int64)
        else:
            bad = [t for t in forget.ids if not t.isdigit() or int(t) >= n]
            if bad:
                raise InputError(f"--forget: {bad[0]!r} is not a row index of the data (0..{n - 1})")
            rows = np.array(sorted({int(t) for t in forget.ids}), dtype=np.int64)
    else:
        raise InputError(f"--by must be sample or class, not {by!r}")
    if rows.size >= n:
        raise InputError("--forget covers the whole training data: nothing would be kept")
    return rows, classes


def load_splits(
    data: Path,
    forget: ForgetList,
    *,
    task: str,
    num_labels: int,
    id2label: dict[int, str],
    by: str = "sample",
    split: str = "train",
    test_data: Path | None = None,
    id_column: str | None = None,
    input_column: str | None = None,
    label_column: str | None = None,
) -> Splits:
    """Load train (and test) data and split train into D_f and D_r."""
    train = load_table(data, split)
    columns = detect_columns(train, task, input_column, label_column)
    labels = encode_labels(train[columns.label], num_labels, id2label, "--data")
    test, test_labels = None, None
    if test_data is not None:
        test = load_table(test_data, "test" if split == "train" else split, "--test-data")
        test_columns = detect_columns(test, task, input_column, label_column)
        if test_columns != columns:
            test = test.rename_columns(
                {a: b for a, b in zip((test_columns.input, test_columns.label), (columns.input, columns.label)) if a != b}
            )
        test_labels = encode_labels(test[columns.label], num_labels, id2label, "--test-data")
    rows, classes = resolve_forget_rows(forget, train, by, labels, id_column, id2label)
    retain = np.setdiff1d(np.arange(len(labels)), rows)
    fingerprint = getattr(train, "_fingerprint", "") or ""
    return Splits(train, test, columns, labels, test_labels, rows, retain, classes, by, fingerprint)
