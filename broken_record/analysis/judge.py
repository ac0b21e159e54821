"""The optional LLM judge: what each stretch of a conversation is about.

    with open_judge("http://127.0.0.1:8080") as judge:      # or "embedded"
        entry = judge.judge_conversation(logs.read_log(path))

Every chunk of about ``lines`` messages (system messages left out) goes to
the judge model, prompted with the judge server's own chat template (ChatML
when the server does not publish one), and the reply must be one JSON object
``{"summary": one sentence, "topics": [single words], "themes": [single
words]}``. The reply is constrained where the engine can do it:
llama-server ``json_schema``, ``guided_json`` on vLLM/aphrodite (both through
the adapter's ``translate``), and on koboldcpp, which has no JSON-schema
field, the GBNF ``grammar`` below. Every reply is still parsed and checked
here: one that does not parse or does not fit the shape counts as an error
(``garbage``), never as a failure of the analysis.

Per conversation the result is the ``"judge"`` entry of analysis.json::

    {"chunks": [{"lines": [1, 5], "summary": "...", "topics": [...], "themes": [...]}, ...],
     "recurring_topics": [["volleyball", 3], ...], "recurring_themes": [...],
     "errors": 0, "garbage": [{"lines": [...], "error": "...", "reply": "..."}],
     "skipped": 0, "model": "...", "engine": "llama-server", "constraint": "json_schema"}

``lines`` are the first and last message indices of the chunk (0-based,
inclusive, counting every message of the log as the .jsonl ``index`` does).
A word recurs when it is named in two chunks or more; its count is the
number of chunks naming it.

The judging runs in the calling process, one request at a time, after the
pooled analysis: servers and process pools do not mix.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from broken_record.errors import ParrotError, ServerError
from broken_record.inference import connect, templates
from broken_record.inference.base import ConnectionLost, Engine, EngineError
from broken_record.runs import reader as logs

DEFAULT_LINES = 5
MAX_TOKENS = 160          # per reply: the JSON object needs about 60-120 tokens
LINE_CHARS = 300          # each message is cut to this many characters in the prompt
EMBEDDED_CTX = 2048       # the embedded judge's context: prompts stay well under it
TIMEOUT = 300.0
SAMPLER = {"temperature": 0.2, "seed": 42}
GONE_AFTER = 2            # consecutive lost connections before the judge is given up

MAX_SUMMARY = 160
MAX_WORDS = 4
WORD_PATTERN = "^[A-Za-z]{2,20}$"

_WORD = {"type": "string", "pattern": WORD_PATTERN}
SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "minLength": 10, "maxLength": MAX_SUMMARY},
        "topics": {"type": "array", "items": _WORD, "minItems": 1, "maxItems": MAX_WORDS},
        "themes": {"type": "array", "items": _WORD, "minItems": 1, "maxItems": MAX_WORDS},
    },
    "required": ["summary", "topics", "themes"],
    "additionalProperties": False,
}

# The same object in GBNF (llama.cpp's grammar format, which koboldcpp uses):
# keys in order, a bounded summary string, 1-4 words of 2-20 ASCII letters each.
GRAMMAR = r"""root ::= "{" ws "\"summary\"" ws ":" ws summary ws "," ws "\"topics\"" ws ":" ws words ws "," ws "\"themes\"" ws ":" ws words ws "}"
summary ::= "\"" char{10,160} "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" ["\\/bfnrt]
words ::= "[" ws word (ws "," ws word){0,3} ws "]"
word ::= "\"" [A-Za-z]{2,20} "\""
ws ::= [ \t\n]{0,4}
"""

SYSTEM = ('Summarize the chat lines. Reply with JSON: {"summary": "...", "topics": ["...", ...], '
          '"themes": ["...", ...]}. summary: one sentence on what happens. topics: single words for '
          'what they talk about. themes: single words for the mood or ideas, e.g. "romance", '
          '"humor", "sports".')

# A word as the parser accepts it (any script): letters/digits, inner ' or -.
_WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_EDGE = ".,;:!?\"'“”‘’()[]{}<>*#`"


class JudgeUnavailable(ParrotError):
    """The judge could not be started or reached; the message is one line naming it."""


class JudgeGone(ParrotError):
    """The judge stopped answering in the middle of the work."""


# --- chunks and prompts -------------------------------------------------------------


@dataclass
class Chunk:
    start: int          # index of the first message (as in the log)
    end: int            # index of the last message, inclusive
    lines: list[str]    # the messages' text, speaker prefix included


def chunk_turns(turns: list[logs.Turn], size: int = DEFAULT_LINES) -> list[Chunk]:
    """Messages in chunks of about ``size``; system messages left out.

    A short tail (under half a chunk) joins the chunk before it: 11 messages
    in fives -> chunks of 5 and 6; 13 -> 5, 5, 3.
    """
    size = max(1, int(size))
    lines = [t for t in turns if t.role != "system"]
    groups = [lines[i:i + size] for i in range(0, len(lines), size)]
    if len(groups) > 1 and len(groups[-1]) * 2 < size:
        groups[-2].extend(groups.pop())
    return [Chunk(g[0].index, g[-1].index, [t.text for t in g]) for g in groups]


def shorten(text: str, limit: int = LINE_CHARS) -> str:
    """One line of at most ``limit`` characters: ``"a\\nb"`` -> ``"a b"``; longer ones end in "…"."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def messages_for(chunk: Chunk, line_chars: int = LINE_CHARS) -> list[dict]:
    """The chat messages that ask for one chunk's judgement."""
    body = "\n".join(shorten(line, line_chars) for line in chunk.lines)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


# --- replies ------------------------------------------------------------------------


def parse_reply(text: str) -> tuple[dict | None, str | None]:
    """``(judgement, None)`` for a reply of the right shape, else ``(None, why)``.

    ``'{"summary": "They meet.", "topics": ["Coffee"], "themes": []}'`` ->
    ``({"summary": "They meet.", "topics": ["coffee"], "themes": []}, None)``.
    Words are lower-cased, stripped of surrounding punctuation and deduplicated;
    a JSON object wrapped in other text (a fence, a preamble) is still found.
    """
    text = (text or "").strip()
    if not text:
        return None, "empty reply"
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                obj = json.loads(text[start:end + 1])
            except ValueError:
                obj = None
        if obj is None:
            return None, "not JSON"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    summary = obj.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return None, "no summary string"
    out = {"summary": " ".join(summary.split())}
    for key in ("topics", "themes"):
        items = obj.get(key)
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return None, f"{key} is not a list of strings"
        words: list[str] = []
        for item in items:
            word = item.strip().strip(_EDGE).lower()
            if not word:
                continue
            if not _WORD_RE.fullmatch(word):
                return None, f"{key}: {shorten(item, 40)!r} is not a single word"
            if word not in words:
                words.append(word)
        out[key] = words
    return out, None


def recurring(chunks: list[dict], key: str, minimum: int = 2) -> list[list]:
    """``[[word, chunks naming it], ...]`` for words named in ``minimum`` chunks or more.

    Most frequent first; ties in order of first appearance.
    """
    counts: Counter = Counter()
    order: dict[str, int] = {}
    for chunk in chunks:
        for word in dict.fromkeys(chunk.get(key) or []):
            counts[word] += 1
            order.setdefault(word, len(order))
    ranked = sorted(counts, key=lambda w: (-counts[w], order[w]))
    return [[w, counts[w]] for w in ranked if counts[w] >= minimum]


# --- the judge ----------------------------------------------------------------------


def constrained(engine: Engine) -> tuple[dict, str | None]:
    """The request fields that constrain a reply to the object, and their name on the wire.

    llama-server -> ``json_schema``; OpenAI-compatible -> ``guided_json``
    (``json_schema`` when it is llama-server behind /v1); koboldcpp -> ``grammar``.
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

    def ask(self, chunk: Chunk) -> tuple[dict | None, str | None, str]:
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
                self.gone = f"judge server {self.url} stopped answering ({_first_line(exc)})"
            return None, _first_line(exc), ""
        except (EngineError, ParrotError) as exc:
            self._lost = 0
            return None, _first_line(exc), ""
        self._lost = 0
        judgement, why = parse_reply(reply)
        if judgement is None and stream.result.stop == "limit":
            why = f"{why} (cut off at the {self.max_tokens}-token limit)"
        return judgement, why, reply

    def judge_chunks(self, chunks: list[Chunk], advance: Callable[[], None] | None = None) -> dict:
        """The ``"judge"`` entry for one conversation's chunks."""
        judged, garbage, skipped = [], [], 0
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

    def judge_conversation(self, conv: logs.Conversation, advance: Callable[[], None] | None = None) -> dict:
        return self.judge_chunks(chunk_turns(conv.turns, self.lines), advance)

    def describe(self) -> dict:
        return {"url": self.url, "embedded": self.embedded, "engine": self.engine_name, "model": self.model,
                "constraint": self.constraint, "lines_per_chunk": self.lines,
                "max_tokens": self.max_tokens}


def _first_line(exc: BaseException) -> str:
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
            raise JudgeUnavailable(f"the embedded judge could not start: {_first_line(exc)}") from None
        try:
            judge = _connect(server.url, "llama-server" if kind == "auto" else kind, lines, max_tokens, timeout)
            judge.embedded = True
            yield judge
        finally:
            server.stop()
    else:
        yield _connect(normalize_url(spec), kind, lines, max_tokens, timeout)


def _connect(url: str, kind: str, lines: int, max_tokens: int, timeout: float) -> Judge:
    try:
        engine = connect(url, kind, role="judge", timeout=timeout)
    except (ServerError, ConnectionLost):
        raise JudgeUnavailable(f"judge server {url} is unreachable: start it or fix --judge") from None
    except ParrotError as exc:
        message = _first_line(exc).replace('set "engine" in the config', "use --judge-engine")
        if not message.startswith("judge server"):
            message = f"judge server {url}: {message}"
        raise JudgeUnavailable(message) from None
    return Judge(engine, lines=lines, max_tokens=max_tokens)


# --- folders --------------------------------------------------------------------------


def judge_folders(analyses: list[tuple[str | Path, dict]], spec: str, kind: str = "auto",
                  lines: int = DEFAULT_LINES, max_tokens: int = MAX_TOKENS,
                  progress: bool | None = None) -> list[str]:
    """Judge every conversation of analysed folders in place; returns warning lines.

    ``analyses``: ``(folder, analysis dict)`` pairs from ``analysis.analyze_folder``.
    Each conversation gets a ``"judge"`` entry and each analysis a folder-level
    ``"judge"`` (the judge, totals, words recurring across the folder). A judge
    that cannot be reached gives one warning and ``{"url": ..., "error": ...}``
    as the folder-level entry; the analyses are otherwise untouched. ``progress``:
    a rich progress line on stderr (default: when stderr is a terminal).
    """
    work = []   # (analysis, conversation entry, chunks)
    warnings: list[str] = []
    for folder, analysis in analyses:
        for conv in analysis["conversations"]:
            try:
                turns = logs.read_log(Path(folder) / conv["file"]).turns
            except logs.LogError as exc:
                warnings.append(f"judge: {conv['file']}: {exc}; not judged")
                continue
            work.append((analysis, conv, chunk_turns(turns, lines)))
    try:
        with open_judge(spec, kind, lines=lines, max_tokens=max_tokens) as judge:
            with _progress(sum(len(c) for _, _, c in work), progress) as advance:
                for _, conv, chunks in work:
                    advance.describe(conv["file"])
                    conv["judge"] = judge.judge_chunks(chunks, advance)
            for _, analysis in analyses:
                analysis["judge"] = _folder_entry(judge, analysis)
    except JudgeUnavailable as exc:
        for _, analysis in analyses:
            analysis["judge"] = {"url": spec if spec == "embedded" else normalize_url(spec), "error": str(exc)}
        return [f"{exc}; analysis written without the judge"] + warnings
    errors = sum(c["judge"]["errors"] for _, c, _ in work)
    asked = sum(len(c["judge"]["chunks"]) + c["judge"]["errors"] for _, c, _ in work)
    if judge.gone:
        skipped = sum(c["judge"]["skipped"] for _, c, _ in work)
        warnings.append(f"{judge.gone}: {skipped} chunk(s) not judged")
    if errors:
        warnings.append(f"judge: {errors} of {asked} replies were unusable (see \"garbage\" in analysis.json)")
    return warnings


def _folder_entry(judge: Judge, analysis: dict) -> dict:
    judged = [c["judge"] for c in analysis["conversations"] if "judge" in c]
    chunks = [chunk for j in judged for chunk in j["chunks"]]
    return {
        **judge.describe(),
        "chunks": len(chunks),
        "errors": sum(j["errors"] for j in judged),
        "skipped": sum(j["skipped"] for j in judged),
        "recurring_topics": recurring(chunks, "topics"),
        "recurring_themes": recurring(chunks, "themes"),
        "gone": judge.gone,
    }


class _Advance:
    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def __call__(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def describe(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"judge {name}")


@contextmanager
def _progress(total: int, enabled: bool | None) -> Iterator[_Advance]:
    from rich.console import Console

    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled or total == 0:
        yield _Advance()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        yield _Advance(progress, progress.add_task("judge", total=total))
