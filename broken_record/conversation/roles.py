"""Connecting the two roles to servers: the user's own, or embedded llama-servers.

    with embedded_servers(config, slots=1) as urls:      # {"assistant": [...], "user": [...]}
        assistant = open_role(config.assistant, urls["assistant"][0], config)

With several conversations at once on servers parrot started, each running
conversation holds a lane (0..K-1) with a server of its own (``urls.lanes``)
and each role's requests go to its own slot there (``urls.slots``):
``open_role(..., slot=n)`` keeps it in ``Role.slot`` where the engine can pin
a request to a slot (llama-server), and the turn loop passes it to
``engine.stream(..., slot=role.slot)``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
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
    seed: int | None = None            # the sampler seed of this conversation (``open_role``)

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
                "template": self.template.name, "sampler": sampler, "seed": self.seed,
                "server_defaults": info.settings, "warnings": self.warnings(), "server_notes": self.notes}

    def settings_line(self, seed: str | None = None) -> str:
        """What this role runs on and the sampler settings it sends, for the terminal at start:
        ``assistant: llama-server http://127.0.0.1:8080 · model m.gguf · template chatml · sends
        temperature=0.8 seed=43 (the server's defaults for the rest)``; ``seed`` shows in place
        of the seed's value (parrot.sh: ``"42+n"``)."""
        info = self.info
        shown = {k: (seed if seed is not None and k.endswith("seed") and v == self.seed
                     else json.dumps(v, ensure_ascii=False)) for k, v in self.params.items()}
        sent = " ".join(f"{k}={v}" for k, v in shown.items()) or "nothing"
        model = info.model.rsplit("/", 1)[-1] if info.model else "?"    # a path: its file name
        return (f"{self.name}: {info.engine} {info.url} · model {model} · template "
                f"{self.template.name} · sends {sent} (the server's defaults for the rest)")

    def warnings(self) -> list[str]:
        if not self.dropped:
            return []
        info = self.info
        backend = info.extra.get("backend")   # the server behind an OpenAI-compatible /v1
        engine = f"{info.engine} ({backend})" if backend else info.engine
        return [f"{self.name} engine {engine} at {info.url} cannot honour "
                f"{', '.join(self.dropped)}: not sent"]


def open_role(rc: RoleConfig, url: str, config: Config, notes: list[str] | None = None,
              slot: int | None = None, seed: int | None = None) -> Role:
    """The role ``rc`` connected to ``url``, its template loaded and its sampler translated.

    ``notes``: what starting that server found (``ServerURLs.notes[url]``), kept in the log header.
    ``slot``: the server slot this role's requests run in (``ServerPool.slot``); kept only
    where the engine can pin one (``Engine.pins_slots``: llama-server's own API).
    ``seed``: this conversation's sampler seed (``conversation_seed``), in place of the configured one.
    """
    engine = connect(url, rc.engine, role=rc.name, timeout=config.timeout, api_model=rc.api_model)
    server_template = engine.info.chat_template if engine.info else None
    loaded = templates.load(rc.template, server_template)
    template: templates.ChatTemplate | ServerSideTemplate = loaded
    if loaded.name == "server" and isinstance(engine, LlamaServer):
        template = _checked_server_template(loaded, engine)
    sampler = dict(rc.sampler) if seed is None else {**rc.sampler, "seed": seed}
    params, dropped = engine.translate(sampler)
    return Role(name=rc.name, prefix=rc.prefix, engine=engine, template=template,
                params=params, dropped=dropped, notes=list(notes or []),
                slot=slot if engine.pins_slots else None,
                seed=None if "seed" in dropped else sampler.get("seed"))


def restart_role(failed: Role, rc: RoleConfig, config: Config, revive: Callable[[str], str | None],
                 warn: Callable[[str], None], who: str) -> Role | None:
    """``failed``'s role opened again on its own embedded server (same slot, seed and notes),
    which ``revive`` first starts again if it died, saying so with ``warn`` (``who`` carries on
    from its record of the turns); None if the server does not answer. ``revive`` raises
    ``ServerError`` for a server that keeps dying."""
    url = failed.info.url
    revived = revive(url)
    if revived:
        warn(f"{revived}; {who} carries on from its record of the turns")
    try:
        return open_role(rc, url, config, failed.notes, slot=failed.slot, seed=failed.seed)
    except ParrotError:
        return None


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
    slot ``first + stride * j`` of that server for that role (stride 0: a
    server of its own lane, ``lanes[role][j]``). Servers the user runs are
    not in it: their slots are left to the server.
    """

    def __init__(self, urls: dict[str, list[str]], slots: dict[str, dict[str, tuple[int, int]]] | None = None,
                 notes: dict[str, list[str]] | None = None, servers: dict[str, EmbeddedServer] | None = None,
                 lanes: dict[str, list[str]] | None = None):
        super().__init__(urls)
        self.slots = slots or {}
        self.notes = notes or {}  # url -> what starting that server found (a capped or stretched context)
        self.servers = servers or {}  # url -> the embedded server parrot started there
        self.lanes = lanes or {}  # role -> the URL of lane 0, 1, ...: servers parrot started per lane

    def revive(self, url: str) -> str | None:
        """If ``url`` is an embedded server that died: start it again and say so
        (``EmbeddedServer.revive``); None for a server that runs, or one the user runs."""
        srv = self.servers.get(url)
        return srv.revive() if srv is not None else None

    @property
    def warnings(self) -> list[str]:
        return [note for notes in self.notes.values() for note in notes]


def _threads_per_lane(config: Config, lanes: int) -> int | None:
    """Each lane's server gets its share of the cores (``threads`` if the config sets it):
    several llama-servers each using every core slow each other down many times over."""
    if config.threads or lanes == 1:
        return config.threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // lanes)


@contextlib.contextmanager
def embedded_servers(config: Config, slots: int = 1) -> Iterator[ServerURLs]:
    """Start llama-servers for the roles that name no server; stop them on exit.

    One conversation at a time (``slots`` 1): one process per role, the
    assistant at full context and the user at `user_context`. With ``slots``
    K > 1 (K conversations at once), one process per lane (and per role, if
    the roles use different models), each with ``cores / K`` threads: a lane
    computes one token at a time, as a conversation alone would. llama.cpp's
    results depend on the batch a token is computed in (measured: the same
    seeded prompt gives other text when another conversation's tokens share
    its batch), so conversations sharing one server's batches would not be
    reproducible from their seeds; one server per lane keeps every conversation
    of a seeded batch the same however they are scheduled.
    """
    urls: dict[str, list[str]] = {"assistant": list(config.assistant.api_urls), "user": list(config.user.api_urls)}
    layout: dict[str, dict[str, tuple[int, int]]] = {}
    lanes: dict[str, list[str]] = {}
    started: list[EmbeddedServer] = []
    wanted = [rc for rc in (config.assistant, config.user) if not urls[rc.name]]
    threads = _threads_per_lane(config, slots)

    def start(stack: contextlib.ExitStack, **kwargs: Any) -> EmbeddedServer:
        srv = EmbeddedServer(threads=threads, startup_timeout=config.startup_timeout,
                             rope_scaling=config.rope_scaling, **kwargs)
        stack.enter_context(srv)
        started.append(srv)
        return srv

    with contextlib.ExitStack() as stack:
        if slots == 1:
            for rc in wanted:
                srv = start(stack, model=rc.model, ctx=rc.context, name=rc.name)
                urls[rc.name] = [srv.url]
                layout[rc.name] = {srv.url: (0, 1)}
        elif wanted:
            shared = len(wanted) == 2 and wanted[0].model == wanted[1].model
            for rc in wanted:
                urls[rc.name], lanes[rc.name], layout[rc.name] = [], [], {}
            for lane in range(slots):
                if shared:
                    # one process serves both roles of the lane: slot 0 the assistant, slot 1 the user
                    srv = start(stack, model=wanted[0].model, ctx=max(rc.context for rc in wanted), slots=2,
                                name=f"lane-{lane}")
                    servers = {rc.name: (srv, i) for i, rc in enumerate(wanted)}
                else:
                    servers = {rc.name: (start(stack, model=rc.model, ctx=rc.context,
                                               name=f"{rc.name}-lane-{lane}"), 0) for rc in wanted}
                for name, (srv, slot) in servers.items():
                    if srv.url not in urls[name]:
                        urls[name].append(srv.url)
                    lanes[name].append(srv.url)
                    layout[name][srv.url] = (slot, 0)
        yield ServerURLs(urls, layout, {srv.url: srv.notes for srv in started if srv.notes},
                         {srv.url: srv for srv in started}, lanes)
