"""Writing a conversation's two files as it happens: ``<stem>.log`` and ``<stem>.jsonl``.

What each file holds, line by line, is schema.py's (the .jsonl records) and
layout.py's (names, the text log's markers). ``ConversationLog`` appends
every message to both as soon as it exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broken_record.errors import ParrotError
from broken_record.runs import layout
from broken_record.runs.schema import JSONL_VERSION, Footer, FooterLine, Header, HeaderLine, Message, MessageLine


def now_iso() -> str:
    """Now, as the records state times: ``"2026-11-22T10:15:01.123+00:00"``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def closing_text(messages: Sequence[Message], raw_config: dict[str, Any], assistant_model: str,
                 user_model: str, total: int) -> str:
    """The closing section of the text log, after the streamed turns."""
    lines = [layout.DONE_MARKER, layout.FULL_CONFIG, json.dumps(raw_config, ensure_ascii=False),
             f"{layout.ASSISTANT_MODEL} {assistant_model}", f"{layout.USER_MODEL} {user_model}", ""]
    for m in messages:
        lines += [layout.section_header(m["role"], m["tokens_before"]), m["text"]]
    # the original's logs end with the closing line and then an empty line
    lines += ["", layout.closing_line(total, len(messages)), ""]
    return "\n".join(lines) + "\n"


class ConversationLog:
    """The two files of one conversation, written as it happens.

    Every generated message is appended to both files and flushed (and the
    .jsonl fsync'ed) before the next turn starts, so a crash loses at most the
    turn in flight.
    """

    def __init__(self, directory: str | Path, stem: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stem = stem or layout.conversation_stem()
        self.log_path = self.directory / f"{self.stem}{layout.LOG_SUFFIX}"
        self.jsonl_path = self.directory / f"{self.stem}{layout.JSONL_SUFFIX}"
        # "x": a log is never overwritten (layout.check_stem says so before anything starts)
        try:
            self._log = open(self.log_path, "x", encoding="utf-8")
        except FileExistsError:
            raise ParrotError(f"{self.log_path} already exists: choose another name (logs are never overwritten)")
        try:
            self._jsonl = open(self.jsonl_path, "x", encoding="utf-8")
        except FileExistsError:
            self._log.close()
            self.log_path.unlink()
            raise ParrotError(f"{self.jsonl_path} already exists: choose another name (logs are never overwritten)")
        self.messages: list[Message] = []
        self.closed = False
        self._log.write("\n")

    def _record(self, line: HeaderLine | MessageLine | FooterLine) -> None:
        self._jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())

    def header(self, header: Header) -> None:
        """The .jsonl's first line."""
        self._record({"type": "header", "version": JSONL_VERSION, **header})

    def marker(self, total: int) -> None:
        """The text log's token marker, before an assistant turn."""
        self._log.write(layout.token_marker(total) + "\n\n")
        self._log.flush()

    def message(self, record: Message) -> None:
        """One message: a line of the text log (unless it came from the config) and of the .jsonl."""
        self.messages.append(record)
        if record.get("source") != "config":
            self._log.write(record["text"] + "\n")
            self._log.flush()
        self._record({"type": "message", **record})

    def close(self, footer: Footer, closing: str) -> None:
        """The text log's closing section (``closing_text``) and the .jsonl's footer; once."""
        if self.closed:
            return
        self.closed = True
        self._log.write(closing)
        self._log.close()
        self._record({"type": "footer", "ended": now_iso(), **footer})
        self._jsonl.close()
