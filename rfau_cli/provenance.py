"""Provenance inside the weights: `rfau.*` keys in the header of every .safetensors rfau writes.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor offsets
and an optional `__metadata__` table of string -> string) and the raw tensor bytes. The
metadata is added by rewriting the header and copying the tensor bytes unchanged, streamed,
so it works for any size of model and any writer (transformers' `save_pretrained`, peft's
adapter save) without loading a tensor or importing torch. Existing metadata (transformers'
`format: pt`, which it checks on load) is kept.

Hashes of weights ("weights digests") are defined here too, so the ledger, the metadata and
`rfau verify` agree on what "the sha256 of the weights" means:
- one file: the sha256 of that file (the same hashing as report.json's `outputs.sha256`);
- a sharded checkpoint: the sha256 of the lines `<sha256>  <file name>\\n` of its shards,
  sorted by name (the `sha256sum` format), so one number still names the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rfau_cli.checkpoint import safetensors_header, sha256_file
from rfau_cli.errors import InputError

PREFIX = "rfau."
VERSION_KEY = "rfau.version"
INPUT_KEY = "rfau.input_sha256"
FORGET_KEY = "rfau.forget_sha256"
METHOD_KEY = "rfau.method"
SEED_KEY = "rfau.seed"
LEDGER_LENGTH_KEY = "rfau.ledger_length"
METADATA_KEYS = (VERSION_KEY, INPUT_KEY, FORGET_KEY, METHOD_KEY, SEED_KEY, LEDGER_LENGTH_KEY)
_ALIGN = 8  # the safetensors writer pads its header with spaces to 8 bytes; so do we
_COPY_BLOCK = 1 << 24


def weights_digest(files: Iterable[Path]) -> str:
    """One sha256 for a set of weight files (see the module docstring)."""
    files = sorted(Path(f) for f in files)
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{sha256_file(f)}  {f.name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` table of a .safetensors file (empty when it has none), read without torch.

    Raises:
        InputError: the file is not a complete safetensors file.
    """
    meta = safetensors_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Merge `metadata` into the header of the .safetensors file at `path`, in place (atomic).

    The tensor bytes are copied unchanged; only the header grows. Values must be strings,
    as the format requires.
    """
    path = Path(path)
    if any(not isinstance(v, str) for v in metadata.values()):
        raise TypeError("safetensors metadata values must be strings")
    header = safetensors_header(path)
    with open(path, "rb") as src:
        src.seek(8 + int.from_bytes(src.read(8), "little"))  # past the old header, to the tensor bytes
        header["__metadata__"] = {**(header.get("__metadata__") or {}), **metadata}
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-(8 + len(raw)) % _ALIGN)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(len(raw).to_bytes(8, "little"))
                dst.write(raw)
                shutil.copyfileobj(src, dst, _COPY_BLOCK)
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def provenance_metadata(
    *, version: str, input_sha256: str, forget_sha256: str, method: str, seed: int, ledger_length: int
) -> dict[str, str]:
    """The `rfau.*` keys every written weights file carries (string values, as safetensors requires)."""
    return {
        VERSION_KEY: version,
        INPUT_KEY: input_sha256,
        FORGET_KEY: forget_sha256,
        METHOD_KEY: method,
        SEED_KEY: str(seed),
        LEDGER_LENGTH_KEY: str(ledger_length),
    }


def stamp_weights(directory: Path, metadata: dict[str, str]) -> list[Path]:
    """Add `metadata` to every .safetensors file under `directory`; return them, sorted."""
    files = sorted(p for p in Path(directory).rglob("*.safetensors") if p.is_file())
    for file in files:
        add_metadata(file, metadata)
    return files


def check_metadata(path: Path, expected: dict[str, str]) -> str | None:
    """None when the file's `rfau.*` metadata holds `expected`; else what differs (one line)."""
    try:
        found = read_metadata(path)
    except InputError as err:
        return str(err)
    for key, value in expected.items():
        if found.get(key) != value:
            return f"{path.name}: metadata {key} is {found.get(key)!r}, expected {value!r}"
    return None
