"""What parrot.sh shows while its conversations are generated.

On a terminal with several conversations at once (``-j`` > 1): one rich
progress bar, conversations complete of the target, tokens, tokens per
second and the time left. Otherwise plain lines, one as each conversation
starts (``-j 1``) and one as each ends::

    [parrot.sh] conversation 2 of 20
    [parrot.sh] conversation parrot_20261122_101501_123456789: complete (total_tokens, 5120 tokens) · 2 of 20 complete · 10240 tokens · 41.3 tok/s · time left 37m10s

The rate counts the tokens of this session over the time since it began;
the time left assumes each conversation still wanted takes the config's
``total_tokens`` at that rate.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from broken_record.runs.schema import ManifestConversation, SessionSummary


class BatchProgress:
    """The progress of a parrot.sh session toward ``target`` complete conversations."""

    def __init__(self, console: Console, target: int, conversation_tokens: int,
                 started: float | None = None):
        self.console = console
        self.target = target
        self.conversation_tokens = conversation_tokens  # the config's total_tokens
        self.started = time.monotonic() if started is None else started
        self.bar: Progress | None = None
        self._task: TaskID | None = None

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def rate(self, tokens: int) -> float:
        """Tokens per second since the session began."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return tokens / elapsed

    def eta(self, complete: int, tokens: int) -> float | None:
        """Seconds left until ``target`` complete conversations; None before any token."""
        rate = self.rate(tokens)
        left = (self.target - complete) * self.conversation_tokens
        return left / rate if rate > 0 else None

    def start(self, bar: bool) -> None:
        """Show the progress bar (``bar``), or plain lines."""
        if bar:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self._task = self.bar.add_task("starting", total=self.target)

    def stop(self) -> None:
        if self.bar:
            self.bar.stop()

    def update(self, complete: int, tokens: int) -> None:
        """The bar after a turn or a conversation; plain lines wait for a conversation's end."""
        if self.bar and self._task is not None:
            self.bar.update(self._task, completed=complete,
                            description=f"{complete}/{self.target} conversations · "
                                        f"{tokens} tokens · {self.rate(tokens):.1f} tok/s")

    def starting(self, number: int) -> None:
        """A plain line as conversation ``number`` (1-based, of the target) starts."""
        self.say(f"[parrot.sh] conversation {number} of {self.target}")

    def ended(self, entry: ManifestConversation, complete: int, tokens: int) -> None:
        """A plain line as a conversation ends (none under the bar)."""
        if self.bar:
            return
        eta = self.eta(complete, tokens)
        self.say(f"[parrot.sh] conversation {entry['stem']}: {entry['outcome']} "
                 f"({entry.get('end_reason', '')}, {entry.get('total_tokens', 0)} tokens) · "
                 f"{complete} of {self.target} complete · {tokens} tokens · "
                 f"{self.rate(tokens):.1f} tok/s · time left "
                 f"{'?' if eta is None else fmt_secs(eta)}")

    def done(self, summary: SessionSummary, folder: Path) -> None:
        """The session's last line."""
        self.say(f"[parrot.sh] done: {summary['complete']} completed, {summary['failed']} failed, "
                 f"{summary['interrupted']} interrupted · {summary['tokens']} tokens · "
                 f"{fmt_secs(summary['wall_seconds'])} · folder {folder}")


def fmt_secs(s: float) -> str:
    """``75`` -> ``"1m15s"``; ``3725`` -> ``"1h02m05s"``."""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
