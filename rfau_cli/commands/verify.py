"""`rfau verify DIR`: do the files of an rfau output still say what its report says?

    read report.json -> outputs.sha256 (every file, and no file the report does not list)
    -> ledger.json is the report's ledger -> the ledger chain -> the last entry's output
    weights are the files in DIR -> rfau.* metadata of every .safetensors -> README.md is
    the card the report renders to

Every check runs (the JSON lists them all); the first that fails names the mismatch and
makes the exit code 1. DIR that is not an rfau output (no directory, no report.json, not
JSON) is bad input: exit 2. No torch is imported: only hashes and headers are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfau_cli.checkpoint import CARD_FILE, LEDGER_FILE, RECORD_FILES, REPORT_FILE, read_json, sha256_file
from rfau_cli.errors import InputError, RfauError

EXIT_MISMATCH = 1


class VerifyFailed(RfauError):
    """A hash, the ledger chain or the metadata does not match (exit 1, like a failed gate)."""

    exit_code = EXIT_MISMATCH


@dataclass(frozen=True)
class Check:
    """One verified claim: what was checked, and the mismatch (None: it holds)."""

    name: str
    detail: str
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None


def run_verify(directory: Path) -> dict[str, Any]:
    """Every check of `directory`; the result's `passed` is False when any failed.

    Raises:
        InputError: `directory` is not an rfau output.
    """
    directory = Path(directory)
    report = _read_report(directory)
    checks = [*_check_outputs(directory, report)]
    ledger = report.get("ledger")
    if isinstance(ledger, list) and ledger:
        checks += _check_ledger(directory, report, ledger)
        checks += _check_metadata(directory, report, ledger)
        checks.append(_check_card(directory, report))
    else:
        checks.append(_no_ledger(report, hashes_match=all(c.passed for c in checks)))
    first = next((c for c in checks if not c.passed), None)
    return {
        "dir": str(directory),
        "passed": first is None,
        "first_mismatch": None if first is None else f"{first.name}: {first.problem}",
        "checks": [{"check": c.name, "detail": c.detail, "passed": c.passed, "problem": c.problem} for c in checks],
    }


def _no_ledger(report: dict[str, Any], hashes_match: bool) -> Check:
    """An output written before rfau kept a ledger: only its hashes can be checked."""
    versions = report.get("versions")
    version = versions.get("rfau", "?") if isinstance(versions, dict) else "?"
    hashes = "its files match report.json's sha256, but " if hashes_match else ""
    return Check(
        "ledger",
        "report.json has a ledger",
        f"written by rfau {version}, before outputs carried a ledger: {hashes}there is no ledger, rfau.* "
        "metadata or model card to verify",
    )


def check_passed(result: dict[str, Any]) -> None:
    """Raise VerifyFailed (exit 1) naming the first mismatch."""
    if not result["passed"]:
        raise VerifyFailed(f"{result['dir']}: {result['first_mismatch']}")


def _read_report(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    if not (directory / REPORT_FILE).is_file():
        raise InputError(f"{directory} is not an rfau output: it has no {REPORT_FILE}")
    report = read_json(directory / REPORT_FILE)
    outputs = report.get("outputs")
    if report.get("tool") != "rfau" or not isinstance(outputs, dict) or not isinstance(outputs.get("sha256"), dict):
        raise InputError(f"{directory / REPORT_FILE} is not an rfau unlearn/retrain report (no outputs.sha256)")
    return report


def _check_outputs(directory: Path, report: dict[str, Any]) -> list[Check]:
    """Every file of outputs.sha256 hashes as recorded; no unlisted file but the records (and
    hidden files, such as a hub's .gitattributes)."""
    listed: dict[str, str] = report["outputs"]["sha256"]
    checks = []
    for name, expected in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            checks.append(Check("sha256", name, f"{name} is missing"))
            continue
        actual = sha256_file(path)
        problem = None if actual == expected else f"{name} has sha256 {actual[:12]}, report.json says {expected[:12]}"
        checks.append(Check("sha256", name, problem))
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        hidden = any(part.startswith(".") for part in path.relative_to(directory).parts)
        if path.is_file() and not hidden and name not in listed and name not in RECORD_FILES:
            checks.append(Check("sha256", name, f"{name} is not in report.json's outputs.sha256"))
    return checks


def _check_ledger(directory: Path, report: dict[str, Any], ledger: list[dict[str, Any]]) -> list[Check]:
    from rfau_cli.ledger import read_ledger_file
    from rfau_cli.provenance import weights_digest

    checks = []
    if (directory / LEDGER_FILE).is_file():
        try:
            same = read_ledger_file(directory / LEDGER_FILE) == ledger
            problem = None if same else f"{LEDGER_FILE} differs from report.json's ledger"
        except InputError as err:
            problem = str(err)
    else:
        problem = f"{LEDGER_FILE} is missing"
    checks.append(Check("ledger", f"{LEDGER_FILE} is report.json's ledger", problem))
    for before, entry in zip(ledger, ledger[1:]):
        written = {before.get("output_sha256"), *(before.get("output_files_sha256") or {}).values()}
        n = entry.get("request")
        problem = None if entry.get("input_sha256") in written else (
            f"request {n}'s input sha256 {str(entry.get('input_sha256'))[:12]} is not request "
            f"{before.get('request')}'s output {str(before.get('output_sha256'))[:12]}"
        )
        checks.append(Check("chain", f"request {before.get('request')} -> {n}", problem))
    last = ledger[-1]
    files = [directory / f for f in last.get("output_weights") or []]
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        problem = f"the last request's output weights {missing or '(none)'} are missing"
    else:
        digest = weights_digest(files)
        problem = None if digest == last.get("output_sha256") else (
            f"the weights ({', '.join(last['output_weights'])}) have sha256 {digest[:12]}, the ledger's last "
            f"request wrote {str(last.get('output_sha256'))[:12]}"
        )
    checks.append(Check("chain", f"request {last.get('request')} -> the weights in {directory.name}", problem))
    for name, expected in sorted((last.get("output_files_sha256") or {}).items()):
        recorded = report["outputs"]["sha256"].get(name)
        problem = None if recorded == expected else f"{name}: the ledger says {expected[:12]}, report.json {recorded}"
        checks.append(Check("chain", f"ledger = report.json for {name}", problem))
    return checks


def _check_metadata(directory: Path, report: dict[str, Any], ledger: list[dict[str, Any]]) -> list[Check]:
    """The rfau.* keys of every .safetensors agree with the report and the ledger."""
    from rfau_cli.provenance import check_metadata, provenance_metadata

    last = ledger[-1]
    expected = provenance_metadata(
        version=str(report.get("versions", {}).get("rfau")),
        input_sha256=str(last.get("input_sha256")),
        forget_sha256=str(report.get("inputs", {}).get("forget_list_sha256")),
        method=str(report.get("method")),
        seed=report.get("seed"),  # type: ignore[arg-type]
        ledger_length=len(ledger),
    )
    files = sorted(p for p in directory.rglob("*.safetensors") if p.is_file())
    return [
        Check("metadata", str(p.relative_to(directory)), check_metadata(p, expected)) for p in files
    ]


def _check_card(directory: Path, report: dict[str, Any]) -> Check:
    from rfau_cli.model_card import card_for

    path = directory / CARD_FILE
    if not path.is_file():
        return Check("card", CARD_FILE, f"{CARD_FILE} is missing")
    same = path.read_text(encoding="utf-8", errors="replace") == card_for(report)
    return Check("card", f"{CARD_FILE} is the card of report.json", None if same else f"{CARD_FILE} was edited")

