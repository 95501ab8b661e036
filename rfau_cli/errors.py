"""One exception hierarchy, mapped to one stderr line and an exit code at the CLI boundary.

Exit codes (DESIGN.md): 0 ok, 1 an audit gate failed, 2 bad input (found before any heavy
work; nothing was written), 3 the run failed after it started, including any unexpected
exception (no partial output is left). `--debug` or RFAU_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_GATE = 1
EXIT_INPUT = 2
EXIT_RUN = 3
DEBUG_ENV = "RFAU_DEBUG"


class RfauError(Exception):
    """Base of every error a user can cause or meet; its message is one line."""

    exit_code = EXIT_RUN


class InputError(RfauError):
    """Bad input found before any work: missing file, unknown id, pickle checkpoint, ..."""

    exit_code = EXIT_INPUT


class RunError(RfauError):
    """The run started and failed (NaN loss, out of memory); the output was removed."""

    exit_code = EXIT_RUN


class GateFailed(RfauError):
    """At least one `--require` gate did not hold."""

    exit_code = EXIT_GATE


def debug_from_env() -> bool:
    """RFAU_DEBUG=1 (or true/yes/on) asks for tracebacks, like `rfau --debug`."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def one_line(err: BaseException) -> str:
    """`Type: first line of the message` for an exception that is not an RfauError."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0].strip()}" if text else type(err).__name__


def error_line(err: BaseException) -> str:
    """The one stderr line for an error: an RfauError's own message, else its type and message."""
    if isinstance(err, RfauError):
        text = str(err).strip().splitlines()
        return f"rfau: error: {text[0] if text else type(err).__name__}"
    return f"rfau: error: {one_line(err)}"


def exit_code_of(err: BaseException) -> int:
    """2 for bad input, 1 for a failed gate, 3 for everything else (the run failed)."""
    return int(getattr(err, "exit_code", EXIT_RUN)) if isinstance(err, RfauError) else EXIT_RUN
