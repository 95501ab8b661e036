"""One exception hierarchy, mapped to one stderr line and an exit code at the CLI boundary.

Exit codes (DESIGN.md): 1 an audit gate failed, 2 bad input (nothing was done or written),
3 the run failed after it started (no partial output is left).
"""

from __future__ import annotations


class RfauError(Exception):
    """Base of every error a user can cause or meet; its message is one line."""

    exit_code = 3


class InputError(RfauError):
    """Bad input found before any work: missing file, unknown id, pickle checkpoint, ..."""

    exit_code = 2


class RunError(RfauError):
    """The run started and failed (NaN loss, out of memory); the output was removed."""

    exit_code = 3


class GateFailed(RfauError):
    """At least one `--require` gate did not hold."""

    exit_code = 1
