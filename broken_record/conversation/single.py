"""One conversation from a config: servers up, roles connected, turns logged.

    outcome, log = converse(config, "out", "conv")     # out/conv.log, out/conv.jsonl

This is parrot.py's (broken_record.cli.parrot). parrot.sh's session on a run
folder (batch.py) uses the same pieces for many conversations against
servers started once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from broken_record.conversation.config import Config, pick_seed
from broken_record.conversation.dialogue import Dialogue, Outcome, check_opening
from broken_record.conversation.display import Display
from broken_record.conversation.roles import Role, embedded_servers, open_role, restart_role
from broken_record.runs.writer import ConversationLog


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
    sys.stderr.write(f"\n[you] {prefix}{'' if prefix.endswith(' ') else ' '}")
    sys.stderr.flush()
    try:
        line = input()
    except EOFError:
        sys.stderr.write("\n")
        return None
    if not sys.stdin.isatty():
        # nothing echoed the line and its newline: the transcript shows what was read
        sys.stderr.write(line + "\n")
    return line.strip() or None


def converse(config: Config, out_dir: str | Path = ".", stem: str | None = None,
             display: Display | None = None, human: bool = False) -> tuple[Outcome, ConversationLog]:
    """One conversation into ``out_dir``/``stem``.log and .jsonl, streamed to ``display``.

    Embedded llama-servers are started for the roles that name no server and
    stopped at the end. ``human``: the person at the keyboard may type the
    user's lines (``human_input``).
    """
    display = display or Display()
    picked = pick_seed()    # for a role whose config fixes no seed: used and recorded
    with embedded_servers(config) as urls:
        assistant, user = (open_role(rc, urls[rc.name][0], config, urls.notes.get(urls[rc.name][0]),
                                     seed=picked if rc.seed is None else None)
                           for rc in (config.assistant, config.user))
        for w in urls.warnings + assistant.warnings() + user.warnings():
            display.warn(w)
        for role in (assistant, user):
            display.note(role.settings_line())
        check_opening(config, assistant, user)     # before the logs exist

        def restart(name: str, failed: Role) -> Role | None:
            """The embedded server of a role that died, started again; None for the user's own servers."""
            if failed.info.url not in urls.servers:
                return None
            rc = config.assistant if name == "assistant" else config.user
            return restart_role(failed, rc, config, urls.revive, display.warn, "the conversation")

        log = ConversationLog(out_dir, stem)
        dialogue = Dialogue(config, assistant, user, log, display,
                            human=human_input if human else None, reconnect=restart)
        outcome = dialogue.talk()
    return outcome, log
