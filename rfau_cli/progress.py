"""Progress on stderr (rich bars, one line an epoch) and wall time per phase.

stdout carries results only (`--json` prints the report there and nothing else).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


class Progress:
    """Rich progress bars and epoch lines on stderr; silent with `quiet`."""

    def __init__(self, quiet: bool = False) -> None:
        from rfau_cli.runtime import process_rank

        quiet = quiet or process_rank() != 0  # several processes: only the main one reports
        self.quiet = quiet
        self.phases: dict[str, float] = {}
        self._bars: Any = None
        self._console: Any = None
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._console = Console(stderr=True)
            self._bars = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )

    def __enter__(self) -> Progress:
        # Bars only on a terminal: on a pipe or file rich prints an empty line when the bars
        # stop (it would precede an error message); epoch lines are printed either way.
        if self._bars is not None and self._console.is_interactive:
            self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None and self._bars.live.is_started:
            self._bars.stop()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase of the run (seconds, accumulated under `name`)."""
        start = time.perf_counter()
        task = self.add_task(name, total=None)
        try:
            yield
        finally:
            self.remove_task(task)
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    def add_task(self, description: str, total: float | None) -> Any:
        return self._bars.add_task(description, total=total) if self._bars is not None else None

    def advance(self, task: Any, n: float = 1) -> None:
        if self._bars is not None:
            self._bars.advance(task, n)

    def remove_task(self, task: Any) -> None:
        if self._bars is not None and task is not None:
            self._bars.remove_task(task)

    def log(self, message: str) -> None:
        if self._console is not None:
            self._console.print(message, highlight=False)

    def log_epoch(self, method: str, record: dict[str, float]) -> None:
        terms = "  ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
        self.log(f"[bold]{method}[/] epoch {record['epoch']}: {terms}")
