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
from pathlib import Path
from typing import cast

from broken_record import __version__
from broken_record.runs import layout
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

    def count(self, outcome: ConversationOutcome) -> int:
        """How many of the folder's conversations ended with ``outcome``."""
        with self._lock:
            return sum(1 for c in self.conversations if c.get("outcome") == outcome)

    def save(self) -> None:
        """Write manifest.json: a temporary file, then renamed over it."""
        with self._lock:
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path)

    # -- sessions ------------------------------------------------------------

    def start_session(self, jobs: int, target: int) -> Session:
        """A parrot.sh command begins on the folder; saved."""
        session: Session = {"started": now_iso(), "jobs": jobs, "target": target}
        with self._lock:
            self.sessions.append(session)
            self.save()
        return session

    def end_session(self, session: Session, summary: SessionSummary, complete_conversations: int) -> None:
        """The command is done: its summary, and the folder's complete conversations; saved."""
        with self._lock:
            session["ended"] = now_iso()
            session["summary"] = summary
            self.data["complete_conversations"] = complete_conversations
            self.save()

    # -- conversations -------------------------------------------------------

    def add_conversation(self, stem: str) -> ManifestConversation:
        """A conversation starts, ``"outcome": "running"``; saved."""
        entry: ManifestConversation = {"stem": stem, "started": now_iso(), "outcome": "running"}
        with self._lock:
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
                           servers: dict[str, str]) -> None:
        """A conversation that ran: how it ended, and the servers it ended on; saved."""
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
