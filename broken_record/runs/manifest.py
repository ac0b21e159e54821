"""A run folder's ``manifest.json``: what parrot.sh did with the folder (``schema.ManifestFile``).

    manifest = Manifest(folder)                   # loaded, or new if the folder has none
    session = manifest.start_session(jobs=4, target=20)
    entry = manifest.add_conversation(stem)       # "outcome": "running"
    manifest.conversation_ended(entry, "complete", ...)
    manifest.end_session(session, summary, complete_conversations=20)

Each change is saved at once, written whole to a temporary file that then
replaces manifest.json, so a reader (or a crash) never sees half a file.
Conversations running in parallel threads share one ``Manifest``: every
change and save holds its lock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

from broken_record import __version__
from broken_record.runs import layout
from broken_record.runs.reader import footer_of
from broken_record.runs.schema import (
    ConversationOutcome,
    EndReason,
    ManifestConversation,
    ManifestFile,
    RoleInfo,
    Session,
    SessionSummary,
)
from broken_record.runs.writer import now_iso

TOOL = "broken-record-parrot"


class Manifest:
    """The manifest.json of one run folder, loaded once and saved on every change."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / layout.MANIFEST_FILE
        self._lock = threading.RLock()
        self.data: ManifestFile = self._load()

    def _load(self) -> ManifestFile:
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                loaded = None
            if isinstance(loaded, dict):
                loaded.setdefault("conversations", [])
                loaded.setdefault("sessions", [])
                return cast(ManifestFile, loaded)
        return {"tool": TOOL, "tool_version": __version__, "created": now_iso(),
                "conversations": [], "sessions": []}

    @property
    def conversations(self) -> list[ManifestConversation]:
        return self.data["conversations"]

    @property
    def sessions(self) -> list[Session]:
        return self.data["sessions"]

    def count(self, outcome: ConversationOutcome, since: int = 0) -> int:
        """How many of the folder's conversations (from number ``since`` on) ended with ``outcome``."""
        with self._lock:
            return sum(1 for c in self.conversations[since:] if c.get("outcome") == outcome)

    def save(self) -> None:
        """Write manifest.json: a temporary file, then renamed over it."""
        with self._lock:
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path)

    # -- sessions ------------------------------------------------------------

    def start_session(self, jobs: int, target: int) -> Session:
        """A parrot.sh command begins on the folder (``reconcile`` first); saved."""
        session: Session = {"started": now_iso(), "jobs": jobs, "target": target}
        with self._lock:
            self.reconcile()
            self.sessions.append(session)
            self.save()
        return session

    def reconcile(self) -> None:
        """Conversations an earlier session left ``"running"`` (it was killed, ``kill -9``):
        their outcome from their log's footer, or ``"interrupted"`` for a log without one."""
        with self._lock:
            for entry in self.conversations:
                if entry.get("outcome") != "running":
                    continue
                footer = footer_of(self.path.parent / f"{entry['stem']}{layout.JSONL_SUFFIX}")
                if footer is None:
                    entry["outcome"] = "interrupted"
                    entry["detail"] = "its session was killed: the log ends without a footer"
                    continue
                entry["ended"] = footer.get("ended", "")
                entry["end_reason"] = footer.get("end_reason", "interrupted")
                entry["total_tokens"] = footer.get("total_tokens", 0)
                entry["turns"] = footer.get("turns", 0)
                entry["detail"] = footer.get("detail", "")
                entry["outcome"] = ("complete" if footer.get("complete") else
                                    "interrupted" if footer.get("end_reason") == "interrupted" else "failed")

    def seeds(self, configured: dict[str, int | None], picked: int) -> dict[str, int]:
        """Each role's base seed for the folder: kept from an earlier session, else the
        configured one, else ``picked``; saved with the next change."""
        with self._lock:
            if "seeds" not in self.data:
                self.data["seeds"] = {role: picked if seed is None else seed for role, seed in configured.items()}
                self.data["seeds_picked"] = any(seed is None for seed in configured.values())
            return dict(self.data["seeds"])

    def end_session(self, session: Session, summary: SessionSummary, complete_conversations: int) -> None:
        """The command is done: its summary, and the folder's complete conversations; saved."""
        with self._lock:
            session["ended"] = now_iso()
            session["summary"] = summary
            self.data["complete_conversations"] = complete_conversations
            self.save()

    # -- conversations -------------------------------------------------------

    def add_conversation(self, stem: str,
                         seeds: Callable[[int], dict[str, int | None]] | None = None) -> ManifestConversation:
        """A conversation starts, ``"outcome": "running"``, numbered in the folder (0, 1, ...),
        with the seeds ``seeds(number)`` gives it; saved."""
        with self._lock:
            number = len(self.conversations)
            entry: ManifestConversation = {"stem": stem, "started": now_iso(), "outcome": "running",
                                           "number": number}
            if seeds is not None:
                entry["seeds"] = seeds(number)
            self.conversations.append(entry)
            self.save()
        return entry

    def conversation_failed(self, entry: ManifestConversation, detail: str) -> None:
        """A conversation that could not start (no server answers); saved."""
        with self._lock:
            entry["outcome"] = "failed"
            entry["ended"] = now_iso()
            entry["detail"] = detail
            self.save()

    def conversation_ended(self, entry: ManifestConversation, outcome: ConversationOutcome,
                           end_reason: EndReason, total_tokens: int, turns: int, detail: str,
                           servers: dict[str, list[str]]) -> None:
        """A conversation that ran: how it ended, and every server each role ran on; saved."""
        with self._lock:
            entry["ended"] = now_iso()
            entry["end_reason"] = end_reason
            entry["total_tokens"] = total_tokens
            entry["turns"] = turns
            entry["detail"] = detail
            entry["servers"] = servers
            entry["outcome"] = outcome
            self.save()

    def set_engines(self, engines: dict[str, RoleInfo]) -> bool:
        """The roles of the folder's first conversation; False (and kept) if it has them already.

        Saved with the next change.
        """
        with self._lock:
            if "engines" in self.data:
                return False
            self.data["engines"] = engines
            return True
