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
    """Streams a conversation's text to stdout, warnings and notes to stderr.

    ``quiet`` (parrot.py --quiet, parrot.sh with -j > 1) silences the
    conversation's text only: warnings and notes are always shown, on
    ``console`` when one is given (parrot.sh's, under its progress bar).

    On a terminal each piece shows as it arrives. To a pipe or a file the
    text goes out a line at a time, so that a turn cut off by a failed server
    (``cut``) leaves nothing behind and `| tee` gives exactly the .log.
    """

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, color: bool | None = None,
                 console: Console | None = None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        tty = color if color is not None else self.stream.isatty()
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True) if tty else None
        self._err = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self._line = ""     # to a pipe: the text of the line not yet ended

    def write(self, text: str, role: str | None = None) -> None:
        if self.quiet or not text:
            return
        if self.console:
            self.console.print(text, style=STYLES.get(role or "", ""), end="", markup=False)
            return
        self._line += text
        end = self._line.rfind("\n") + 1
        if end:
            self.stream.write(self._line[:end])
            self.stream.flush()
            self._line = self._line[end:]

    def cut(self) -> None:
        """The turn being streamed was cut off (a failed server, Ctrl-C): to a pipe its partial
        line is dropped, as the .log has no trace of it; a terminal ends the line."""
        if self.quiet:
            return
        if self.console:
            self.console.print("", end="\n")
        self._line = ""

    def typed(self, line: str, role: str | None = None) -> None:
        """A line the person typed (--human): a terminal has shown it already as
        it was typed; a pipe or file gets it, so a teed log holds every turn."""
        if not self.console:
            self.write(line, role)

    def marker(self, total: int) -> None:
        """The token marker before an assistant turn, as the text log has it."""
        self.write(token_marker(total) + "\n\n", "note")

    def warn(self, text: str) -> None:
        self._err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)

    def note(self, text: str) -> None:
        """Status lines go to stderr so stdout keeps the log layout."""
        self._err.print(text, style="dim", markup=False, highlight=False)
