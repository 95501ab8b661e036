"""`rfau ledger DIR`: the deletion requests an rfau output answers, oldest first.

Reads ledger.json (or report.json's `ledger`); no torch is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_ledger(directory: Path) -> list[dict[str, Any]]:
    """The ledger entries of `directory`.

    Raises:
        InputError: not an rfau output, or one written before rfau kept a ledger.
    """
    from rfau_cli.ledger import read_output_ledger

    return read_output_ledger(Path(directory))


def print_ledger(entries: list[dict[str, Any]], directory: Path) -> None:
    """One row a request: date, mode, rows and classes, list hash, method, input -> output hashes."""
    from rich.console import Console
    from rich.table import Table

    from rfau_cli.ledger import ledger_table

    rows = ledger_table(entries)
    table = Table(title=f"{directory}: {len(entries)} deletion request(s)")
    for column in rows[0] if rows else ("#",):
        table.add_column(column, justify="right" if column in ("#", "forgotten") else "left")
    for row in rows:
        table.add_row(*row.values())
    Console(width=200).print(table)
