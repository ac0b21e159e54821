"""Connecting the two roles to servers: the user's own, or embedded llama-servers.

    with embedded_servers(config, slots=1) as urls:      # {"assistant": [...], "user": [...]}
        assistant = open_role(config.assistant, urls["assistant"][0], config)

With several conversations at once on servers parrot started, each running
conversation holds a lane (0..K-1) and each role's requests go to that
lane's own slot (``urls.slots``), so no conversation evicts another's cache.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from broken_record.conversation.config import Config, RoleConfig
from broken_record.errors import ParrotError
from broken_record.inference import Engine, ServerInfo, connect, templates
from broken_record.inference.embedded import EmbeddedServer


@dataclass
class Role:
    """One side of the conversation, ready to generate."""

    name: str
    prefix: str
    engine: Engine
    template: templates.ChatTemplate
    params: dict                       # sampler settings in the engine's names
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about an embedded server: context capped or stretched

    @property
    def info(self) -> ServerInfo:
        return self.engine.info

    def describe(self) -> dict:
        info = self.info
        return {"engine": info.engine, "url": info.url, "model": info.model, "n_ctx": info.n_ctx,
                "template": self.template.name, "sampler": self.params,
                "server_settings": info.settings, "warnings": self.warnings(), "server_notes": self.notes}

    def warnings(self) -> list[str]:
        if not self.dropped:
            return []
        return [f"{self.name} engine {self.info.engine} at {self.info.url} cannot honour "
                f"{', '.join(self.dropped)}: not sent"]


def open_role(rc: RoleConfig, url: str, config: Config, notes: list[str] | None = None) -> Role:
    """``notes``: what starting that server found (``ServerURLs.notes[url]``), kept in the log header."""
    engine = connect(url, rc.engine, role=rc.name, timeout=config.timeout, api_model=rc.api_model)
    template = templates.load(rc.template, engine.info.chat_template)
    if template.name == "server" and hasattr(engine, "apply_template"):
        template = _checked_server_template(template, engine)
    params, dropped = engine.translate(rc.sampler)
    return Role(name=rc.name, prefix=rc.prefix, engine=engine, template=template,
                params=params, dropped=dropped, notes=list(notes or []))


def _checked_server_template(template, engine):
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

    def __init__(self, engine):
        self.engine = engine

    def render(self, messages, add_generation_prompt=True):
        return self.engine.apply_template(messages)


class ServerURLs(dict):
    """``{"assistant": [url, ...], "user": [...]}``, and the slot layout of the servers parrot started.

    ``slots[role][url] = (first, stride)``: the conversation in lane j uses
    slot ``first + stride * j`` of that server for that role. Servers the
    user runs are not in it: their slots are left to the server.
    """

    def __init__(self, urls: dict, slots: dict | None = None, notes: dict | None = None):
        super().__init__(urls)
        self.slots = slots or {}
        self.notes = notes or {}  # url -> what starting that server found (a capped or stretched context)

    @property
    def warnings(self) -> list[str]:
        return [note for notes in self.notes.values() for note in notes]


@contextlib.contextmanager
def embedded_servers(config: Config, slots: int = 1):
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
