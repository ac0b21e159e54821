"""One conversation from a config: servers up, roles connected, turns logged.

This is what `parrot.py` runs; `parrot.sh` (broken_record.conversation.batch) reuses the
pieces to run many conversations against servers started once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from broken_record.conversation.config import Config
from broken_record.conversation.dialogue import Dialogue, Outcome
from broken_record.conversation.display import Display
from broken_record.conversation.roles import embedded_servers, open_role
from broken_record.runs.writer import RunLog


def human_input(prefix: str) -> str | None:
    """Read the user character's line from the person at the keyboard.

    The prompt goes to stderr: stdout carries the conversation in the log's
    layout (the original was run with `| tee`), and the typed line reaches it
    as a turn like any other.
    """
    try:
        import readline  # noqa: F401  (line editing for input())
    except ImportError:
        pass
    sys.stderr.write(f"\n[you] {prefix}")
    sys.stderr.flush()
    try:
        line = input()
    except EOFError:
        return None
    return line.strip() or None


def run_one(config: Config, out_dir: str | Path = ".", stem: str | None = None,
            display: Display | None = None, human: bool = False) -> tuple[Outcome, RunLog]:
    display = display or Display()
    with embedded_servers(config) as urls:
        assistant, user = (open_role(rc, urls[rc.name][0], config, urls.notes.get(urls[rc.name][0]))
                           for rc in (config.assistant, config.user))
        for w in urls.warnings + assistant.warnings() + user.warnings():
            display.warn(w)
        log = RunLog(out_dir, stem)
        dialogue = Dialogue(config, assistant, user, log, display,
                            human=human_input if human else None)
        outcome = dialogue.run()
    return outcome, log
