"""parrot.sh: N conversations into a run folder, servers started once.

    ./parrot.sh 20 config.json            -> parrot_20261122_101500/
    ./parrot.sh 20 config.json -j 4       4 conversations at once
    ./parrot.sh 20 --resume parrot_20261122_101500

The folder holds one parrot_<date_time_ns>.log/.jsonl pair per conversation,
a copy of the config and manifest.json (tool version, engines, models, the
servers' reported settings, start and end times, each conversation's outcome).
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from broken_record import __version__
from broken_record.conversation.config import Config
from broken_record.conversation.dialogue import Dialogue, Outcome
from broken_record.conversation.display import Display
from broken_record.conversation.roles import Role, ServerURLs, open_role
from broken_record.errors import ParrotError
from broken_record.runs.writer import RunLog, now_iso, stamp


class ServerPool:
    """The servers of one role: handed out round-robin, dead ones taken out."""

    def __init__(self, role: str, urls: list[str], warn, slots: dict | None = None,
                 notes: dict | None = None):
        self.role = role
        self.urls = list(urls)
        self.slots = slots or {}  # url -> (first, stride) on servers parrot started (ServerURLs)
        self.notes = notes or {}  # url -> notes from starting that server
        self.down: set[str] = set()
        self.warn = warn
        self._lock = threading.Lock()
        self._next = 0

    def healthy(self) -> list[str]:
        return [u for u in self.urls if u not in self.down]

    def pick(self, avoid: str | None = None) -> str | None:
        with self._lock:
            live = [u for u in self.healthy() if u != avoid]
            if not live:
                return None
            url = live[self._next % len(live)]
            self._next += 1
            return url

    def slot(self, url: str, lane: int) -> int | None:
        """The slot the conversation in ``lane`` uses on ``url``; None: the server chooses."""
        if url not in self.slots:
            return None
        first, stride = self.slots[url]
        return first + stride * lane

    @classmethod
    def for_roles(cls, urls: ServerURLs, warn) -> dict[str, ServerPool]:
        """One pool per role, from ``embedded_servers``' URLs, slot layout and notes."""
        return {name: cls(name, u, warn, urls.slots.get(name), urls.notes) for name, u in urls.items()}

    def mark_down(self, url: str, why: str) -> None:
        with self._lock:
            if url in self.down:
                return
            self.down.add(url)
            left = len(self.healthy())
        self.warn(f"{self.role} server {url} taken out of rotation ({why}); {left} left")


def complete_in(folder: Path) -> list[str]:
    """Stems of the conversations in `folder` whose .jsonl footer says complete."""
    done = []
    for path in sorted(folder.glob("parrot_*.jsonl")):
        try:
            last = path.read_text(encoding="utf-8").strip().splitlines()[-1]
            footer = json.loads(last)
        except (OSError, IndexError, ValueError):
            continue
        if footer.get("type") == "footer" and footer.get("complete"):
            done.append(path.stem)
    return done


class Batch:
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
        self.manifest_path = folder / "manifest.json"
        self.manifest = self._load_manifest()
        self.complete = len(complete_in(folder))
        self.progress: Progress | None = None
        self.task = None
        self.lanes = list(range(jobs))  # free lanes: a running conversation holds one

    def _load_manifest(self) -> dict:
        if self.manifest_path.exists():
            try:
                return json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except ValueError:
                pass
        return {"tool": "broken-record-parrot", "tool_version": __version__, "created": now_iso(),
                "conversations": [], "sessions": []}

    def save_manifest(self) -> None:
        with self.lock:
            tmp = self.manifest_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.manifest, indent=1, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.manifest_path)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}", markup=True, highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    # -- one conversation ------------------------------------------------
    def _role(self, pool: ServerPool, rc, lane: int, avoid=None) -> Role | None:
        while True:
            url = pool.pick(avoid)
            if url is None:
                return None
            try:
                role = open_role(rc, url, self.config, pool.notes.get(url))
            except ParrotError as err:
                pool.mark_down(url, str(err).splitlines()[0])
                continue
            slot = pool.slot(url, lane)
            if slot is not None and role.engine.kind == "llama-server":
                # this conversation's own slot: its cached prompt stays there
                role.params = {**role.params, "id_slot": slot}
            return role

    def conversation(self, pools: dict[str, ServerPool]) -> dict:
        with self.lock:
            lane = self.lanes.pop(0)
        try:
            return self._conversation(pools, lane)
        finally:
            with self.lock:
                self.lanes.append(lane)

    def _conversation(self, pools: dict[str, ServerPool], lane: int) -> dict:
        stem = stamp()
        entry = {"stem": stem, "started": now_iso(), "outcome": "running"}
        with self.lock:
            self.manifest["conversations"].append(entry)
        self.save_manifest()
        roles = {}
        for rc in (self.config.assistant, self.config.user):
            role = self._role(pools[rc.name], rc, lane)
            if role is None:
                entry.update(outcome="failed", ended=now_iso(),
                             detail=f"no {rc.name} server answers")
                self.save_manifest()
                return entry
            roles[rc.name] = role
        if "engines" not in self.manifest:
            self.manifest["engines"] = {n: r.describe() for n, r in roles.items()}
            for r in roles.values():
                for w in r.warnings():
                    self.warn(w)

        def reconnect(name, failed: Role):
            pools[name].mark_down(failed.info.url, "stopped answering")
            rc = self.config.assistant if name == "assistant" else self.config.user
            return self._role(pools[name], rc, lane, avoid=failed.info.url)

        def on_turn(record):
            if record.get("tokens"):
                with self.lock:
                    self.tokens += record["tokens"]
                self._update()

        log = RunLog(self.folder, stem)
        display = Display(quiet=not self.display_text)
        dialogue = Dialogue(self.config, roles["assistant"], roles["user"], log, display,
                            on_turn=on_turn, cancel=self.cancel, reconnect=reconnect)
        with self.lock:
            self.running.add(dialogue)
        try:
            outcome: Outcome = dialogue.run()
        finally:
            with self.lock:
                self.running.discard(dialogue)
        entry.update(ended=now_iso(), end_reason=outcome.end_reason, total_tokens=outcome.total_tokens,
                     turns=outcome.turns, detail=outcome.detail,
                     servers={n: r.info.url for n, r in dialogue.roles.items()},
                     outcome="complete" if outcome.complete else (
                         "interrupted" if outcome.end_reason == "interrupted" else "failed"))
        if outcome.complete:
            with self.lock:
                self.complete += 1
        self.save_manifest()
        self._update()
        if not self.progress:
            self._plain_progress(entry)
        return entry

    # -- progress ---------------------------------------------------------
    def _rate(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return self.tokens / elapsed

    def _eta(self) -> float | None:
        rate = self._rate()
        left = (self.target - self.complete) * self.config.total_tokens
        return left / rate if rate > 0 else None

    def _update(self) -> None:
        if self.progress:
            self.progress.update(self.task, completed=self.complete,
                                 description=f"{self.complete}/{self.target} conversations · "
                                             f"{self.tokens} tokens · {self._rate():.1f} tok/s")

    def _plain_progress(self, entry: dict) -> None:
        eta = self._eta()
        self.say(f"[parrot.sh] conversation {entry['stem']}: {entry['outcome']} "
                 f"({entry.get('end_reason', '')}, {entry.get('total_tokens', 0)} tokens) · "
                 f"{self.complete} of {self.target} complete · {self.tokens} tokens · "
                 f"{self._rate():.1f} tok/s · time left "
                 f"{'?' if eta is None else _fmt_secs(eta)}")

    # -- the batch ----------------------------------------------------------
    def run(self, pools: dict[str, ServerPool]) -> int:
        session = {"started": now_iso(), "jobs": self.jobs, "target": self.target}
        self.manifest.setdefault("sessions", []).append(session)
        self.save_manifest()
        interrupted = False
        use_bar = self.console.is_terminal and self.jobs > 1
        if use_bar:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TimeRemainingColumn(), console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("starting", total=self.target)
        outcomes = []
        # the executor is shut down by hand: leaving a `with` block would join the
        # workers before Ctrl-C could tell them to stop
        ex = ThreadPoolExecutor(max_workers=self.jobs)
        running: set = set()
        try:
            while True:
                while (len(running) < self.jobs and not self.cancel.is_set()
                       and self.complete + len(running) < self.target
                       and all(p.healthy() for p in pools.values())
                       and sum(1 for o in outcomes if o["outcome"] == "failed") < max(3, self.target)):
                    if self.jobs == 1:
                        self.say(f"[parrot.sh] conversation {self.complete + 1} of {self.target}")
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
            if self.progress:
                self.progress.stop()
        session["ended"] = now_iso()
        summary = {
            "complete": sum(1 for c in outcomes if c["outcome"] == "complete"),
            "failed": sum(1 for c in outcomes if c["outcome"] == "failed"),
            "interrupted": sum(1 for c in self.manifest["conversations"]
                               if c.get("outcome") == "interrupted"),
            "tokens": self.tokens, "wall_seconds": round(time.monotonic() - self.started, 2),
        }
        session["summary"] = summary
        self.manifest["complete_conversations"] = len(complete_in(self.folder))
        self.save_manifest()
        self.say(f"[parrot.sh] done: {summary['complete']} completed, {summary['failed']} failed, "
                 f"{summary['interrupted']} interrupted · {summary['tokens']} tokens · "
                 f"{_fmt_secs(summary['wall_seconds'])} · folder {self.folder}")
        if interrupted:
            return 130
        if summary["failed"] or self.complete < self.target:
            return 1
        return 0


def _fmt_secs(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
