"""Every file format rfau reads or writes: checkpoints, adapters, merged weights, hashes.

Only safetensors weights are ever loaded (never pickle) and nothing is fetched from a hub.
Outputs are written into a temporary sibling directory that is renamed at the very end, so a
failed run leaves no partial `--out`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfau_cli.errors import InputError, RunError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
MODEL_INDEX_FILE = "model.safetensors.index.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
REPORT_FILE = "report.json"
LEDGER_FILE = "ledger.json"
CARD_FILE = "README.md"
# The records of an output: written after the weights, not in report.json's outputs.sha256
# (which stays byte-identical for one seed); `rfau verify` checks them against the report.
RECORD_FILES = (REPORT_FILE, LEDGER_FILE, CARD_FILE)
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
        base = read_json(path / ADAPTER_CONFIG_FILE).get("base_model_name_or_path")
        if not base:
            raise InputError(f"{path / ADAPTER_CONFIG_FILE} names no base model; pass it with --model")
        ref = resolve_checkpoint(Path(base))
        return _with_adapter(ref, path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"{path} has no {CONFIG_FILE}: not a Hugging Face checkpoint directory")
    config = read_json(config_path)
    weights = _weight_files(path)
    for file in weights:
        read_safetensors_header(file)
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
    task = next((t for s, t in _TASK_SUFFIXES.items() if architecture.endswith(s)), None)
    if task is None:
        raise InputError(
            f"{path}: architecture {architecture or '(none)'} is not an image or sequence "
            "classifier (expected *ForImageClassification or *ForSequenceClassification)"
        )
    id2label, num_labels = _labels(config, config_path)
    ref = CheckpointRef(path.resolve(), task, architecture, num_labels, id2label, weights)
    if adapter is not None:
        adapter = Path(adapter).expanduser()
        if not (adapter / ADAPTER_CONFIG_FILE).is_file():
            raise InputError(f"--adapter {adapter} has no {ADAPTER_CONFIG_FILE}")
        ref = _with_adapter(ref, adapter)
    return ref


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file of the checkpoint, or InputError naming the file and the fault."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not valid JSON (not UTF-8 text)") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} must hold a JSON object, not a {type(value).__name__}")
    return value


def _labels(config: dict[str, Any], path: Path) -> tuple[dict[int, str], int]:
    try:
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
        num_labels = int(config.get("num_labels") or len(id2label) or 2)
    except (TypeError, ValueError, AttributeError):
        raise InputError(f"{path}: id2label/num_labels are not a mapping of class ids and a count") from None
    if num_labels < 1:
        raise InputError(f"{path}: num_labels is {num_labels}")
    return id2label, num_labels


MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor entries and `__metadata__`), checked
    against the file's size.

    Reads only the header (never the tensors), so a truncated, empty or random-bytes file is
    found before anything is loaded.

    Raises:
        InputError: the file is not a complete safetensors file.
    """
    path = Path(path)

    def bad(reason: str) -> InputError:
        return InputError(f"{path} is not a valid safetensors file ({reason}): the checkpoint is corrupt or incomplete")

    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise bad(f"{size} bytes")
            length = int.from_bytes(prefix, "little")
            if length < 2 or length > min(size - 8, MAX_HEADER_BYTES):
                raise bad("bad header length")
            raw = handle.read(length)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("unreadable header") from None
    if not isinstance(header, dict):
        raise bad("unreadable header")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = (int(v) for v in info["data_offsets"])
            tuple(int(d) for d in info["shape"])  # a shape of integers, or the entry is bad
        except (TypeError, KeyError, ValueError):
            raise bad(f"bad entry for tensor {name!r}") from None
        if not 0 <= start <= stop:
            raise bad(f"bad offsets for tensor {name!r}")
        end = max(end, stop)
    if 8 + length + end != size:
        raise bad(f"its header describes {8 + length + end} bytes, the file has {size}")
    return header


def read_safetensors_header(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a .safetensors header (checked as `safetensors_header` does)."""
    header = safetensors_header(path)
    return {name: tuple(int(d) for d in info["shape"]) for name, info in header.items() if name != "__metadata__"}


def _with_adapter(ref: CheckpointRef, adapter_dir: Path) -> CheckpointRef:
    if not (adapter_dir / ADAPTER_WEIGHTS_FILE).is_file():
        raise InputError(f"{adapter_dir} has no {ADAPTER_WEIGHTS_FILE}")
    read_safetensors_header(adapter_dir / ADAPTER_WEIGHTS_FILE)
    weights = ref.weight_files + (adapter_dir.resolve() / ADAPTER_WEIGHTS_FILE,)
    return CheckpointRef(
        ref.dir, ref.task, ref.architecture, ref.num_labels, ref.id2label, weights, adapter_dir.resolve()
    )


def _weight_files(path: Path) -> tuple[Path, ...]:
    if (path / MODEL_FILE).is_file():
        return (path / MODEL_FILE,)
    if (path / MODEL_INDEX_FILE).is_file():
        weight_map = read_json(path / MODEL_INDEX_FILE).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{path / MODEL_INDEX_FILE} has no weight_map")
        files = tuple(sorted({path / str(f) for f in weight_map.values()}))
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InputError(f"{path / MODEL_INDEX_FILE} names {missing[0]}, which is missing")
        return files
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


def weights_sha256(ref: CheckpointRef) -> dict[str, str]:
    """{file name: sha256} of a checkpoint's weight files: how reports and caches name the weights."""
    return {p.name: sha256_file(p) for p in ref.weight_files}


def sha256_tree(directory: Path, exclude: tuple[str, ...] = RECORD_FILES) -> dict[str, str]:
    """sha256 of every file in an output directory, keyed by relative path (the records of
    RECORD_FILES at its top level excluded)."""
    return {
        str(p.relative_to(directory)): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and str(p.relative_to(directory)) not in exclude
    }


# `.OUT.tmp-PID-START-RANDOM`: the temporary sibling of `--out` a run writes into. PID and
# START (the process's start time, from /proc; 0 where unknown) tell a live run's directory
# from one left by a killed run, which the next run to the same `--out` removes.
_TMP_SUFFIX = re.compile(r"(\d+)-(\d+)-[A-Za-z0-9_]+")


@dataclass
class OutputClaim:
    """A claimed `--out`: its temporary sibling exists, so no other run can take it."""

    out: Path
    tmp: Path


def check_output_dir(out: Path) -> None:
    """Refuse an `--out` that cannot be written, before any work (nothing is ever overwritten).

    Raises:
        InputError: `out` exists, its parent is missing or not writable, or a live rfau run
            is writing it.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InputError(f"--out {out} already exists; choose a new directory")
    if not out.parent.is_dir():
        raise InputError(f"parent directory of --out does not exist: {out.parent}")
    if not _is_main_process():
        return  # the main process claims `out`; the others never write
    _remove_stale_temporaries(out)
    _refuse_live_claims(out)
    probe = _make_tmp(out)  # the only sure test of writability (root, read-only mounts, ACLs)
    probe.rmdir()


@contextlib.contextmanager
def claim_output_dir(out: Path) -> Iterator[OutputClaim | None]:
    """Claim `--out` for this run: create its temporary sibling now, remove it unless committed.

    Only the main process claims (None elsewhere): with several processes only it writes.
    A second run to the same `--out` fails here with InputError (exit 2).
    """
    if not _is_main_process():
        yield None
        return
    claim = _claim(Path(out))
    try:
        yield claim
    finally:
        shutil.rmtree(claim.tmp, ignore_errors=True)  # gone already when committed


@contextlib.contextmanager
def atomic_output_dir(out: Path, claim: OutputClaim | None = None) -> Iterator[Path]:
    """Yield the temporary sibling of `out` (claimed now unless `claim` is given), renamed to
    `out` only if the block succeeds; files and directories get the umask's permissions."""
    out = Path(out)
    tmp = claim.tmp if claim is not None else _claim(out).tmp
    try:
        yield tmp
        _apply_umask(tmp)
        if out.exists():
            raise RunError(f"--out {out} was created by someone else during the run; the result was discarded")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _claim(out: Path) -> OutputClaim:
    check_output_dir(out)
    tmp = _make_tmp(out)
    try:
        _refuse_live_claims(out, mine=tmp)
    except InputError:
        tmp.rmdir()
        raise
    return OutputClaim(out, tmp)


def _make_tmp(out: Path) -> Path:
    prefix = f".{out.name}.tmp-{os.getpid()}-{_start_time(os.getpid())}-"
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    except OSError as err:
        raise InputError(f"cannot write --out {out}: {out.parent}: {err.strerror or err}") from None


def _temporaries(out: Path) -> Iterator[tuple[Path, int, int]]:
    prefix = f".{out.name}.tmp-"
    with contextlib.suppress(OSError):
        for entry in out.parent.iterdir():
            match = _TMP_SUFFIX.fullmatch(entry.name[len(prefix) :]) if entry.name.startswith(prefix) else None
            if match:
                yield entry, int(match.group(1)), int(match.group(2))


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    except OSError:
        return True
    now = _start_time(pid)
    return start == 0 or now == 0 or now == start  # same pid, other start time: reused pid


def _remove_stale_temporaries(out: Path) -> None:
    """Remove `.OUT.tmp-*` directories of runs that no longer exist (SIGKILL, power loss)."""
    for entry, pid, start in _temporaries(out):
        if not _alive(pid, start):
            shutil.rmtree(entry, ignore_errors=True)


def _refuse_live_claims(out: Path, mine: Path | None = None) -> None:
    # By name: from Python 3.12 mkdtemp returns an absolute path where iterdir of a relative
    # `--out`'s parent gives relative ones, and a run took its own claim for another's.
    for entry, pid, start in _temporaries(out):
        if (mine is None or entry.name != mine.name) and _alive(pid, start):
            raise InputError(f"--out {out} is being written by another rfau run (pid {pid}); wait for it or "
            f"choose another --out")


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), or 0 where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch, or a single process (readable before accelerate)."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def current_umask() -> int:
    """This process's umask, read without changing it where /proc allows."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("Umask:"))
        return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """Give outputs the permissions the user's umask asks for (libraries write 0600/0700)."""
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def save_model(model: Any, ref: CheckpointRef, out: Path, save: str, head_changed: bool = False) -> Any:
    """Write the adapter and/or merged weights (+ processor files) into `out`.

    adapter: the adapter at the top of `out`; merged: a plain checkpoint; both: the merged
    checkpoint at the top and the adapter in `out/adapter/` (see ADAPTER_SUBDIR).

    When `ref` is an adapter output (the new adapter was trained on its base with that adapter
    merged in), the adapter written is both in one, on the same base: peft's "cat" combination
    (rank r1 + r2, exact: the two low-rank updates side by side), so the output is again
    "base + one adapter".

    `head_changed`: the method changed the classifier head (RFAU moves a concentrated request's
    class prior into its bias: head_shift.py). The head is no LoRA target, so the adapter then
    carries the whole head as peft `modules_to_save`; so does one combined with an input adapter
    that carried its own.

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
        if ref.adapter_dir is not None:
            _save_combined_adapter(model, ref, adapter_dir)
        else:
            model.save_pretrained(str(adapter_dir))
        if head_changed or (ref.adapter_dir is not None and _carries_head(ref.adapter_dir)):
            _carry_head(model, adapter_dir)
        (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's model-card stub says nothing true
        _sort_adapter_config(adapter_dir / ADAPTER_CONFIG_FILE)
    if save in ("merged", "both"):
        merged = model.merge_and_unload() if is_peft else model
        merged.save_pretrained(str(out))
        copy_processor_files(ref.dir, out)
        return merged
    return model


def _save_combined_adapter(model: Any, ref: CheckpointRef, adapter_dir: Path) -> None:
    """The input's adapter and the one just trained, as one adapter on the input's base."""
    from dataclasses import replace

    from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import save_file

    assert ref.adapter_dir is not None
    base = load_model(replace(ref, adapter_dir=None, weight_files=tuple(f for f in ref.weight_files
                                                                        if f.parent != ref.adapter_dir)))
    combo = PeftModel.from_pretrained(base, str(ref.adapter_dir), adapter_name="previous")
    combo.add_adapter("request", model.peft_config["default"])
    set_peft_model_state_dict(combo, get_peft_model_state_dict(model, adapter_name="default"), adapter_name="request")
    combo.add_weighted_adapter(["previous", "request"], [1.0, 1.0], "combined", combination_type="cat")
    config = combo.peft_config["combined"]
    config.base_model_name_or_path = str(ref.dir)
    config.inference_mode = True
    adapter_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(adapter_dir))
    state = get_peft_model_state_dict(combo, adapter_name="combined")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(adapter_dir / ADAPTER_WEIGHTS_FILE),
              metadata={"format": "pt"})


def _carries_head(adapter_dir: Path) -> bool:
    """The adapter replaces modules of its base (peft `modules_to_save`: a head RFAU shifted)."""
    return bool(json.loads((adapter_dir / ADAPTER_CONFIG_FILE).read_text()).get("modules_to_save"))


def _carry_head(model: Any, adapter_dir: Path) -> None:
    """Write the model's classifier head (its weight and bias as they are now) into the adapter
    at `adapter_dir` as `modules_to_save`, in peft's file format (keys `base_model.model.<name>.*`,
    the name the module has in the transformers model), so that base + adapter is the trained
    model, head included."""
    from safetensors.torch import load_file, save_file

    from rfau_cli.features import find_head

    inner = model.get_base_model()
    head = find_head(inner)
    name = next(n for n, module in inner.named_modules() if module is head)
    weights = adapter_dir / ADAPTER_WEIGHTS_FILE
    state = load_file(str(weights))
    for part in ("weight", "bias"):
        tensor = getattr(head, part, None)
        if tensor is not None:
            state[f"base_model.model.{name}.{part}"] = tensor.detach().contiguous().cpu()
    save_file(state, str(weights), metadata={"format": "pt"})
    config = json.loads((adapter_dir / ADAPTER_CONFIG_FILE).read_text())
    config["modules_to_save"] = sorted({*(config.get("modules_to_save") or []), name})
    (adapter_dir / ADAPTER_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


def _sort_adapter_config(path: Path) -> None:
    """peft writes its sets (target_modules) in hash order: sort them, so one seed gives one file."""
    config = json.loads(path.read_text())
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key], key=str)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


def model_skeleton(ref: CheckpointRef) -> Any | None:
    """The checkpoint's architecture built from its config on the meta device: module names,
    types and parameter shapes without reading or allocating any weight.

    Returns None for an architecture that cannot be built on the meta device (its checks are
    then left to loading).

    Raises:
        InputError: transformers refuses the config (unknown model_type, inconsistent values).
    """
    import torch
    import transformers

    auto = (
        transformers.AutoModelForImageClassification
        if ref.task == IMAGE_TASK
        else transformers.AutoModelForSequenceClassification
    )
    with _quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(str(ref.dir), local_files_only=True)
            with torch.device("meta"):
                return auto.from_config(config)
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
            message = str(err).strip().splitlines()
            raise InputError(
                f"{ref.dir / CONFIG_FILE}: transformers cannot build {ref.architecture or 'the model'} from it"
                f" ({message[0] if message else type(err).__name__})"
            ) from None
        except Exception:  # noqa: BLE001 - not buildable on meta tensors: not the user's fault
            return None


def check_model(
    ref: CheckpointRef,
    *,
    device: str = "auto",
    taps: str | None = None,
    target_modules: tuple[str, ...] | None = None,
) -> None:
    """Every check that needs the model's config, run right after its header is read and
    before any data is loaded: device, config vs weights (label count), taps, LoRA targets.

    `target_modules` None: the method uses no LoRA adapter (nothing to check).

    Raises:
        InputError: a flag the model cannot satisfy, or a config that does not match the weights.
    """
    from rfau_cli.features import TapSpec

    _check_device(device)
    key = (
        str(ref.dir),
        ref.weight_files,
        tuple(_mtime(f) for f in (ref.dir / CONFIG_FILE, *ref.weight_files)),
        taps,
        None if target_modules is None else tuple(target_modules),
    )
    if key in _CHECKED:  # a bench checks the same checkpoint once per run: build it once
        return
    spec = TapSpec.parse(taps) if taps is not None else None
    skeleton = model_skeleton(ref)
    if spec is not None:
        spec.check(_count_hidden_states(skeleton, ref) if skeleton is not None else None)
    if skeleton is None:
        return
    _check_weights_match(ref, skeleton)
    if target_modules is not None:
        from rfau_cli.lora import find_lora_targets

        find_lora_targets(skeleton, tuple(target_modules))
    _CHECKED.add(key)


_CHECKED: set[tuple[Any, ...]] = set()  # check_model keys that passed, in this process


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _check_device(device: str) -> None:
    """Whether the device asked for is there (the values themselves: RuntimeSettings)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")


def _check_weights_match(ref: CheckpointRef, skeleton: Any) -> None:
    """The config's shapes against the weights' header: above all the head's label count."""
    from rfau_cli.features import find_head

    stored: dict[str, tuple[int, ...]] = {}
    for file in ref.weight_files:
        if ref.adapter_dir is None or file.parent != ref.adapter_dir:
            stored.update(read_safetensors_header(file))
    head = find_head(skeleton)
    head_name = next(name for name, module in skeleton.named_modules() if module is head)
    head_key = f"{head_name}.weight"
    if head_key in stored and stored[head_key][0] != ref.num_labels:
        raise InputError(
            f"{ref.dir}: {CONFIG_FILE} has {ref.num_labels} labels but the weights' classifier head "
            f"({head_key}) has {stored[head_key][0]} outputs"
        )
    for name, tensor in skeleton.state_dict().items():
        if name in stored and tuple(tensor.shape) != stored[name]:
            raise InputError(
                f"{ref.dir}: {CONFIG_FILE} does not match the weights: {name} is {list(stored[name])} in the "
                f"weights, {list(tensor.shape)} by the config"
            )


def _count_hidden_states(skeleton: Any, ref: CheckpointRef) -> int | None:
    """How many `hidden_states` the model returns: one forward on the meta device (no compute),
    else the config's layer count; None when neither tells."""
    import torch

    config = skeleton.config
    try:
        if ref.task == IMAGE_TASK:
            size = getattr(config, "image_size", 224)
            height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
            inputs = {
                "pixel_values": torch.empty(1, int(getattr(config, "num_channels", 3)), height, width, device="meta")
            }
        else:
            inputs = {"input_ids": torch.zeros(1, 8, dtype=torch.long, device="meta")}
        with torch.no_grad():
            states = skeleton(**inputs, output_hidden_states=True).hidden_states
        if states is not None:
            return len(states)
    except Exception:  # noqa: BLE001 - a model that cannot run on meta tensors: ask its config
        pass
    if isinstance(getattr(config, "num_hidden_layers", None), int):
        return config.num_hidden_layers + 1
    if isinstance(getattr(config, "depths", None), (list, tuple)):
        return len(config.depths) + 1
    return None


def copy_processor_files(src: Path, dst: Path) -> None:
    for name in PROCESSOR_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
