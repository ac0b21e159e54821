"""The run folder: every file name, marker and name pattern, defined once.

A run folder is what ``parrot.sh`` writes (``parrot.py --out DIR`` writes the
same conversation files into DIR)::

    parrot_20261122_101500/                 run folder  (run_folder_name)
    ├─ config.json                          CONFIG_FILE: the config of its conversations
    ├─ manifest.json                        MANIFEST_FILE: sessions, conversations, outcomes (manifest.py)
    ├─ parrot_20261122_101501_123456789.log    one conversation (conversation_stem):
    ├─ parrot_20261122_101501_123456789.jsonl  text log and structured log
    ├─ analysis.json                        ANALYSIS_FILE (analyze.py)
    ├─ response_length_vs_loop_density.json SCATTER_JSON (analyze.py, the original's)
    └─ response_length_vs_loop_density.png  SCATTER_PNG

What the files hold is schema.py's. The text log's markers (the original
tool's layout, writer.py writes them and reader.py parses them):

    --- 0 ---                  token_marker(0): before each assistant turn
    --- DONE ---               DONE_MARKER: end of the streamed part
    === assistant @ 120 ===    section_header("assistant", 120)
    --- 5120 tokens, 64 turns ---   closing_line(5120, 64)
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

RUN_PREFIX = "parrot_"            # run folders and conversation stems both start with it
LOG_SUFFIX = ".log"
JSONL_SUFFIX = ".jsonl"
LOG_SUFFIXES = (JSONL_SUFFIX, LOG_SUFFIX)  # the structured log first: it is preferred

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
ANALYSIS_FILE = "analysis.json"
SCATTER_JSON = "response_length_vs_loop_density.json"
SCATTER_PNG = "response_length_vs_loop_density.png"

DONE_MARKER = "--- DONE ---"
FULL_CONFIG = "Full Config:"
ASSISTANT_MODEL = "Assistant Model:"
USER_MODEL = "User Model:"

TOKEN_MARKER_RE = re.compile(r"^--- (\d+) ---$")
SECTION_RE = re.compile(r"^=== (\w+) @ (-?\d+) ===$")
CLOSING_RE = re.compile(r"^--- (\d+) tokens, (\d+) turns ---$")


def token_marker(total: int) -> str:
    """``120`` -> ``"--- 120 ---"``: the line before each assistant turn."""
    return f"--- {total} ---"


def section_header(role: str, tokens_before: int) -> str:
    """``("user", 12)`` -> ``"=== user @ 12 ==="``."""
    return f"=== {role} @ {tokens_before} ==="


def closing_line(total: int, turns: int) -> str:
    """``(5120, 64)`` -> ``"--- 5120 tokens, 64 turns ---"``: the text log's last line."""
    return f"--- {total} tokens, {turns} turns ---"


def run_folder_name(when: datetime | None = None) -> str:
    """``datetime(2026, 11, 22, 10, 15)`` -> ``"parrot_20261122_101500"``."""
    return RUN_PREFIX + (when or datetime.now()).strftime("%Y%m%d_%H%M%S")


def new_run_folder(parent: str | Path) -> Path:
    """Make a run folder named for now under ``parent``; waits a second rather than reuse a name."""
    while True:
        folder = Path(parent) / run_folder_name()
        if not folder.exists():
            folder.mkdir(parents=True)
            return folder
        time.sleep(1)


def conversation_stem() -> str:
    """A conversation's file stem, as the original parrot.sh made: ``parrot_20261122_101501_123456789``."""
    ns = time.time_ns()
    return run_folder_name(datetime.fromtimestamp(ns / 1e9)) + f"_{ns % 1_000_000_000:09d}"
