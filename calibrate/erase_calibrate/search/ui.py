"""Progress bars for the calibrator's phases (rich), or silence for tests and pipes."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator


class Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self._rich = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=False, disable=not self.enabled,
            )

    def note(self, text: str) -> None:
        if self._rich is not None:
            self.console.print(text)

    @contextlib.contextmanager
    def task(self, description: str, total: int, completed: int = 0) -> Iterator[Callable[..., None]]:
        if self._rich is None:
            yield lambda **kw: None
            return
        with self._rich:
            tid = self._rich.add_task(description, total=total, completed=completed)

            def tick(**kw: Any) -> None:
                self._rich.update(tid, advance=1, **kw)

            yield tick
