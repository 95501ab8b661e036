"""Every file format rfau reads or writes: checkpoints, adapters, merged weights, hashes.

Only safetensors weights are ever loaded (never pickle) and nothing is fetched from a hub.
Outputs are written into a temporary sibling directory that is renamed at the very end, so a
failed run leaves no partial `--out`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfau_cli.errors import InputError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
MODEL_INDEX_FILE = "model.safetensors.index.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
REPORT_FILE = "report.json"
# With --save both the adapter goes one level down: transformers applies an adapter_config.json
# it finds next to config.json on load, which would add the adapter to already-merged weights.
ADAPTER_SUBDIR = "adapter"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")
# Preprocessing files copied next to merged weights so the output is a complete checkpoint.
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
IMAGE_TASK = "image"
TEXT_TASK = "text"
_TASK_SUFFIXES = {"ForImageClassification": IMAGE_TASK, "ForSequenceClassification": TEXT_TASK}


@dataclass(frozen=True)
class CheckpointRef:
    """A validated checkpoint location, resolved without importing torch.

    `adapter_dir` is set when the given path was an adapter-only `rfau unlearn` output: the
    weights then come from its base checkpoint plus that adapter.
    """

    dir: Path
    task: str
    architecture: str
    num_labels: int
    id2label: dict[int, str]
    weight_files: tuple[Path, ...]
    adapter_dir: Path | None = None


def resolve_checkpoint(path: Path, adapter: Path | None = None) -> CheckpointRef:
    """Validate a checkpoint directory (or its model.safetensors) before any work.

    Raises:
        InputError: missing directory or config, pickle-only weights, not a classifier.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"model not found: {path}")
    if path.is_file():
        if path.name.endswith(".safetensors"):
            path = path.parent
        elif path.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
            raise InputError(f"{path} is a pickle checkpoint; rfau loads only safetensors weights")
        else:
            raise InputError(f"{path} is not a checkpoint directory or a .safetensors file")
    if (path / ADAPTER_CONFIG_FILE).is_file() and not (path / CONFIG_FILE).is_file():
        if adapter is not None:
            raise InputError(f"{path} is an adapter directory; pass its base model with --model")
        base = json.loads((path / ADAPTER_CONFIG_FILE).read_text()).get("base_model_name_or_path")
        if not base:
            raise InputError(f"{path / ADAPTER_CONFIG_FILE} names no base model; pass it with --model")
        ref = resolve_checkpoint(Path(base))
        return _with_adapter(ref, path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"{path} has no {CONFIG_FILE}: not a Hugging Face checkpoint directory")
    weights = _weight_files(path)
    config = json.loads(config_path.read_text())
    architecture = next(iter(config.get("architectures") or []), "")
    task = next((t for s, t in _TASK_SUFFIXES.items() if architecture.endswith(s)), None)
    if task is None:
        raise InputError(
            f"{path}: architecture {architecture or '(none)'} is not an image or sequence "
            "classifier (expected *ForImageClassification or *ForSequenceClassification)"
        )
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    num_labels = int(config.get("num_labels") or len(id2label) or 2)
    ref = CheckpointRef(path.resolve(), task, architecture, num_labels, id2label, weights)
    if adapter is not None:
        adapter = Path(adapter).expanduser()
        if not (adapter / ADAPTER_CONFIG_FILE).is_file():
            raise InputError(f"--adapter {adapter} has no {ADAPTER_CONFIG_FILE}")
        ref = _with_adapter(ref, adapter)
    return ref


def _with_adapter(ref: CheckpointRef, adapter_dir: Path) -> CheckpointRef:
    if not (adapter_dir / ADAPTER_WEIGHTS_FILE).is_file():
        raise InputError(f"{adapter_dir} has no {ADAPTER_WEIGHTS_FILE}")
    weights = ref.weight_files + (adapter_dir.resolve() / ADAPTER_WEIGHTS_FILE,)
    return CheckpointRef(
        ref.dir, ref.task, ref.architecture, ref.num_labels, ref.id2label, weights, adapter_dir.resolve()
    )


def _weight_files(path: Path) -> tuple[Path, ...]:
    if (path / MODEL_FILE).is_file():
        return (path / MODEL_FILE,)
    if (path / MODEL_INDEX_FILE).is_file():
        index = json.loads((path / MODEL_INDEX_FILE).read_text())
        return tuple(sorted({path / f for f in index.get("weight_map", {}).values()}))
    pickles = [name for name in PICKLE_FILES if (path / name).exists()]
    if pickles:
        raise InputError(
            f"{path} holds only pickle weights ({pickles[0]}); rfau loads only safetensors: "
            "convert with `model.save_pretrained(dir, safe_serialization=True)`"
        )
    raise InputError(f"{path} has no {MODEL_FILE}")


def load_model(ref: CheckpointRef) -> Any:
    """Load the classifier in eval mode (with its adapter applied, when the ref names one)."""
    import transformers

    auto = (
        transformers.AutoModelForImageClassification
        if ref.task == IMAGE_TASK
        else transformers.AutoModelForSequenceClassification
    )
    with _quiet_transformers():
        model = auto.from_pretrained(str(ref.dir), use_safetensors=True, local_files_only=True)
    if ref.adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(ref.adapter_dir), is_trainable=False)
    return model.eval()


def load_processor(ref: CheckpointRef) -> Any | None:
    """The checkpoint's own image processor or tokenizer, or None when it ships none."""
    import transformers

    with _quiet_transformers():
        if ref.task == TEXT_TASK:
            if not any((ref.dir / f).exists() for f in ("tokenizer.json", "vocab.txt", "vocab.json")):
                raise InputError(f"{ref.dir} is a text classifier without tokenizer files")
            return transformers.AutoTokenizer.from_pretrained(str(ref.dir), local_files_only=True)
        if (ref.dir / "preprocessor_config.json").exists():
            return transformers.AutoImageProcessor.from_pretrained(str(ref.dir), local_files_only=True)
    return None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints load reports and progress bars; stdout belongs to results."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(directory: Path, exclude: tuple[str, ...] = (REPORT_FILE,)) -> dict[str, str]:
    """sha256 of every file in an output directory, keyed by relative path."""
    return {
        str(p.relative_to(directory)): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in exclude
    }


def check_output_dir(out: Path) -> None:
    """Refuse an existing `--out` before any work (DESIGN.md: nothing is ever overwritten)."""
    if out.exists():
        raise InputError(f"--out {out} already exists; choose a new directory")
    if not out.parent.exists():
        raise InputError(f"parent directory of --out does not exist: {out.parent}")


@contextlib.contextmanager
def atomic_output_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out`, renamed to `out` only if the block succeeds."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model(model: Any, ref: CheckpointRef, out: Path, save: str) -> Any:
    """Write the adapter and/or merged weights (+ processor files) into `out`.

    adapter: the adapter at the top of `out`; merged: a plain checkpoint; both: the merged
    checkpoint at the top and the adapter in `out/adapter/` (see ADAPTER_SUBDIR).

    Returns the model to evaluate afterwards (the merged one when it was merged), so the
    report's numbers are those of the files written.
    """
    from peft import PeftModel

    is_peft = isinstance(model, PeftModel)
    if save in ("adapter", "both"):
        if not is_peft:
            raise InputError("this method trains all weights: use --save merged")
        adapter_dir = out if save == "adapter" else out / ADAPTER_SUBDIR
        model.peft_config["default"].base_model_name_or_path = str(ref.dir)
        model.save_pretrained(str(adapter_dir))
        (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's model-card stub says nothing true
    if save in ("merged", "both"):
        merged = model.merge_and_unload() if is_peft else model
        merged.save_pretrained(str(out))
        copy_processor_files(ref.dir, out)
        return merged
    return model


def copy_processor_files(src: Path, dst: Path) -> None:
    for name in PROCESSOR_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
