"""Datasets in, index sets out: loading, column detection, forget lists, D_f / D_r / test.

Everything that can be checked without a model is checked here, before any training, so bad
input is reported as one line with exit code 2 and nothing written.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import InputError

IMAGE_COLUMNS = ("image", "img", "pixel_values")
TEXT_COLUMNS = ("text", "sentence", "content", "review")
LABEL_COLUMNS = ("label", "labels", "class", "target")
_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() refuses or misreads.
_INTEGER = re.compile(r"-?[0-9]+")
_SIZE_CHECK_BATCH = 1000


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
    lines: tuple[int, ...] = ()  # line number of each id in the file (1-based)

    def where(self, token: str) -> str:
        """`--forget FILE line N` for error messages."""
        name = "stdin" if self.source == "-" else self.source
        line = next((n for t, n in zip(self.ids, self.lines) if t == token), None)
        return f"--forget {name}" + (f" line {line}" if line is not None else "")


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
    # Earlier requests of the input's ledger (ledger.py): their rows found in this data (kept
    # out of D_r and of the retain audit; scored in `forget_all`), their classes, and what
    # could not be found (warnings for the user). In class mode `forget_classes` holds the
    # earlier classes too, so every method masks them; `request_classes` are this request's.
    earlier: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    earlier_classes: tuple[int, ...] = ()
    request_classes: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def forget_all(self) -> np.ndarray:
        """Every row forgotten so far: this request's and the earlier ones found in the data."""
        return np.union1d(self.forget, self.earlier)

    def for_training(self) -> Splits:
        """The splits a method trains on (job.fit_context); the audit scores `self`.

        In class mode the rows of the classes earlier requests forgot are forgotten again with
        this request's (same target: the best kept class), so no method can bring an earlier
        class back while it moves the features of a new one: masking those classes and keeping
        their rows out of D_r left 1.5% of class 3 recognised after class 3, then class 5.
        The audit's `forget` stays this request's rows (`forget_all` has every one).
        """
        if self.by != "class" or not self.earlier_classes:
            return self
        again = np.flatnonzero(np.isin(self.labels, self.earlier_classes))
        return replace(self, forget=np.union1d(self.forget, again))


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
        if path.stat().st_size == 0 or (builder == "parquet" and _parquet_rows(path) == 0):
            raise InputError(f"{flag} {path} has no rows")
        table = _read(lambda: datasets.load_dataset(builder, data_files=str(path), split="train"), path, flag)
        return _non_empty(table, path, flag)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        if _saved_without_rows(path):
            raise InputError(f"{flag} {path} has no rows")
        table = _read(lambda: datasets.load_from_disk(str(path)), path, flag)
        if isinstance(table, datasets.DatasetDict):
            if split not in table:
                raise InputError(f"{flag} {path} has no split {split!r} (splits: {', '.join(table)})")
            table = table[split]
        return _non_empty(table, path, flag)
    if any(p.suffix.lower() in _IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()):
        table = _read(lambda: datasets.load_dataset("imagefolder", data_dir=str(path), split="train"), path, flag)
        return _non_empty(table, path, flag)
    raise InputError(f"{flag} {path} is not a saved dataset, a data file or an image folder")


def _read(load: Any, path: Path, flag: str) -> Any:
    """Run a datasets loader; what it refuses (empty or malformed files) is bad input."""
    from datasets.exceptions import DatasetGenerationError
    from datasets.utils import logging as ds_logging

    level = ds_logging.get_verbosity()
    ds_logging.set_verbosity(ds_logging.CRITICAL)  # its own error log would be a second stderr line
    try:
        return load()
    except (DatasetGenerationError, ValueError, FileNotFoundError, IsADirectoryError, KeyError, IndexError) as err:
        cause = err.__cause__ or err.__context__ if isinstance(err, DatasetGenerationError) else err
        text = str(cause or err).strip().splitlines()
        reason = text[0] if text else type(err).__name__
        raise InputError(f"{flag} {path} cannot be read: {reason}") from None
    finally:
        ds_logging.set_verbosity(level)


def _parquet_rows(path: Path) -> int | None:
    """Row count from the parquet footer (datasets fails on a file without rows); None if unreadable."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(str(path)).metadata.num_rows)
    except Exception:  # noqa: BLE001 - not parquet after all: datasets reports it below
        return None


def _saved_without_rows(path: Path) -> bool:
    """A `save_to_disk` of an empty Dataset has no data file, which `load_from_disk` cannot read."""
    import json

    state = path / "state.json"
    try:
        return state.is_file() and json.loads(state.read_text()).get("_data_files") == []
    except (OSError, ValueError, AttributeError):
        return False


def _non_empty(table: Any, path: Path, flag: str) -> Any:
    if len(table) == 0:
        raise InputError(f"{flag} {path} has no rows")
    return table


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
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            out[i] = int(value)
        else:
            raise InputError(f"{flag}: label {value!r} in row {i} is not a class of the model")
    bad = np.flatnonzero((out < 0) | (out >= num_labels))
    if bad.size:
        raise InputError(
            f"{flag}: label {out[bad[0]]} in row {bad[0]} is outside the model's {num_labels} classes"
        )
    return out


def check_image_sizes(table: Any, column: str, flag: str, expected: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Every image of `column` has one size (or `expected`); return it.

    Reads image headers only (never decodes pixels), in batches.

    Raises:
        InputError: naming the first row whose size differs.
    """
    import datasets

    feature = table.features.get(column)
    encoded = isinstance(feature, datasets.Image)
    rows = table.cast_column(column, datasets.Image(decode=False)) if encoded else table
    first, first_row = expected, None
    for start in range(0, len(rows), _SIZE_CHECK_BATCH):
        for offset, value in enumerate(rows[start : start + _SIZE_CHECK_BATCH][column]):
            size = _encoded_size(value, flag, start + offset) if encoded else tuple(np.shape(value))
            if first is None:
                first, first_row = size, start + offset
            elif size != first:
                seen = f"row {first_row} is" if first_row is not None else "--data images are"
                raise InputError(
                    f"{flag}: the image in row {start + offset} is {_size_text(size)}, {seen} {_size_text(first)}; "
                    "the checkpoint has no image processor (preprocessor_config.json) to resize them"
                )
    return first or ()


def _encoded_size(value: Any, flag: str, row: int) -> tuple[int, ...]:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        with Image.open(source) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, KeyError, TypeError, AttributeError):
        raise InputError(f"{flag}: the image in row {row} cannot be read") from None
    return (height, width)


def _size_text(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size)) if size else "empty"


def read_forget_list(path: str) -> ForgetList:
    """One id a line; `#` comments and blank lines ignored; `-` reads stdin."""
    if path == "-":
        if sys.stdin.isatty():
            sys.stderr.write("rfau: reading forget ids from stdin, one a line (end with Ctrl-D)\n")
            sys.stderr.flush()
        raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise InputError(f"--forget file not found: {file}")
        raw = file.read_bytes()
    ids, lines = [], []
    # utf-8-sig: a byte-order mark (Windows editors) is not part of the first id; CRLF is a newline.
    for number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if token:
            ids.append(token)
            lines.append(number)
    if not ids:
        raise InputError(f"--forget {path} lists no ids")
    return ForgetList(tuple(ids), hashlib.sha256(raw).hexdigest(), path, tuple(lines))


def class_id(token: str, label2id: dict[str, int], count: int) -> int | None:
    """The class a token names: a label of the model, or an id in 0..count-1; None otherwise."""
    if token in label2id:
        return label2id[token]
    if _INTEGER.fullmatch(token) and 0 <= int(token) < count:
        return int(token)
    return None


def resolve_forget_rows(
    forget: ForgetList, table: Any, by: str, labels: np.ndarray, id_column: str | None, id2label: dict[int, str]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Turn forget ids into row indices of D_f (and the forgotten classes for `--by class`)."""
    n = len(labels)
    if by == "class":
        label2id = {name: i for i, name in id2label.items()}
        classes = []
        count = max(len(id2label), int(labels.max()) + 1)
        for token in forget.ids:
            cls = class_id(token, label2id, count)
            if cls is None:
                raise InputError(
                    f"{forget.where(token)}: unknown class {token!r} (classes: 0..{int(labels.max())} or names)"
                )
            classes.append(cls)
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
                raise InputError(f"{forget.where(missing[0])}: id {missing[0]!r} not found in column {id_column!r}")
            rows = np.array(sorted({where[t] for t in forget.ids}), dtype=np.int64)
        else:
            bad = [t for t in forget.ids if not (_INTEGER.fullmatch(t) and 0 <= int(t) < n)]
            if bad:
                raise InputError(f"{forget.where(bad[0])}: {bad[0]!r} is not a row index of the data (0..{n - 1})")
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
    same_size: bool = False,
    earlier: tuple[dict[str, Any], ...] = (),
) -> Splits:
    """Load train (and test) data and split train into D_f and D_r.

    `same_size`: the images reach the model as they are (no processor resizes them), so they
    must all have one size; the first row that differs is named.
    `earlier`: the ledger entries of the input model (ledger.py); their rows leave D_r too.
    """
    train = load_table(data, split)
    columns = detect_columns(train, task, input_column, label_column)
    if same_size and task == "image":
        first = check_image_sizes(train, columns.input, "--data")
    labels = encode_labels(train[columns.label], num_labels, id2label, "--data")
    test, test_labels = None, None
    if test_data is not None:
        test = load_table(test_data, "test" if split == "train" else split, "--test-data")
        test_columns = detect_columns(test, task, input_column, label_column)
        if test_columns != columns:
            test = test.rename_columns(
                {
                    a: b
                    for a, b in zip((test_columns.input, test_columns.label), (columns.input, columns.label))
                    if a != b
                }
            )
        test_labels = encode_labels(test[columns.label], num_labels, id2label, "--test-data")
        if same_size and task == "image":
            check_image_sizes(test, columns.input, "--test-data", first)
    rows, classes = resolve_forget_rows(forget, train, by, labels, id_column, id2label)
    fingerprint = getattr(train, "_fingerprint", "") or ""
    old_rows, old_classes, notes = resolve_earlier_rows(earlier, train, labels, id2label, fingerprint)
    if by != "class" and old_classes and test is not None:
        test, test_labels = _without_classes(test, test_labels, old_classes)
    retain = np.setdiff1d(np.arange(len(labels)), np.union1d(rows, old_rows))
    if retain.size == 0:
        raise InputError("--forget and the earlier requests of the model's ledger cover the whole data")
    masked = tuple(sorted(set(classes) | set(old_classes))) if by == "class" else classes
    return Splits(
        train, test, columns, labels, test_labels, rows, retain, masked, by, fingerprint,
        earlier=old_rows, earlier_classes=old_classes, request_classes=classes, notes=notes,
    )


def _without_classes(test: Any, test_labels: np.ndarray, classes: tuple[int, ...]) -> tuple[Any, np.ndarray]:
    """The test rows of classes other than `classes` (forgotten by earlier class requests).

    A sample request after a class request: the model rightly no longer knows those classes,
    so their test rows are neither non-members like D_f's rows (the sample-mode targets) nor
    a fair test accuracy. Every later use (targets, audit, input cache) sees the same rows.

    Raises:
        InputError: no test row of a kept class is left.
    """
    keep = np.flatnonzero(~np.isin(test_labels, classes))
    if keep.size == 0:
        raise InputError(
            f"--test-data holds only rows of classes {', '.join(map(str, classes))}, which earlier requests "
            "forgot: sample forgetting needs test rows of the kept classes"
        )
    if keep.size == len(test_labels):
        return test, test_labels
    return test.select(keep), test_labels[keep]


def resolve_earlier_rows(
    entries: tuple[dict[str, Any], ...], table: Any, labels: np.ndarray, id2label: dict[int, str], fingerprint: str
) -> tuple[np.ndarray, tuple[int, ...], tuple[str, ...]]:
    """Rows and classes of earlier requests (ledger entries) in this data, leniently.

    An earlier request may have been answered on other data: ids that this data does not hold
    are reported in the notes (a warning), never an error, since the model already forgot them.
    """
    n = len(labels)
    label2id = {name: i for i, name in id2label.items()}
    found: list[np.ndarray] = []
    classes: set[int] = set()
    notes: list[str] = []
    for entry in entries:
        ids = [str(t) for t in entry.get("forget_ids") or []]
        number, missing = entry.get("request", "?"), 0
        if entry.get("by") == "class":
            mine = set()
            for token in ids:
                cls = class_id(token, label2id, max(len(id2label), int(labels.max()) + 1))
                if cls is not None:
                    mine.add(cls)
                else:
                    missing += 1
            classes |= mine
            found.append(np.flatnonzero(np.isin(labels, sorted(mine))))
        elif entry.get("id_column"):
            column = str(entry["id_column"])
            if column not in table.column_names:
                notes.append(
                    f"earlier request {number}: id column {column!r} is not in --data: its rows cannot leave D_r"
                )
                continue
            where = {str(v): i for i, v in enumerate(table[column])}
            found.append(np.array(sorted({where[t] for t in ids if t in where}), dtype=np.int64))
            missing = sum(t not in where for t in ids)
        else:
            good = [int(t) for t in ids if _INTEGER.fullmatch(t) and 0 <= int(t) < n]
            found.append(np.array(sorted(set(good)), dtype=np.int64))
            missing = len(ids) - len(good)
            if entry.get("data_fingerprint") and fingerprint and entry["data_fingerprint"] != fingerprint:
                notes.append(
                    f"earlier request {number} gave row indices of other data (fingerprint "
                    f"{str(entry['data_fingerprint'])[:12]}, --data has {fingerprint[:12]}): check that the rows agree"
                )
        if missing:
            notes.append(f"earlier request {number}: {missing} of its {len(ids)} ids are not in --data")
    rows = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    return rows.astype(np.int64), tuple(sorted(classes)), tuple(notes)
