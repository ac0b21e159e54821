"""The servers of one role in parrot.sh: handed out round-robin, dead ones taken out.

    pools = ServerPool.for_roles(urls, warn)     # {"assistant": pool, "user": pool}
    url = pools["assistant"].pick()              # None: no server of the role is left
    pools["assistant"].mark_down(url, "stopped answering")

A role names one server or several (``api_url`` as a list); parrot.sh's
conversations share them. On servers parrot started, each lane (a running
conversation's place, 0..K-1) has its own slot per role (``slot``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from broken_record.conversation.roles import ServerURLs
from broken_record.errors import ParrotError, ServerError


class ServerPool:
    """The servers of one role: handed out round-robin, dead ones taken out."""

    def __init__(self, role: str, urls: list[str], warn: Callable[[str], None],
                 slots: dict[str, tuple[int, int]] | None = None,
                 notes: dict[str, list[str]] | None = None):
        self.role = role
        self.urls = list(urls)
        self.slots = slots or {}  # url -> (first, stride) on servers parrot started (ServerURLs)
        self.notes = notes or {}  # url -> notes from starting that server
        self.down: set[str] = set()
        self.warn = warn
        self._lock = threading.Lock()
        self._next = 0

    def healthy(self) -> list[str]:
        """The servers still in rotation."""
        return [u for u in self.urls if u not in self.down]

    def pick(self, avoid: str | None = None) -> str | None:
        """The next server in rotation, other than ``avoid``; None when none is left."""
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
    def for_roles(cls, urls: ServerURLs, warn: Callable[[str], None]) -> dict[str, ServerPool]:
        """One pool per role, from ``embedded_servers``' URLs, slot layout and notes."""
        return {name: cls(name, u, warn, urls.slots.get(name), urls.notes) for name, u in urls.items()}

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

    def mark_down(self, url: str, why: str) -> None:
        """Take ``url`` out of rotation, once, with a warning saying why and how many are left."""
        with self._lock:
            if url in self.down:
                return
            self.down.add(url)
            left = len(self.healthy())
        self.warn(f"{self.role} server {url} taken out of rotation ({why}); {left} left")
