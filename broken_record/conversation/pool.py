"""The servers of one role in parrot.sh: handed out round-robin, dead ones taken out.

    pools = ServerPool.for_roles(urls, warn)     # {"assistant": pool, "user": pool}
    url = pools["assistant"].pick()              # None: no server of the role is left
    pools["assistant"].mark_down(url, "stopped answering")

A role names one server or several (``api_url`` as a list); parrot.sh's
conversations share them. Servers parrot started serve one lane each (a
running conversation's place, 0..K-1), each role in its own slot (``slot``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from broken_record.conversation.roles import ServerURLs
from broken_record.errors import ParrotError, ServerError


class ServerPool:
    """The servers of one role: handed out round-robin, dead ones taken out."""

    REPROBE_SECONDS = 30.0  # a server out of rotation is asked again this often

    def __init__(self, role: str, urls: list[str], warn: Callable[[str], None],
                 slots: dict[str, tuple[int, int]] | None = None,
                 notes: dict[str, list[str]] | None = None,
                 revive: Callable[[str], str | None] | None = None,
                 embedded: Callable[[str], bool] | None = None,
                 lanes: list[str] | None = None):
        self.role = role
        self.urls = list(urls)
        self.slots = slots or {}  # url -> (first, stride) on servers parrot started (ServerURLs)
        self.notes = notes or {}  # url -> notes from starting that server
        self.down: dict[str, float] = {}  # url -> when it was last found not answering
        self.warn = warn
        self.probe: Callable[[str], object] | None = None  # set by ``check``: asks a server again
        self._revive = revive
        self.lanes = list(lanes or [])  # servers parrot started per lane: lane j uses lanes[j]
        self._embedded = embedded
        self._lock = threading.Lock()
        self._next = 0

    def healthy(self) -> list[str]:
        """The servers in rotation (a server out of it for ``REPROBE_SECONDS`` is probed again first)."""
        self._reprobe()
        return [u for u in self.urls if u not in self.down]

    def _reprobe(self) -> None:
        if self.probe is None:
            return
        now = time.monotonic()
        with self._lock:
            due = [u for u, when in self.down.items() if now - when >= self.REPROBE_SECONDS]
            for u in due:
                self.down[u] = now
        for url in due:
            try:
                self.probe(url)
            except ParrotError:
                continue
            with self._lock:
                self.down.pop(url, None)
            self.warn(f"{self.role} server {url} answers again: back in rotation")

    def revive(self, url: str) -> str | None:
        """An embedded server at ``url`` that died, started again: what happened; None otherwise."""
        return self._revive(url) if self._revive is not None else None

    def embedded(self, url: str) -> bool:
        """Whether parrot started the server at ``url`` (and can start it again)."""
        return self._embedded(url) if self._embedded is not None else False

    def pick(self, avoid: str | None = None, lane: int | None = None) -> str | None:
        """The next server in rotation, other than ``avoid`` (the lane's own on servers parrot
        started per lane); None when none is left."""
        self._reprobe()
        if self.lanes and lane is not None:
            url = self.lanes[lane % len(self.lanes)]
            return None if url in self.down or url == avoid else url
        with self._lock:
            live = [u for u in self.urls if u not in self.down and u != avoid]
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
    def for_roles(cls, urls: ServerURLs, warn: Callable[[str], None]) -> dict[str, ServerPool]:
        """One pool per role, from ``embedded_servers``' URLs, slot layout and notes."""
        return {name: cls(name, u, warn, urls.slots.get(name), urls.notes, urls.revive,
                    urls.servers.__contains__, urls.lanes.get(name)) for name, u in urls.items()}

    def check(self, probe: Callable[[str], object]) -> None:
        """Probe every server once (``probe(url)`` raises ``ParrotError`` for one that does not
        answer): those that fail leave the rotation; none answering is a ``ServerError``."""
        failures: dict[str, str] = {}
        for url in self.urls:
            try:
                probe(url)
            except ParrotError as err:
                failures[url] = str(err).splitlines()[0]
        if len(failures) == len(self.urls):
            raise ServerError(next(iter(failures.values())) if len(failures) == 1 else
                              f"no {self.role} server answers: " + "; ".join(failures.values()))
        for url, why in failures.items():
            self.mark_down(url, why)
        self.probe = probe

    def mark_down(self, url: str, why: str) -> None:
        """Take ``url`` out of rotation, once, with a warning saying why and how many are left."""
        with self._lock:
            if url in self.down:
                return
            self.down[url] = time.monotonic()
            left = len([u for u in self.urls if u not in self.down])
        self.warn(f"{self.role} server {url} taken out of rotation ({why}); {left} left")
