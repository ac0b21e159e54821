"""Connecting the two roles to servers: the user's own, or embedded llama-servers.

    with embedded_servers(config, slots=1) as urls:      # {"assistant": [...], "user": [...]}
        assistant = open_role(config.assistant, urls["assistant"][0], config)

With several conversations at once on servers parrot started, each running
conversation holds a lane (0..K-1) and each role's requests go to that
lane's own slot (``urls.slots``), so no conversation evicts another's cache:
``open_role(..., slot=n)`` keeps it in ``Role.slot`` where the engine can pin
a request to a slot (llama-server), and the turn loop passes it to
``engine.stream(..., slot=role.slot)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from broken_record.conversation.config import Config, RoleConfig
from broken_record.errors import ParrotError
from broken_record.inference import Engine, EngineError, ServerInfo, connect, templates
from broken_record.inference.embedded import EmbeddedServer
from broken_record.inference.llamacpp import LlamaServer


@dataclass
class Role:
    """One side of the conversation, ready to generate."""

    name: str
    prefix: str
    engine: Engine
    template: templates.ChatTemplate | ServerSideTemplate
    params: dict[str, Any]             # sampler settings in the engine's names
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about an embedded server: context capped or stretched
    slot: int | None = None            # the server slot its requests run in; None: the server chooses

    @property
    def info(self) -> ServerInfo:
        """What the server said when the role connected (``open_role`` probes it)."""
        info = self.engine.info
        if info is None:
            raise EngineError(f"{self.name} server {self.engine.url} was never probed")
        return info

    def describe(self) -> dict[str, Any]:
        info = self.info
        # the slot is logged with the sampler settings, where the run logs have always had it
        sampler = self.params if self.slot is None else {**self.params, "id_slot": self.slot}
        return {"engine": info.engine, "url": info.url, "model": info.model, "n_ctx": info.n_ctx,
                "template": self.template.name, "sampler": sampler,
                "server_settings": info.settings, "warnings": self.warnings(), "server_notes": self.notes}

    def warnings(self) -> list[str]:
        if not self.dropped:
            return []
        return [f"{self.name} engine {self.info.engine} at {self.info.url} cannot honour "
                f"{', '.join(self.dropped)}: not sent"]


def open_role(rc: RoleConfig, url: str, config: Config, notes: list[str] | None = None,
              slot: int | None = None) -> Role:
    """The role ``rc`` connected to ``url``, its template loaded and its sampler translated.

    ``notes``: what starting that server found (``ServerURLs.notes[url]``), kept in the log header.
    ``slot``: the server slot this role's requests run in (``ServerPool.slot``); kept only
    where the engine can pin one (``Engine.pins_slots``: llama-server's own API).
    """
    engine = connect(url, rc.engine, role=rc.name, timeout=config.timeout, api_model=rc.api_model)
    server_template = engine.info.chat_template if engine.info else None
    loaded = templates.load(rc.template, server_template)
    template: templates.ChatTemplate | ServerSideTemplate = loaded
    if loaded.name == "server" and isinstance(engine, LlamaServer):
        template = _checked_server_template(loaded, engine)
    params, dropped = engine.translate(rc.sampler)
    return Role(name=rc.name, prefix=rc.prefix, engine=engine, template=template,
                params=params, dropped=dropped, notes=list(notes or []),
                slot=slot if engine.pins_slots else None)


def _checked_server_template(template: templates.ChatTemplate,
                             engine: LlamaServer) -> templates.ChatTemplate | ServerSideTemplate:
    """Use the local render of the server's template; if Jinja cannot render it,
    let the server apply it (/apply-template)."""
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
             {"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]
    try:
        template.render(probe)
        return template
    except ParrotError:
        return ServerSideTemplate(engine)


class ServerSideTemplate:
    """A template rendered by llama-server's /apply-template."""

    name = "server (/apply-template)"

    def __init__(self, engine: LlamaServer):
        self.engine = engine

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.engine.apply_template(messages)


class ServerURLs(dict[str, list[str]]):
    """``{"assistant": [url, ...], "user": [...]}``, and the slot layout of the servers parrot started.

    ``slots[role][url] = (first, stride)``: the conversation in lane j uses
    slot ``first + stride * j`` of that server for that role. Servers the
    user runs are not in it: their slots are left to the server.
    """

    def __init__(self, urls: dict[str, list[str]], slots: dict[str, dict[str, tuple[int, int]]] | None = None,
                 notes: dict[str, list[str]] | None = None):
        super().__init__(urls)
        self.slots = slots or {}
        self.notes = notes or {}  # url -> what starting that server found (a capped or stretched context)

    @property
    def warnings(self) -> list[str]:
        return [note for notes in self.notes.values() for note in notes]


@contextlib.contextmanager
def embedded_servers(config: Config, slots: int = 1) -> Iterator[ServerURLs]:
    """Start a llama-server per role that names no server; stop them on exit.

    One conversation at a time: one process per role, the assistant at full
    context and the user at `user_context`. With `slots` > 1 (parallel
    conversations) and the same model for both roles, one process with
    2 x `slots` slots serves both: two processes computing at once would fight
    over the same cores, while one batches all requests together (measured:
    1.7x the aggregate throughput at 2 and 4 parallel conversations).
    """
    urls = {"assistant": list(config.assistant.api_urls), "user": list(config.user.api_urls)}
    layout: dict[str, dict[str, tuple[int, int]]] = {}
    started: list[EmbeddedServer] = []
    wanted = [rc for rc in (config.assistant, config.user) if not urls[rc.name]]
    with contextlib.ExitStack() as stack:
        if slots > 1 and len(wanted) == 2 and wanted[0].model == wanted[1].model:
            srv = EmbeddedServer(model=wanted[0].model, ctx=max(rc.context for rc in wanted),
                                 slots=2 * slots, name="shared", threads=config.threads,
                                 startup_timeout=config.startup_timeout, rope_scaling=config.rope_scaling)
            stack.enter_context(srv)
            started.append(srv)
            urls = {"assistant": [srv.url], "user": [srv.url]}
            layout = {"assistant": {srv.url: (0, 2)}, "user": {srv.url: (1, 2)}}
            wanted = []
        for rc in wanted:
            srv = EmbeddedServer(model=rc.model, ctx=rc.context, slots=slots, name=rc.name,
                                 threads=config.threads, startup_timeout=config.startup_timeout,
                                 rope_scaling=config.rope_scaling)
            stack.enter_context(srv)
            started.append(srv)
            urls[rc.name] = [srv.url]
            layout[rc.name] = {srv.url: (0, 1)}
        yield ServerURLs(urls, layout, {srv.url: srv.notes for srv in started if srv.notes})
