"""The turn loop: two models talk until the token budget or a context is full.

The assistant sees the whole conversation with its template, then
`agent_prefix`. The user model sees `user_system` and only the last
`user_memory` messages, roles swapped, then `user_prefix`. Each turn is one
line (the `stop` strings) of at most `turn_max_tokens` tokens. Token totals
are the servers' own counts.

``Dialogue.talk`` writes the conversation as it goes to a
``ConversationLog`` (runs/writer.py): the header, each message as it
exists, the footer; the records are runs/schema.py's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from broken_record.conversation.config import Config
from broken_record.conversation.display import Display
from broken_record.conversation.roles import Role
from broken_record.errors import ConfigError, ParrotError
from broken_record.inference import Completion, ContextOverflow, EngineError
from broken_record.inference.templates import swap_roles
from broken_record.runs.schema import EndReason, Footer, Header, Message, RoleInfo
from broken_record.runs.writer import ConversationLog, closing_text, now_iso


class ContextFull(Exception):
    """The next prompt would not fit the role's context window."""


@dataclass
class Outcome:
    """How a conversation ended: the footer's end_reason, token total and message count
    (``turns``: every message, the config's included, as the original's logs count them),
    and how many of them were generated."""

    end_reason: EndReason
    total_tokens: int
    turns: int
    detail: str = ""
    generated: int = 0

    @property
    def complete(self) -> bool:
        """Ran to its budget or a full context, having generated something."""
        return self.end_reason in ("total_tokens", "context_full") and self.generated > 0

    def summary(self) -> str:
        """``"total_tokens: 512 tokens, 8 turns generated (11 messages)"``, then the detail."""
        return (f"{self.end_reason}: {self.total_tokens} tokens, {self.generated} turns generated "
                f"({self.turns} messages){' (' + self.detail + ')' if self.detail else ''}")


def opening_messages(config: Config) -> list[Message]:
    """The config's messages as the conversation's first records (``"source": "config"``)."""
    out: list[Message] = []
    for m in config.conversation:
        prefix = config.agent_prefix if m["role"] == "assistant" else (
            config.user_prefix if m["role"] == "user" else "")
        generated = m["content"][len(prefix):] if prefix and m["content"].startswith(prefix) \
            else m["content"]
        out.append({"index": len(out), "role": m["role"], "text": m["content"],
                    "prefix": prefix, "generated": generated, "source": "config",
                    "tokens_before": config.initial_tokens})
    return out


def check_opening(config: Config, assistant: Role, user: Role) -> None:
    """Before any log exists: both roles' templates render the opening messages, and each
    first prompt plus a turn of ``turn_max_tokens`` fits its context.

    A template that fails is a ``ParrotError`` naming it; a turn that cannot fit is a
    ``ConfigError`` naming ``turn_max_tokens`` and the context.
    """
    messages = opening_messages(config)
    problems = []
    for role in (assistant, user):
        prompt = (assistant_prompt(role, messages) if role.name == "assistant"
                  else user_prompt(role, messages, config.user_system, config.user_memory))
        n_ctx = role.info.n_ctx
        needed = role.engine.count_tokens(prompt) if n_ctx else None
        if n_ctx and needed is not None and needed + config.turn_max_tokens > n_ctx:
            problems.append(
                f"turn_max_tokens: {config.turn_max_tokens} cannot fit: the {role.name}'s first prompt is "
                f"{needed} tokens and its server ({role.info.url}) has a context of {n_ctx}; use at most "
                f"{max(n_ctx - needed, 0)}, or a larger context")
    if problems:
        raise ConfigError(config.path, problems)


def assistant_prompt(role: Role, messages: list[Message]) -> str:
    """The whole conversation in the assistant's template, then its prefix."""
    view = [{"role": m["role"], "content": m["text"]} for m in messages]
    return role.template.render(view) + role.prefix


def user_prompt(role: Role, messages: list[Message], user_system: str, memory: int) -> str:
    """``user_system`` and the last ``memory`` messages, roles swapped, in the user's template, then its prefix."""
    recent = [m for m in messages if m["role"] != "system"][-memory:]
    view = swap_roles([{"role": m["role"], "content": m["text"]} for m in recent])
    if user_system:
        view = [{"role": "system", "content": user_system}] + view
    return role.template.render(view) + role.prefix


class Dialogue:
    """One conversation between two ready roles, logged to `log` as it goes.

    ``human(prefix)``: the user's line typed by a person, or None to let the
    user model speak; ``on_turn(message)``: called with each message as it
    is logged (progress); ``cancel``: set from another thread to stop as on
    Ctrl-C; ``reconnect(role name, failed role)``: another server's role to
    continue on when a server stops answering, or None.
    """

    def __init__(self, config: Config, assistant: Role, user: Role, log: ConversationLog,
                 display: Display | None = None,
                 human: Callable[[str], str | None] | None = None,
                 on_turn: Callable[[Message], None] | None = None,
                 cancel: threading.Event | None = None,
                 reconnect: Callable[[str, Role], Role | None] | None = None):
        self.config = config
        self.roles = {"assistant": assistant, "user": user}
        # every server each role ran on, in order: more than one after a failover
        self.servers = {name: [role.info.url] for name, role in self.roles.items()}
        self.log = log
        self.display = display or Display(quiet=True)
        self.human = human
        self.on_turn = on_turn
        self.cancel = cancel
        self.reconnect = reconnect
        self.messages: list[Message] = []
        self.total = config.initial_tokens
        self.malformed = 0
        self._settings_logged: set[str] = set()
        self._spoken: set[str] = set()   # roles that have generated a turn

    def header(self) -> Header:
        """The .jsonl header: versions, the config, the prefixes, what each role runs on."""
        import platform

        from broken_record import __version__
        return {"tool_version": __version__, "started": now_iso(), "config": self.config.raw,
                "agent_prefix": self.config.agent_prefix, "user_prefix": self.config.user_prefix,
                "assistant": cast(RoleInfo, self.roles["assistant"].describe()),
                "user": cast(RoleInfo, self.roles["user"].describe()),
                "versions": {"python": platform.python_version()}}

    def talk(self) -> Outcome:
        """The whole conversation: the config's messages, then turns until the budget,
        a full context, an error or Ctrl-C (``cancel``); the log is closed either way."""
        self.log.header(self.header())
        self.display.write("\n")
        for m in opening_messages(self.config):
            self._add(m)
        try:
            outcome = self._loop()
        except KeyboardInterrupt:
            self.display.cut()
            outcome = self._outcome("interrupted", "stopped by the user")
        self._close(outcome)
        return outcome

    def _outcome(self, end_reason: EndReason, detail: str = "") -> Outcome:
        generated = sum(1 for m in self.messages if m["source"] != "config")
        if end_reason == "context_full" and not generated:
            detail += "; nothing was generated: lower turn_max_tokens or give a larger context"
        return Outcome(end_reason, self.total, len(self.messages), detail, generated)

    def _next_role(self) -> str:
        last = next((m["role"] for m in reversed(self.messages) if m["role"] != "system"), "user")
        return "user" if last == "assistant" else "assistant"

    def _prompt(self, role: Role) -> str:
        if role.name == "assistant":
            return assistant_prompt(role, self.messages)
        return user_prompt(role, self.messages, self.config.user_system, self.config.user_memory)

    def _loop(self) -> Outcome:
        cfg = self.config
        while self.total < cfg.total_tokens:
            if self.cancel is not None and self.cancel.is_set():
                raise KeyboardInterrupt
            name = self._next_role()
            if name == "user" and self.human and self._human_turn(name):
                continue
            if name == "assistant":
                self.log.marker(self.total)
                self.display.marker(self.total)
            try:
                completion, attempts = self._turn(name)
            except ContextFull as full:
                return self._outcome("context_full", str(full))
            except ContextOverflow as err:
                return self._outcome("context_full", str(err))
            except EngineError as err:
                return self._outcome("error", str(err))
            role = self.roles[name]     # may have failed over to another server
            tokens = completion.tokens if completion.tokens is not None else \
                role.engine.count_tokens(completion.text)
            if tokens is None:   # a turn that counts 0 would never end the conversation
                return self._outcome("error", f"the {name} server {role.info.url} gave no token count "
                                              f"for its turn and cannot count tokens: set \"engine\" to its "
                                              f"native API")
            record: Message = {
                "index": len(self.messages), "role": name, "text": role.prefix + completion.text,
                "prefix": role.prefix, "generated": completion.text, "source": "model",
                "tokens_before": self.total, "tokens": tokens, "stop": completion.stop,
                "prompt_tokens": completion.prompt_tokens,
                "cached_tokens": completion.cached_tokens,
                "ttft_ms": _round(completion.ttft_ms), "wall_ms": _round(completion.wall_ms),
                "server_prompt_ms": _round(completion.server_prompt_ms),
                "server_gen_ms": _round(completion.server_gen_ms),
                "tokens_per_second": _round(completion.tokens_per_second),
                "attempts": attempts, "server": role.info.url}
            if completion.settings and name not in self._settings_logged:
                record["applied_settings"] = completion.settings
                self._settings_logged.add(name)
            self.malformed += completion.malformed
            self.total += tokens
            self._add(record)
        return self._outcome("total_tokens")

    def _human_turn(self, name: str) -> bool:
        role = self.roles[name]
        typed = self.human(role.prefix) if self.human else None
        if not typed:
            return False
        if role.prefix and not role.prefix.endswith((" ", '"', "*")):
            typed = " " + typed     # as a model continues "Theo:" with " ..."
        tokens = role.engine.count_tokens(typed) or len(typed.split())
        self.display.typed(role.prefix + typed + "\n", role.name)
        self._add({"index": len(self.messages), "role": name, "text": role.prefix + typed,
                   "prefix": role.prefix, "generated": typed, "source": "human",
                   "tokens_before": self.total, "tokens": tokens})
        self.total += tokens
        return True

    def _check_context(self, role: Role, prompt: str) -> None:
        n_ctx = role.info.n_ctx
        if not n_ctx:
            return
        needed = role.engine.count_tokens(prompt)
        if needed is not None and needed + self.config.turn_max_tokens > n_ctx:
            raise ContextFull(f"the {role.name} prompt ({needed} tokens) plus a turn of "
                              f"{self.config.turn_max_tokens} would overflow its context of {n_ctx}")

    def _turn(self, name: str) -> tuple[Completion, int]:
        """One turn: prompt, context check, stream; retried with backoff, or moved
        to another server of the role, when the connection fails."""
        cfg = self.config
        attempt = 0
        while True:
            attempt += 1
            role = self.roles[name]
            stream = None
            try:
                prompt = self._prompt(role)
                self._check_context(role, prompt)
                self.display.write(role.prefix, role.name)
                # a role's first turn reuses no cached prompt: the conversation is then the same
                # whatever its slot held before (a conversation of an earlier session or lane)
                stream = role.engine.stream(prompt, role.params, cfg.turn_max_tokens, cfg.stop, slot=role.slot,
                                            fresh=name not in self._spoken)
                for piece in stream:
                    if self.cancel is not None and self.cancel.is_set():
                        raise KeyboardInterrupt
                    self.display.write(piece, role.name)
                self.display.write("\n")
                self._spoken.add(name)
                return stream.result, attempt
            except EngineError as err:
                if stream is not None:
                    self.malformed += stream.result.malformed
                # the partial turn is not in the log: what follows on stdout (a retry,
                # or "--- DONE ---") starts a line of its own
                self.display.cut()
                if self.cancel is not None and self.cancel.is_set():
                    raise KeyboardInterrupt     # aborted from outside, not a failure
                if not err.retryable:
                    raise
                try:
                    other = self.reconnect(role.name, role) if self.reconnect else None
                except ParrotError as fatal:    # an embedded server that cannot be started again
                    raise EngineError(str(fatal).splitlines()[0]) from None
                if other is not None and other.info.url != role.info.url:
                    # another server of the same role takes over: the prompt is
                    # rebuilt from our own record of the conversation
                    self.display.warn(f"{role.name} server {role.info.url} failed ({err}); "
                                      f"continuing on {other.info.url}")
                    self.roles[name] = other
                    self.servers[name].append(other.info.url)
                    continue
                if other is not None:
                    # the same server again (an embedded one started again after it died,
                    # which reconnect has said): a retry, the prompt rebuilt from our record
                    self.roles[name] = other
                if attempt > cfg.retries:
                    raise
                wait = cfg.retry_backoff * (2 ** (attempt - 1))
                if other is None:
                    self.display.warn(f"{role.name} turn failed ({err}); retry {attempt} of "
                                      f"{cfg.retries} in {wait:.1f}s")
                time.sleep(wait)

    def abort(self) -> None:
        """Stop from another thread: set `cancel` first, then close the streams."""
        for role in self.roles.values():
            role.engine.abort()

    def _add(self, record: Message) -> None:
        self.messages.append(record)
        self.log.message(record)
        if self.on_turn:
            self.on_turn(record)

    def _close(self, outcome: Outcome) -> None:
        closing = closing_text(self.messages, self.config.raw,
                               self.roles["assistant"].info.model or "?",
                               self.roles["user"].info.model or "?", self.total)
        footer: Footer = {"end_reason": outcome.end_reason, "complete": outcome.complete,
                          "detail": outcome.detail, "total_tokens": self.total, "turns": len(self.messages),
                          "malformed_stream_lines": self.malformed}
        self.log.close(footer, closing)
        self.display.write(closing)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
