"""parrot.sh's session on a run folder: conversations until enough are complete.

    ./parrot.sh 20 config.json            -> parrot_20261122_101500/
    ./parrot.sh 20 config.json -j 4       4 conversations at once
    ./parrot.sh 20 --resume parrot_20261122_101500

``Batch`` schedules the conversations, ``jobs`` at once, against servers
started once (the CLI is broken_record.cli.batch). Each running
conversation holds a lane (0..jobs-1) and with it its own slot on servers
parrot started. The folder gets one <stem>.log/.jsonl pair per
conversation (runs/writer.py) and manifest.json (runs/manifest.py: tool
version, engines, the servers' reported settings, each session and each
conversation's outcome); the servers of each role are a ``ServerPool``
(pool.py); what the terminal shows is progress.py's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import cast

from rich.console import Console

from broken_record.conversation.config import Config, RoleConfig, conversation_seed, pick_seed
from broken_record.conversation.dialogue import Dialogue, Outcome, check_opening
from broken_record.conversation.display import Display
from broken_record.conversation.pool import ServerPool
from broken_record.conversation.progress import BatchProgress
from broken_record.conversation.roles import Role, open_role, restart_role
from broken_record.errors import ParrotError
from broken_record.inference import connect
from broken_record.runs import layout
from broken_record.runs.manifest import Manifest
from broken_record.runs.reader import complete_in
from broken_record.runs.schema import ConversationOutcome, ManifestConversation, Message, RoleInfo, SessionSummary
from broken_record.runs.writer import ConversationLog


class Batch:
    """One session of parrot.sh on a run folder: conversations until ``target`` are complete.

    ``complete`` counts the folder's complete conversations (those of earlier
    sessions included), ``tokens`` the tokens generated in this session.
    """

    def __init__(self, config: Config, folder: Path, target: int, jobs: int, console: Console,
                 display_text: bool):
        self.config = config
        self.folder = folder
        self.target = target
        self.jobs = jobs
        self.console = console
        self.display_text = display_text
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.running: set[Dialogue] = set()
        self.tokens = 0
        self.started = time.monotonic()
        self.manifest = Manifest(folder)
        self.complete = len(complete_in(folder))
        self.progress = BatchProgress(console, target, config.total_tokens, self.started)
        self.lanes = list(range(jobs))  # free lanes: a running conversation holds one
        self.running_tokens: dict[str, int] = {}  # stem -> tokens, for the conversations under way
        # each role's base seed (the configured one, else one picked for the folder):
        # conversation n of the folder samples with base + n
        self.seeds = self.manifest.seeds({rc.name: rc.seed for rc in (config.assistant, config.user)},
                                         pick_seed())
        self._settings_shown = False

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}", markup=True, highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    # -- one conversation ------------------------------------------------
    def _role(self, pool: ServerPool, rc: RoleConfig, lane: int, seed: int | None,
              avoid: str | None = None) -> Role | None:
        while True:
            url = pool.pick(avoid, lane)
            if url is None:
                return None
            try:
                if pool.embedded(url):
                    # parrot's own server may have died between conversations: started again
                    revived = pool.revive(url)
                    if revived:
                        self.warn(revived)
                # this conversation's own slot (where the engine can pin one): its cached prompt stays there
                role = open_role(rc, url, self.config, pool.notes.get(url), slot=pool.slot(url, lane), seed=seed)
            except ParrotError as err:
                pool.mark_down(url, str(err).splitlines()[0])
                continue
            return role

    def _seeds(self, number: int) -> dict[str, int | None]:
        return {role: conversation_seed(base, number) for role, base in self.seeds.items()}

    def conversation(self, pools: dict[str, ServerPool]) -> ManifestConversation:
        """One conversation in a free lane; its manifest entry."""
        with self.lock:
            lane = self.lanes.pop(0)
        try:
            return self._conversation(pools, lane)
        finally:
            with self.lock:
                self.lanes.append(lane)

    def _conversation(self, pools: dict[str, ServerPool], lane: int) -> ManifestConversation:
        stem = layout.conversation_stem()
        entry = self.manifest.add_conversation(stem, self._seeds)
        seeds = entry.get("seeds") or {}
        roles: dict[str, Role] = {}
        for rc in (self.config.assistant, self.config.user):
            role = self._role(pools[rc.name], rc, lane, seeds.get(rc.name))
            if role is None:
                self.manifest.conversation_failed(entry, f"no {rc.name} server answers")
                return entry
            roles[rc.name] = role
        first = self.manifest.set_engines({n: cast(RoleInfo, r.describe()) for n, r in roles.items()})
        with self.lock:
            show, self._settings_shown = not self._settings_shown, True
        if show:
            for r in roles.values():
                base = self.seeds.get(r.name)
                self.say(f"[parrot.sh] {r.settings_line(None if base is None else f'{base}+n')}")
            self.say(f"[parrot.sh] conversation n (0, 1, ...) of the folder samples with seed+n"
                     f"{' (seeds picked at random: the config fixes none)' if self.manifest.data.get('seeds_picked') else ''}")
        if first:
            for r in roles.values():
                for w in r.warnings():
                    self.warn(w)
        try:
            check_opening(self.config, roles["assistant"], roles["user"])   # before its logs exist
        except ParrotError as err:
            self.manifest.conversation_failed(entry, str(err))
            self.warn(f"conversation {stem} not started: {err}")
            return entry

        def reconnect(name: str, failed: Role) -> Role | None:
            url, pool = failed.info.url, pools[name]
            rc = self.config.assistant if name == "assistant" else self.config.user
            if pool.embedded(url):
                # parrot's own server: started again if it died (ServerError if it keeps dying)
                return restart_role(failed, rc, self.config, pool.revive, self.warn, f"conversation {stem}")
            pool.mark_down(url, "stopped answering")
            return self._role(pool, rc, lane, seeds.get(name), avoid=url)

        def on_turn(record: Message) -> None:
            if record.get("tokens"):
                with self.lock:
                    self.tokens += record["tokens"]
                    self.running_tokens[stem] = self.running_tokens.get(stem, 0) + record["tokens"]
                    self.progress.update(self.complete, self.tokens, self._running())

        log = ConversationLog(self.folder, stem)
        display = Display(quiet=not self.display_text, console=self.console)
        dialogue = Dialogue(self.config, roles["assistant"], roles["user"], log, display,
                            on_turn=on_turn, cancel=self.cancel, reconnect=reconnect)
        with self.lock:
            self.running.add(dialogue)
        try:
            outcome = dialogue.talk()
        finally:
            with self.lock:
                self.running.discard(dialogue)
        self.manifest.conversation_ended(
            entry, _manifest_outcome(outcome), outcome.end_reason, outcome.total_tokens, outcome.turns,
            outcome.detail, dialogue.servers)
        with self.lock:     # counted and shown together: the lines come in order
            self.running_tokens.pop(stem, None)
            if outcome.complete:
                self.complete += 1
            self.progress.update(self.complete, self.tokens, self._running())
            self.progress.ended(entry, self.complete, self.tokens, self._running())
        return entry

    def _running(self) -> int:
        """Tokens the conversations under way have generated so far."""
        return sum(self.running_tokens.values())

    # -- the session --------------------------------------------------------
    def generate(self, pools: dict[str, ServerPool]) -> int:
        """Conversations until the folder holds ``target`` complete ones; the exit code.

        0: the target reached; 1: conversations failed, or no server of a role
        is left, before it; 130: stopped by Ctrl-C (the running conversations
        are closed as interrupted).
        """
        session = self.manifest.start_session(self.jobs, self.target)
        first_number = len(self.manifest.conversations)  # this session's conversations come after
        interrupted = False
        self.progress.start(bar=self.console.is_terminal and self.jobs > 1)
        outcomes: list[ManifestConversation] = []
        # the executor is shut down by hand: leaving a `with` block would join the
        # workers before Ctrl-C could tell them to stop
        ex = ThreadPoolExecutor(max_workers=self.jobs)
        running: set[Future[ManifestConversation]] = set()
        try:
            while True:
                while (len(running) < self.jobs and not self.cancel.is_set()
                       and self.complete + len(running) < self.target
                       and all(p.healthy() for p in pools.values())
                       and sum(1 for o in outcomes if o["outcome"] == "failed") < max(3, self.target)):
                    if self.jobs == 1:
                        self.progress.starting(self.complete + 1)
                    running.add(ex.submit(self.conversation, pools))
                if not running:
                    break
                done, running = wait(running, timeout=0.5, return_when="FIRST_COMPLETED")
                outcomes += [fut.result() for fut in done]
        except KeyboardInterrupt:
            interrupted = True
            self.cancel.set()
            # the workers see `cancel`, close their logs as interrupted and return;
            # closing their streams wakes a worker waiting on a slow server
            with self.lock:
                for dialogue in list(self.running):
                    dialogue.abort()
            for fut in running:
                try:
                    outcomes.append(fut.result(timeout=60))
                except Exception:
                    pass
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
            self.progress.stop()
        summary: SessionSummary = {
            "complete": sum(1 for c in outcomes if c["outcome"] == "complete"),
            "failed": sum(1 for c in outcomes if c["outcome"] == "failed"),
            "interrupted": self.manifest.count("interrupted", since=first_number),
            "tokens": self.tokens, "wall_seconds": round(time.monotonic() - self.started, 2),
        }
        self.manifest.end_session(session, summary, len(complete_in(self.folder)))
        self.progress.done(summary, self.folder)
        if interrupted:
            return 130
        if summary["failed"] or self.complete < self.target:
            return 1
        return 0


def check_servers(config: Config, pools: dict[str, ServerPool]) -> None:
    """Before a session makes or touches a run folder: every role has a server that answers
    (``ServerPool.check``), and the config's opening renders and fits on the first of them
    (``check_opening``): a ``ParrotError`` otherwise, so nothing is started in vain."""
    roles = {}
    for rc in (config.assistant, config.user):
        pool = pools[rc.name]
        pool.check(partial(connect, kind=rc.engine, role=rc.name, timeout=config.timeout, api_model=rc.api_model))
        url = pool.healthy()[0]
        roles[rc.name] = open_role(rc, url, config, pool.notes.get(url))
    check_opening(config, roles["assistant"], roles["user"])


def _manifest_outcome(outcome: Outcome) -> ConversationOutcome:
    if outcome.complete:
        return "complete"
    return "interrupted" if outcome.end_reason == "interrupted" else "failed"
