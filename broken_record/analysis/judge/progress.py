"""The judge's progress line on stderr (rich), one step per chunk; silent when off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Advance:
    """Called after each chunk; ``describe`` names the conversation being judged. No-op without a bar."""

    def __init__(self, progress: Any = None, task: Any = None):
        self._progress, self._task = progress, task

    def __call__(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def describe(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"judge {name}")


@contextmanager
def progress_bar(total: int, enabled: bool | None) -> Iterator[Advance]:
    """A transient bar of ``total`` chunks; ``enabled=None``: only when stderr is a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled or total == 0:
        yield Advance()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        yield Advance(progress, progress.add_task("judge", total=total))
