"""What the terminal shows while a conversation is generated.

On a terminal each speaker streams in its own colour (rich); when stdout is
a pipe or a file the same text goes out plain, in the original log layout,
so `python parrot.py config.json | tee x.log` gives a log old tooling reads.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from broken_record.runs.layout import token_marker

STYLES = {"assistant": "bold cyan", "user": "magenta", "note": "dim"}


class Display:
    """Streams text pieces to stdout; `quiet` shows nothing (parrot.sh with -j > 1)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, color: bool | None = None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        tty = color if color is not None else self.stream.isatty()
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True) if tty else None
        self._err = Console(stderr=True, highlight=False, soft_wrap=True)

    def write(self, text: str, role: str | None = None) -> None:
        if self.quiet or not text:
            return
        if self.console:
            self.console.print(text, style=STYLES.get(role or "", ""), end="", markup=False)
        else:
            self.stream.write(text)
            self.stream.flush()

    def typed(self, line: str, role: str | None = None) -> None:
        """A line the person typed (--human): a terminal has shown it already as
        it was typed; a pipe or file gets it, so a teed log holds every turn."""
        if not self.console:
            self.write(line, role)

    def marker(self, total: int) -> None:
        """The token marker before an assistant turn, as the text log has it."""
        self.write(token_marker(total) + "\n\n", "note")

    def warn(self, text: str) -> None:
        if not self.quiet:
            self._err.print(f"[yellow]warning:[/] {escape(text)}")

    def note(self, text: str) -> None:
        """Status lines go to stderr so stdout keeps the log layout."""
        if not self.quiet:
            self._err.print(text, style="dim", markup=False)
