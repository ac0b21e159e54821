"""Writing a conversation's two logs as it happens.

`<name>.log` keeps the original tool's text layout so old tooling still reads it::

    \\n--- 0 ---\\n\\n            (token marker before each assistant turn)
    Skye: ...                    (streamed assistant line)
    Mark: ...                    (streamed user line)
    --- DONE ---
    Full Config:
    {"conversation": ..., "agent_prefix": "Skye:", ...}      (one JSON line)
    Assistant Model: <name>
    User Model: <name>

    === system @ 0 ===
    <text>
    === assistant @ <tokens before> ===
    <text>
    ...

    --- <T> tokens, <N> turns ---

`<name>.jsonl` holds one JSON object per line, each with a "type":

- header: {"type": "header", "version": 1, "tool_version", "started" (ISO 8601),
  "config" (the full config as loaded), "agent_prefix", "user_prefix",
  "assistant": {role info}, "user": {role info}, "versions": {...}}
  where role info is {"engine", "url", "model", "n_ctx", "template",
  "server_settings" (as the server reported them, or null), "warnings": [...],
  "server_notes": [...] (an embedded server's context capped or stretched)}.
- message: one per message, in conversation order, appended and flushed as
  soon as it exists. Messages from the config come first with
  "source": "config"; generated ones have "source": "model" (or "human").
  Fields: "index" (0-based position in the conversation), "role"
  ("system" | "assistant" | "user"), "text" (the message as the other side
  sees it, prefix included, e.g. "Skye: Hi"), "prefix", "generated" (what
  the model produced after the prefix), "tokens_before" (token total before
  it), and for generated turns "tokens" (server count), "stop"
  ("eos" | "limit" | "word" | "error"), "prompt_tokens", "cached_tokens",
  "ttft_ms", "gen_ms", "tokens_per_second", "attempts",
  "generation_settings" (first turn of each role only, when reported).
- footer: {"type": "footer", "end_reason", "complete" (bool), "total_tokens",
  "turns", "ended", "malformed_stream_lines"}. end_reason is one of
  "total_tokens", "context_full", "interrupted", "error". A file with no
  footer is a conversation that was killed: keep it, treat it as partial.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path


def stamp() -> str:
    """A file stem as the original parrot.sh made: parrot_20261122_101501_123456789."""
    ns = time.time_ns()
    return "parrot_" + datetime.fromtimestamp(ns / 1e9).strftime("%Y%m%d_%H%M%S") + f"_{ns % 1_000_000_000:09d}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def closing_text(messages, raw_config: dict, assistant_model: str, user_model: str,
                 total: int) -> str:
    """The closing section of the text log, after the streamed turns."""
    lines = ["--- DONE ---", "Full Config:", json.dumps(raw_config, ensure_ascii=False),
             f"Assistant Model: {assistant_model}", f"User Model: {user_model}", ""]
    for m in messages:
        lines += [f"=== {m['role']} @ {m['tokens_before']} ===", m["text"]]
    lines += ["", f"--- {total} tokens, {len(messages)} turns ---"]
    return "\n".join(lines) + "\n"


class RunLog:
    """The two files of one conversation, written as it happens.

    Every generated message is appended to both files and flushed (and the
    .jsonl fsync'ed) before the next turn starts, so a crash loses at most the
    turn in flight.
    """

    def __init__(self, directory: str | Path, stem: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stem = stem or stamp()
        self.log_path = self.directory / f"{self.stem}.log"
        self.jsonl_path = self.directory / f"{self.stem}.jsonl"
        self._log = open(self.log_path, "w", encoding="utf-8")
        self._jsonl = open(self.jsonl_path, "w", encoding="utf-8")
        self.messages: list[dict] = []
        self.closed = False
        self._log.write("\n")

    def _record(self, obj: dict) -> None:
        self._jsonl.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())

    def header(self, header: dict) -> None:
        self._record({"type": "header", "version": 1, **header})

    def marker(self, total: int) -> None:
        self._log.write(f"--- {total} ---\n\n")
        self._log.flush()

    def message(self, record: dict) -> None:
        self.messages.append(record)
        if record.get("source") != "config":
            self._log.write(record["text"] + "\n")
            self._log.flush()
        self._record({"type": "message", **record})

    def close(self, footer: dict, closing: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._log.write(closing)
        self._log.close()
        self._record({"type": "footer", "ended": now_iso(), **footer})
        self._jsonl.close()
