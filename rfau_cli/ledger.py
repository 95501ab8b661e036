"""The ledger: every deletion request an output answers, oldest first, chained by weight hashes.

An rfau output carries its ledger in report.json (`ledger`) and in `ledger.json`. A run whose
`--model` is an earlier rfau output reads that ledger, appends its own entry, and keeps every
earlier request in force: earlier forgotten rows stay out of D_r and out of the retain audit,
earlier forgotten classes stay masked, and the audit reports `forget_all` (everything
forgotten so far) beside `forget` (this request).

Entry keys (one dict a request; `rfau ledger DIR` prints them):
    request            1-based position in the ledger
    date               UTC ISO 8601 of the run's end
    rfau_version, command ("unlearn" / "retrain"), method, settings, seed
    by, forget_ids     the ids as the forget list gave them (row indices, --id-column values,
                       class ids or names); forget_sha256: sha256 of the list file's bytes
    forget_count, forget_classes, id_column, data_fingerprint
    input_model        the --model path as resolved; built_from: how the weights trained on were made
    input_weights      files hashed for input_sha256 (names), input_sha256 (provenance.weights_digest)
    output_weights     files hashed for output_sha256, relative to the output: the merged
                       weights when written (model.safetensors or its shards), else
                       adapter_model.safetensors
    output_files_sha256  sha256 of every weights file written (relative path -> sha256, the
                       same numbers as report.json's outputs.sha256)

The chain: each entry's input_sha256 is the previous entry's output_sha256, or the sha256 of
another weights file the previous run wrote (its adapter, when the next run started from it).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfau_cli.checkpoint import (
    ADAPTER_WEIGHTS_FILE,
    LEDGER_FILE,
    MODEL_FILE,
    MODEL_INDEX_FILE,
    REPORT_FILE,
    CheckpointRef,
    read_json,
    sha256_file,
)
from rfau_cli.errors import InputError
from rfau_cli.provenance import FORGET_KEY, LEDGER_LENGTH_KEY, read_metadata, weights_digest

LEDGER_KEY = "ledger"
LEDGER_SCHEMA = 1
FROM_CHECKPOINT = "checkpoint"
FROM_MERGED = "merged weights of an rfau output"
FROM_ADAPTER = "rfau adapter output merged into its base, then a new adapter trained on top"


@dataclass(frozen=True)
class InputLedger:
    """What a run knows about its `--model`: earlier requests, and the hash of the weights read."""

    entries: tuple[dict[str, Any], ...]
    source: Path | None  # the rfau output the ledger was read from (None: a plain checkpoint)
    input_weights: tuple[Path, ...]
    input_sha256: str
    built_from: str
    note: str | None = None  # a warning for the user (an rfau output without a ledger)


def output_dir_of(ref: CheckpointRef) -> Path:
    """The directory an rfau output's report.json would be in, for this checkpoint reference."""
    return ref.adapter_dir if ref.adapter_dir is not None else ref.dir


def read_input_ledger(ref: CheckpointRef) -> InputLedger:
    """The ledger of `--model` (empty for a plain checkpoint), checked against its weights.

    Raises:
        InputError: the ledger is unreadable or malformed, ledger.json and report.json disagree,
            the chain is broken, the weights are not those its last entry wrote (modified since:
            `rfau verify` names what changed), or the weights were written by rfau but the
            records that hold the earlier requests (report.json, ledger.json) are missing.
    """
    home = output_dir_of(ref)
    if ref.adapter_dir is not None:
        files = (ref.adapter_dir / ADAPTER_WEIGHTS_FILE,)
    else:
        files = tuple(ref.weight_files)
    digest = weights_digest(files)
    stamp = read_metadata(files[0]) if files else {}
    entries, note = _entries_in(home)
    if ref.adapter_dir is not None and not entries and ref.adapter_dir.name == "adapter":
        entries, note = _entries_in(ref.adapter_dir.parent)  # the adapter/ of a --save both output
        home = ref.adapter_dir.parent if entries else home
    if not entries:
        if LEDGER_LENGTH_KEY in stamp:
            # rfau wrote these weights: without their records the earlier requests would
            # silently stop being kept out of D_r.
            raise InputError(
                f"--model {home}: its weights were written by rfau (request {stamp[LEDGER_LENGTH_KEY]} of a "
                f"ledger) but its ledger is missing (no {LEDGER_FILE}, no `ledger` in a {REPORT_FILE}), so the "
                "earlier requests cannot be carried forward: copy the whole output directory rfau wrote"
            )
        built = FROM_ADAPTER if ref.adapter_dir is not None else FROM_CHECKPOINT
        return InputLedger((), None, files, digest, built, note)
    _check_records(home, entries, stamp)
    last = entries[-1]
    written = set((last.get("output_files_sha256") or {}).values()) | {last.get("output_sha256")}
    if digest not in written:
        raise InputError(
            f"--model {home}: its weights' sha256 ({digest[:12]}) is not what its ledger's last request wrote "
            f"({str(last.get('output_sha256'))[:12]}): the files changed after rfau wrote them; "
            f"run `rfau verify {home}`"
        )
    built = FROM_ADAPTER if ref.adapter_dir is not None else FROM_MERGED
    return InputLedger(tuple(entries), home, files, digest, built)


def _check_records(home: Path, entries: list[dict[str, Any]], stamp: dict[str, str]) -> None:
    """The input's records agree with each other and with its weights' rfau.* metadata, so a
    hand-edited ledger (a request dropped, ids changed in one of the two copies) is refused
    before its earlier requests decide what leaves D_r.

    Raises:
        InputError: naming the disagreement and `rfau verify`.
    """
    verify = f"run `rfau verify {home}`"
    if not (home / REPORT_FILE).is_file():
        raise InputError(
            f"--model {home}: it has {LEDGER_FILE} but no {REPORT_FILE}, so it is not a complete rfau output: "
            f"copy the whole output directory rfau wrote"
        )
    if (home / LEDGER_FILE).is_file():
        in_report = read_json(home / REPORT_FILE).get(LEDGER_KEY)
        if in_report != entries:
            raise InputError(f"--model {home}: {LEDGER_FILE} differs from {REPORT_FILE}'s ledger; {verify}")
    for before, entry in zip(entries, entries[1:]):
        written = {before.get("output_sha256"), *(before.get("output_files_sha256") or {}).values()}
        if entry.get("input_sha256") not in written:
            raise InputError(
                f"--model {home}: its ledger's request {entry.get('request')} did not start from request "
                f"{before.get('request')}'s output (the chain is broken); {verify}"
            )
    length = stamp.get(LEDGER_LENGTH_KEY)
    if length is not None and length != str(len(entries)):
        raise InputError(
            f"--model {home}: its weights were written after {length} request(s), its ledger lists "
            f"{len(entries)}; {verify}"
        )
    forget = stamp.get(FORGET_KEY)
    if forget is not None and forget != entries[-1].get("forget_sha256"):
        raise InputError(
            f"--model {home}: its weights answer the forget list {forget[:12]}, its ledger's last request "
            f"{str(entries[-1].get('forget_sha256'))[:12]}; {verify}"
        )


def _entries_in(directory: Path) -> tuple[list[dict[str, Any]], str | None]:
    if (directory / LEDGER_FILE).is_file():
        return read_ledger_file(directory / LEDGER_FILE), None
    if (directory / REPORT_FILE).is_file():
        report = read_json(directory / REPORT_FILE)
        entries = report.get(LEDGER_KEY)
        if entries:
            return checked_entries(entries, directory / REPORT_FILE), None
        if report.get("tool") == "rfau":
            return [], f"{directory} is an rfau output without a ledger: its earlier request is not carried forward"
    return [], None


def read_ledger_file(path: Path) -> list[dict[str, Any]]:
    """The entries of a ledger.json.

    Raises:
        InputError: not a ledger file, or an entry of the wrong shape.
    """
    value = read_json(path)
    if LEDGER_KEY not in value:
        raise InputError(f"{path} is not an rfau ledger (no '{LEDGER_KEY}' list of requests)")
    return checked_entries(value[LEDGER_KEY], path)


# What the next run reads of each entry, and the type it must have.
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "request": (int,), "by": (str,), "forget_ids": (list,), "forget_classes": (list,), "input_sha256": (str,),
    "output_sha256": (str,), "output_files_sha256": (dict,), "output_weights": (list,),
}


def checked_entries(value: Any, where: Path) -> list[dict[str, Any]]:
    """`value` as ledger entries: a list of objects whose keys a run reads have the right types
    (an edited ledger is bad input, exit 2, not a crash).

    Raises:
        InputError: naming the file, the request and the key.
    """
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise InputError(f"{where}: '{LEDGER_KEY}' must be a list of request objects")
    for number, entry in enumerate(value, 1):
        for key, types in _ENTRY_TYPES.items():
            if not isinstance(entry.get(key), types) or isinstance(entry.get(key), bool):
                raise InputError(f"{where}: request {number} of the ledger has no valid '{key}'")
        if entry["by"] not in ("sample", "class") or not all(isinstance(t, str) for t in entry["forget_ids"]):
            raise InputError(f"{where}: request {number} of the ledger has no valid 'by'/'forget_ids'")
    return [dict(e) for e in value]


def output_weight_files(out: Path) -> tuple[list[Path], dict[str, str]]:
    """(the files output_sha256 covers, sha256 of every weights file) in an output directory."""
    out = Path(out)
    every = {
        str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*.safetensors")) if p.is_file()
    }
    if (out / MODEL_FILE).is_file():
        primary = [out / MODEL_FILE]
    elif (out / MODEL_INDEX_FILE).is_file():
        primary = sorted(p for p in out.glob("model-*.safetensors"))
    else:
        primary = [out / ADAPTER_WEIGHTS_FILE]
    return primary, every


def new_entry(
    *,
    previous: InputLedger,
    ref: CheckpointRef,
    out: Path,
    command: str,
    method: str,
    settings: dict[str, Any],
    seed: int,
    by: str,
    forget_ids: tuple[str, ...],
    forget_sha256: str,
    forget_count: int,
    forget_classes: tuple[int, ...],
    id_column: str | None,
    data_fingerprint: str,
    version: str,
) -> dict[str, Any]:
    """This run's ledger entry, hashed from the weights just written into `out`."""
    primary, every = output_weight_files(out)
    return {
        "request": len(previous.entries) + 1,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "rfau_version": version,
        "command": command,
        "method": method,
        "settings": settings,
        "seed": seed,
        "by": by,
        "forget_ids": list(forget_ids),
        "forget_sha256": forget_sha256,
        "forget_count": int(forget_count),
        "forget_classes": [int(c) for c in forget_classes],
        "id_column": id_column,
        "data_fingerprint": data_fingerprint,
        "input_model": str(output_dir_of(ref) if previous.source is None else previous.source),
        "built_from": previous.built_from,
        "input_weights": [p.name for p in previous.input_weights],
        "input_sha256": previous.input_sha256,
        "output_weights": [str(p.relative_to(out)) for p in primary],
        "output_sha256": weights_digest(primary),
        "output_files_sha256": every,
    }


def write_ledger(entries: list[dict[str, Any]], path: Path) -> None:
    from rfau_cli.report import dumps

    Path(path).write_text(dumps({"schema_version": LEDGER_SCHEMA, "tool": "rfau", LEDGER_KEY: entries}) + "\n")


def read_output_ledger(directory: Path) -> list[dict[str, Any]]:
    """The ledger of an rfau output directory, for `rfau ledger` and `rfau verify`.

    Raises:
        InputError: not a directory, no report.json, or no ledger (written before rfau kept one).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    if not (directory / REPORT_FILE).is_file():
        raise InputError(f"{directory} is not an rfau output: it has no {REPORT_FILE}")
    if (directory / LEDGER_FILE).is_file():
        return read_ledger_file(directory / LEDGER_FILE)
    report = read_json(directory / REPORT_FILE)
    entries = report.get(LEDGER_KEY)
    if entries is None:
        version = report.get("versions", {}).get("rfau", "?") if isinstance(report.get("versions"), dict) else "?"
        raise InputError(
            f"{directory} has no ledger: it was written by rfau {version}, before outputs carried one "
            "(report.json still lists what it forgot)"
        )
    return checked_entries(entries, directory / REPORT_FILE)


def ledger_table(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row of short strings a request, for the `rfau ledger` table and the model card."""
    rows = []
    for e in entries:
        classes = ",".join(map(str, e.get("forget_classes") or [])) or "-"
        rows.append(
            {
                "#": str(e.get("request", "")),
                "date (UTC)": str(e.get("date", "")),
                "by": str(e.get("by", "")),
                "forgotten": str(e.get("forget_count", "")),
                "classes": classes,
                "forget list sha256": str(e.get("forget_sha256", ""))[:12],
                "method": str(e.get("method", "")),
                "input sha256": str(e.get("input_sha256", ""))[:12],
                "output sha256": str(e.get("output_sha256", ""))[:12],
            }
        )
    return rows


def dumps_json(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2)
