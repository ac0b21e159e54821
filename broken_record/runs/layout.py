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

import os
import re
import time
from datetime import datetime
from pathlib import Path

from broken_record.errors import ParrotError

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


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder this process can write files into, made if missing.

    Anything else is a ``ParrotError`` naming the option:
    ``--out notes.txt: is a file, not a folder: give a folder (it is made if missing)``.
    """
    folder = Path(path)
    fix = "give a folder you can write to (it is made if missing)"
    if folder.exists() and not folder.is_dir():
        raise ParrotError(f"{option} {path}: is a file, not a folder: {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ParrotError(f"{option} {path}: cannot make the folder ({err.strerror}): {fix}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParrotError(f"{option} {path}: the folder is not writable: {fix}")
    return folder


def check_stem(stem: str, folder: str | Path, option: str = "--name") -> str:
    """``stem`` as the file name stem of a new conversation in ``folder``.

    A stem is a plain file name (no folder part) whose .log and .jsonl do not
    exist yet: a conversation never overwrites another's logs.
    """
    if not stem or stem in (".", "..") or "/" in stem or os.sep in stem or "\0" in stem:
        raise ParrotError(f"{option} {stem!r}: must be a plain file name without a folder part "
                          f"(use --out for the folder)")
    for suffix in LOG_SUFFIXES:
        existing = Path(folder) / f"{stem}{suffix}"
        if existing.exists():
            raise ParrotError(f"{option} {stem}: {existing} already exists: choose another name "
                              f"(logs are never overwritten)")
    return stem


def new_run_folder(parent: str | Path) -> Path:
    """Make a run folder named for now under ``parent`` (``output_folder``); waits a second
    rather than reuse a name."""
    output_folder(parent)
    while True:
        folder = Path(parent) / run_folder_name()
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            time.sleep(1)
        except OSError as err:
            raise ParrotError(f"--out {parent}: cannot make the run folder {folder} ({err.strerror})")


def conversation_stem() -> str:
    """A conversation's file stem, as the original parrot.sh made: ``parrot_20261122_101501_123456789``."""
    ns = time.time_ns()
    return run_folder_name(datetime.fromtimestamp(ns / 1e9)) + f"_{ns % 1_000_000_000:09d}"
