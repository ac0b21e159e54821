"""The judge server: connecting to it (or starting the embedded one) and asking it about chunks.

    with open_judge("http://127.0.0.1:8080") as judge:      # or "embedded"
        entry = judge.judge_conversation(reader.read_log(path))

Each chunk is prompted with the judge server's own chat template (ChatML
when the server does not publish one) and the reply constrained where the
engine can do it: llama-server ``json_schema``, ``guided_json`` on
vLLM/aphrodite (both through the adapter's ``translate``), and on koboldcpp,
which has no JSON-schema field, the GBNF grammar (reply.py has both). A
reply that does not parse or does not fit the shape counts as an error
(``garbage``), never as a failure of the analysis.

Per conversation the result is the ``"judge"`` entry of analysis.json::

    {"chunks": [{"lines": [1, 5], "summary": "...", "topics": [...], "themes": [...]}, ...],
     "recurring_topics": [["volleyball", 3], ...], "recurring_themes": [...],
     "errors": 0, "garbage": [{"lines": [...], "error": "...", "reply": "..."}],
     "skipped": 0, "model": "...", "engine": "llama-server", "constraint": "json_schema"}

One request at a time, in the calling process: servers and process pools do
not mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from broken_record.analysis.judge.reply import (
    DEFAULT_LINES,
    GRAMMAR,
    LINE_CHARS,
    SCHEMA,
    Chunk,
    chunk_turns,
    messages_for,
    parse_reply,
    recurring,
)
from broken_record.errors import ParrotError, ServerError
from broken_record.inference import connect, templates
from broken_record.inference.base import ConnectionLost, Engine, EngineError

if TYPE_CHECKING:
    from broken_record.runs.reader import Conversation

MAX_TOKENS = 160          # per reply: the JSON object needs about 60-120 tokens
EMBEDDED_CTX = 2048       # the embedded judge's context: prompts stay well under it
TIMEOUT = 300.0
SAMPLER = {"temperature": 0.2, "seed": 42}
GONE_AFTER = 2            # consecutive lost connections before the judge is given up


class JudgeUnavailable(ParrotError):
    """The judge could not be started or reached; the message is one line naming it."""


class JudgeGone(ParrotError):
    """The judge stopped answering in the middle of the work."""


def constrained(engine: Engine) -> tuple[dict[str, Any], str | None]:
    """The request fields that constrain a reply to the object, and their name on the wire.

    llama-server -> ``json_schema``; vLLM -> ``structured_outputs``; another
    OpenAI-compatible server -> ``guided_json`` (the dialect of the server behind
    /v1: ``json_schema`` for llama-server, ``grammar`` for koboldcpp); koboldcpp -> ``grammar``.
    ``({}, None)`` when the engine can do neither.
    """
    for name, value in (("json_schema", SCHEMA), ("grammar", GRAMMAR)):
        params, dropped = engine.translate({name: value})
        if not dropped and params:
            return params, next(iter(params))
    return {}, None


class Judge:
    """Asks one judge server about chunks of conversations, one request at a time."""

    def __init__(self, engine: Engine, lines: int = DEFAULT_LINES, max_tokens: int = MAX_TOKENS,
                 line_chars: int | None = None):
        self.engine = engine
        self.info = engine.info
        self.lines = max(1, int(lines))
        self.max_tokens = max_tokens
        self.constraint_params, self.constraint = constrained(engine)
        sampler, _ = engine.translate(SAMPLER)
        self.params = {**sampler, **self.constraint_params}
        self.template = templates.load("server", self.info.chat_template if self.info else None)
        self.line_chars = line_chars or self._line_budget()
        self._lost = 0
        self.gone: str | None = None     # why the judge was given up, once it was
        self.embedded = False            # set by open_judge("embedded")

    @property
    def url(self) -> str:
        return self.engine.url

    @property
    def model(self) -> str | None:
        return self.info.model if self.info else None

    @property
    def engine_name(self) -> str:
        return self.info.engine if self.info else self.engine.kind

    def _line_budget(self) -> int:
        # Room per message: the context less the reply and the instructions,
        # at about 3 characters a token; never more than LINE_CHARS.
        n_ctx = self.info.n_ctx if self.info else None
        if not n_ctx:
            return LINE_CHARS
        room = (n_ctx - self.max_tokens - 200) * 3 // self.lines
        return max(60, min(LINE_CHARS, room))

    def prompt(self, chunk: Chunk) -> str:
        """The chunk's messages rendered with the server's template (ChatML when that fails)."""
        messages = messages_for(chunk, self.line_chars)
        try:
            return self.template.render(messages)
        except ParrotError:
            pass
        # Templates without a system role (Gemma-style servers that raise on it).
        merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
        try:
            return self.template.render(merged)
        except ParrotError:
            return templates.builtin("chatml").render(messages)

    def ask(self, chunk: Chunk) -> tuple[dict[str, Any] | None, str | None, str]:
        """``(judgement, None, reply)`` or ``(None, why, reply)``.

        Raises ``JudgeGone`` once ``GONE_AFTER`` requests in a row lost their connection.
        """
        if self.gone:
            raise JudgeGone(self.gone)
        try:
            stream = self.engine.stream(self.prompt(chunk), self.params, self.max_tokens, [])
            reply = stream.text()
        except ConnectionLost as exc:
            self._lost += 1
            if self._lost >= GONE_AFTER:   # this chunk failed; the next ones are not asked
                self.gone = f"judge server {self.url} stopped answering ({first_line(exc)})"
            return None, first_line(exc), ""
        except (EngineError, ParrotError) as exc:
            self._lost = 0
            return None, first_line(exc), ""
        self._lost = 0
        judgement, why = parse_reply(reply)
        if judgement is None and stream.result.stop == "limit":
            why = f"{why} (cut off at the {self.max_tokens}-token limit)"
        return judgement, why, reply

    def judge_chunks(self, chunks: list[Chunk], advance: Callable[[], None] | None = None) -> dict[str, Any]:
        """The ``"judge"`` entry for one conversation's chunks; ``advance()`` after each chunk."""
        judged: list[dict[str, Any]] = []
        garbage: list[dict[str, Any]] = []
        skipped = 0
        for chunk in chunks:
            if self.gone:
                skipped += 1
            else:
                try:
                    judgement, why, reply = self.ask(chunk)
                except JudgeGone:
                    skipped += 1
                else:
                    span = [chunk.start, chunk.end]
                    if judgement is not None:
                        judged.append({"lines": span, **judgement})
                    else:
                        garbage.append({"lines": span, "error": why, "reply": reply[:200]})
            if advance:
                advance()
        return {
            "chunks": judged,
            "recurring_topics": recurring(judged, "topics"),
            "recurring_themes": recurring(judged, "themes"),
            "errors": len(garbage),
            "garbage": garbage,
            "skipped": skipped,
            "model": self.model,
            "engine": self.engine_name,
            "constraint": self.constraint,
        }

    def judge_conversation(self, conv: Conversation, advance: Callable[[], None] | None = None) -> dict[str, Any]:
        """The ``"judge"`` entry of one conversation read from its log."""
        return self.judge_chunks(chunk_turns(conv.turns, self.lines), advance)

    def describe(self) -> dict[str, Any]:
        """The judge itself, as the folder-level ``"judge"`` entry states it."""
        return {"url": self.url, "embedded": self.embedded, "engine": self.engine_name, "model": self.model,
                "constraint": self.constraint, "lines_per_chunk": self.lines,
                "max_tokens": self.max_tokens}


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def normalize_url(spec: str) -> str:
    """``"127.0.0.1:8080"`` -> ``"http://127.0.0.1:8080"``; a URL with a scheme is kept."""
    spec = spec.strip()
    return spec if "://" in spec else "http://" + spec


@contextmanager
def open_judge(spec: str, kind: str = "auto", lines: int = DEFAULT_LINES,
               max_tokens: int = MAX_TOKENS, timeout: float = TIMEOUT) -> Iterator[Judge]:
    """A ready ``Judge`` for a URL, or for ``"embedded"`` (started here, stopped on exit).

    Raises ``JudgeUnavailable`` (one line naming the URL) when the server
    cannot be started or reached.
    """
    if spec == "embedded":
        from broken_record.inference.embedded import EmbeddedServer

        server = EmbeddedServer(ctx=EMBEDDED_CTX, slots=1, name="judge")
        try:
            server.start()
        except ParrotError as exc:
            raise JudgeUnavailable(f"the embedded judge could not start: {first_line(exc)}") from None
        try:
            judge = connect_judge(server.url, "llama-server" if kind == "auto" else kind, lines, max_tokens,
                                  timeout)
            judge.embedded = True
            yield judge
        finally:
            server.stop()
    else:
        yield connect_judge(normalize_url(spec), kind, lines, max_tokens, timeout)


def connect_judge(url: str, kind: str = "auto", lines: int = DEFAULT_LINES, max_tokens: int = MAX_TOKENS,
                  timeout: float = TIMEOUT) -> Judge:
    """A ``Judge`` for the server at ``url``; ``JudgeUnavailable`` (one line) when it cannot be reached."""
    try:
        engine = connect(url, kind, role="judge", timeout=timeout)
    except (ServerError, ConnectionLost):
        raise JudgeUnavailable(f"judge server {url} is unreachable: start it or fix --judge") from None
    except ParrotError as exc:
        message = first_line(exc).replace('set "engine" in the config', "use --judge-engine")
        if not message.startswith("judge server"):
            message = f"judge server {url}: {message}"
        raise JudgeUnavailable(message) from None
    return Judge(engine, lines=lines, max_tokens=max_tokens)
