"""Conversation logs, text or structured, read into one ``Conversation``.

Two formats, both written by writer.py (schema.py describes their records):

- ``.jsonl``: header, one message per line, footer. No footer means the
  conversation was killed: it is read as partial (``complete=False``), and a
  last line cut short by the crash is dropped.
- ``.log``: the original tool's text layout (layout.py's markers). After
  ``--- DONE ---`` come the ``Full Config:`` JSON line, the model lines and
  the messages as ``=== role @ tokens ===`` sections, closed by
  ``--- T tokens, N turns ---``. A log without ``--- DONE ---`` (killed
  before the end) is read from its streamed lines as partial.

A folder holding both files of a conversation is read from the ``.jsonl``.
Files that cannot be read raise ``LogError`` with a one-line reason; what
to do with it (warn, skip) is the caller's business. A file is a conversation
log only if it is text (no NUL bytes, at most a few invalid UTF-8 sequences)
with the layout's markers: a ``.log`` needs ``--- DONE ---`` or the ``--- N ---``
marker written before each streamed turn, a ``.jsonl`` a header line. Nothing
here analyses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from broken_record.runs import layout
from broken_record.runs.layout import CLOSING_RE as _CLOSING
from broken_record.runs.layout import DONE_MARKER
from broken_record.runs.layout import SECTION_RE as _SECTION
from broken_record.runs.layout import TOKEN_MARKER_RE as _MARKER
from broken_record.runs.schema import FooterLine, HeaderLine, MessageLine, RoleSettings, Settings

DEFAULT_AGENT_PREFIX = "Skye:"  # what the original tool hard-coded

_SPEAKER = re.compile(r"^([^\s:][^:]{0,40}:)")


class LogError(Exception):
    """A file that is not a readable conversation log; the message says why."""


@dataclass
class Turn:
    """One message of a conversation."""

    index: int  # position among all messages, 0-based
    role: str  # "system" | "assistant" | "user"
    text: str  # as the other side saw it, speaker prefix included
    content: str  # what was said after the prefix, stripped
    raw: str = ""  # what was said after the prefix and its separating space, unstripped
    source: str | None = None  # "config" | "model" | "human"; None if unknown
    tokens: int | None = None
    stop: str | None = None  # "eos" | "limit" | "word" | "error"; None if unknown
    tokens_before: int | None = None


@dataclass
class Conversation:
    """Everything the analysis needs from one log file."""

    file: str
    format: str  # "jsonl" | "text"
    agent_prefix: str
    user_prefix: str
    turns: list[Turn]
    complete: bool
    end_reason: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=lambda: _unknown_settings())
    classic_lines: list[str] = field(default_factory=list)  # what the classic score reads
    turn_max_tokens: int | None = None
    total_tokens: int | None = None

    @property
    def assistant_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role == "assistant"]


# --- finding logs -------------------------------------------------------------


def find_logs(folder: str | Path) -> list[Path]:
    """The conversation logs of a folder, one per conversation, sorted.

    ``a.log a.jsonl b.log config.json`` -> ``[a.jsonl, b.log]``.
    """
    folder = Path(folder)
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in layout.LOG_SUFFIXES:
            continue
        # The .jsonl carries stop reasons and token counts: prefer it.
        if path.stem not in by_stem or path.suffix == layout.JSONL_SUFFIX:
            by_stem[path.stem] = path
    return [by_stem[stem] for stem in sorted(by_stem)]


def footer_of(path: str | Path) -> dict[str, Any] | None:
    """The footer line of a .jsonl, or None: no such file, or a conversation that was killed."""
    try:
        last = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1]
        footer = json.loads(last)
    except (OSError, IndexError, ValueError):
        return None
    return footer if isinstance(footer, dict) and footer.get("type") == "footer" else None


def complete_in(folder: str | Path) -> list[str]:
    """Stems of the conversations in `folder` whose .jsonl footer says complete."""
    return [path.stem for path in sorted(Path(folder).glob(f"{layout.RUN_PREFIX}*{layout.JSONL_SUFFIX}"))
            if (footer := footer_of(path)) and footer.get("complete")]


def read_log(path: str | Path) -> Conversation:
    """Read a ``.jsonl`` or ``.log`` conversation; ``LogError`` if unreadable."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LogError(f"cannot read it ({exc.strerror or exc})") from None
    _check_text(raw)
    text = raw.decode("utf-8", errors="replace")
    # The original read with universal newlines; do the same.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LogError("the file is empty")
    if path.suffix == layout.JSONL_SUFFIX:
        return parse_jsonl(text, path.name)
    return parse_text_log(text, path.name)


BAD_UTF8_SHARE = 0.01  # more invalid UTF-8 sequences than this share of the bytes: not a text file


def _check_text(raw: bytes) -> None:
    """``LogError`` for a binary file: NUL bytes, or many bytes that are not UTF-8."""
    if b"\x00" in raw:
        raise LogError("binary data (NUL bytes): not a parrot log")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        bad = raw.decode("utf-8", errors="replace").count("\ufffd") - raw.count("\ufffd".encode())
        if bad > max(8, BAD_UTF8_SHARE * len(raw)):
            raise LogError(f"{bad} bytes that are not UTF-8 text: not a parrot log") from None


# --- .jsonl ----------------------------------------------------------------------


def parse_jsonl(text: str, name: str = "conversation.jsonl") -> Conversation:
    """A structured log's header, messages and footer as a ``Conversation``.

    The records' keys are schema.py's; their values are checked here as they
    are used, since any file may be handed in.
    """
    header: HeaderLine | None = None
    footer: FooterLine | None = None
    messages: list[MessageLine] = []
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == last and header is not None:
                break  # a line cut short by a crash: the conversation is partial
            raise LogError(f"line {number + 1} is not JSON") from None
        if not isinstance(record, dict):
            raise LogError(f"line {number + 1} is not a JSON object")
        kind = record.get("type")
        if kind == "header":
            header = cast(HeaderLine, record)
        elif kind == "message":
            messages.append(cast(MessageLine, record))
        elif kind == "footer":
            footer = cast(FooterLine, record)
    if header is None:
        raise LogError("no header line: not a parrot .jsonl log")

    config = _dict_or_none(header.get("config")) or {}
    agent_prefix = _str(header.get("agent_prefix")) or _str(config.get("agent_prefix")) or DEFAULT_AGENT_PREFIX
    user_prefix = _str(header.get("user_prefix")) or _str(config.get("user_prefix")) or ""
    turns = []
    for i, m in enumerate(messages):
        role = _str(m.get("role")) or "unknown"
        text_ = _str(m.get("text"))
        prefix = _str(m.get("prefix")) or (agent_prefix if role == "assistant" else user_prefix if role == "user" else "")
        generated = m.get("generated")
        # The model's text after the prefix, less the one space that separates them (as in a .log).
        raw = _after_prefix(_str(generated), "") if generated is not None else _after_prefix(text_, prefix)
        turns.append(Turn(
            index=i, role=role, text=text_, content=raw.strip(), raw=raw,
            source=_str(m.get("source")) or None,
            tokens=_int(m.get("tokens")), stop=_str(m.get("stop")) or None,
            tokens_before=_int(m.get("tokens_before")),
        ))
    complete = bool(footer.get("complete", True)) if footer else False
    end_reason = _str(footer.get("end_reason")) or None if footer else "interrupted"
    # The classic score reads message lines, as it would in the .log.
    classic_lines = [line for t in turns for line in t.text.split("\n")]
    settings: Settings = {
        "assistant": _role_settings(header.get("assistant"), config.get("sampler")),
        "user": _role_settings(header.get("user"), config.get("user_sampler") or config.get("sampler")),
        "turn_max_tokens": _int(config.get("turn_max_tokens")),
        "total_tokens": _int(config.get("total_tokens")),
    }
    return Conversation(
        file=name, format="jsonl", agent_prefix=agent_prefix, user_prefix=user_prefix,
        turns=turns, complete=complete, end_reason=end_reason, config=config,
        settings=settings, classic_lines=classic_lines,
        turn_max_tokens=_int(config.get("turn_max_tokens")),
        total_tokens=_int(footer.get("total_tokens")) if footer else None,
    )


def _role_settings(info: object, sampler: object) -> RoleSettings:
    """A header's role info as ``Settings`` state it; what the header lacks is None."""
    got = info if isinstance(info, dict) else {}
    return {"model": got.get("model"), "engine": got.get("engine"), "url": got.get("url"),
            "n_ctx": got.get("n_ctx"), "template": got.get("template"), "sampler": _dict_or_none(sampler)}


def _unknown_settings() -> Settings:
    """The settings of a log that states none (a text log cut off before ``--- DONE ---``)."""
    return {"assistant": {"model": None, "engine": None, "sampler": None},
            "user": {"model": None, "engine": None, "sampler": None},
            "turn_max_tokens": None, "total_tokens": None}


# --- .log ------------------------------------------------------------------------


def parse_text_log(text: str, name: str = "conversation.log") -> Conversation:
    """A text log in the original layout as a ``Conversation``."""
    lines = text.split("\n")
    done = next((i for i, line in enumerate(lines) if DONE_MARKER in line), None)
    if done is None:
        return _parse_streamed(lines, name)
    after = lines[done + 1:]

    config: dict[str, Any] = {}
    models: dict[str, str | None] = {"assistant": None, "user": None}
    if after and after[0].strip() == layout.FULL_CONFIG and len(after) > 1:
        try:
            loaded = json.loads(after[1])
            config = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            config = {}
    for line in after[:8]:
        if line.startswith(layout.ASSISTANT_MODEL):
            models["assistant"] = line.split(":", 1)[1].strip() or None
        elif line.startswith(layout.USER_MODEL):
            models["user"] = line.split(":", 1)[1].strip() or None

    sections: list[tuple[str, int, list[str]]] = []
    closing = None
    for line in after:
        head = _SECTION.match(line)
        if head:
            sections.append((head.group(1), int(head.group(2)), []))
            continue
        end = _CLOSING.match(line)
        if end:
            closing = (int(end.group(1)), int(end.group(2)))
            break
        if sections:
            sections[-1][2].append(line)

    agent_prefix = _str(config.get("agent_prefix")) or _guess_prefix(sections, "assistant") or DEFAULT_AGENT_PREFIX
    user_prefix = _str(config.get("user_prefix")) or _guess_prefix(sections, "user") or ""
    if not sections and not any(line.startswith(agent_prefix) for line in after):
        raise LogError("no messages after '--- DONE ---': truncated or not a parrot log")

    turns = []
    n_config = len(config.get("conversation") or []) if isinstance(config.get("conversation"), list) else 0
    limit = _int(config.get("turn_max_tokens"))
    for i, (role, tokens_before, body) in enumerate(sections):
        if closing is None and i == len(sections) - 1:
            while body and body[-1] == "":
                body = body[:-1]
        elif body and body[-1] == "":
            body = body[:-1]  # the blank line before the closing line
        text_ = "\n".join(body)
        prefix = agent_prefix if role == "assistant" else user_prefix if role == "user" else ""
        turns.append(Turn(
            index=i, role=role, text=text_, content=_strip_prefix(text_, prefix),
            raw=_after_prefix(text_, prefix),
            source="config" if i < n_config else "model", tokens_before=tokens_before,
        ))
    if closing is not None:
        _infer_tokens(turns, closing[0], limit)
    else:
        _infer_tokens(turns, None, limit)

    settings: Settings = {
        "assistant": {"model": models["assistant"], "engine": _str(config.get("engine")) or None,
                      "url": config.get("api_url"), "sampler": _dict_or_none(config.get("sampler"))},
        "user": {"model": models["user"], "engine": _str(config.get("user_engine") or config.get("engine")) or None,
                 "url": config.get("user_api_url"),
                 "sampler": _dict_or_none(config.get("user_sampler") or config.get("sampler"))},
        "turn_max_tokens": limit,
        "total_tokens": _int(config.get("total_tokens")),
    }
    return Conversation(
        file=name, format="text", agent_prefix=agent_prefix, user_prefix=user_prefix,
        turns=turns, complete=closing is not None,
        end_reason=None if closing is not None else "interrupted",
        config=config, settings=settings, classic_lines=after, turn_max_tokens=limit,
        total_tokens=closing[0] if closing else None,
    )


def _parse_streamed(lines: list[str], name: str) -> Conversation:
    """A text log cut off before ``--- DONE ---``: its streamed turns, partial."""
    if not any(_MARKER.match(line) for line in lines):
        raise LogError("no '--- N ---' turn marker and no '--- DONE ---': not a parrot log")
    body = [line for line in lines if line.strip() and not _MARKER.match(line)]
    if not body:
        raise LogError("no '--- DONE ---' marker and no turns: empty or not a parrot log")
    # The streamed part starts with an assistant turn; the two speakers alternate.
    speakers = []
    for line in body:
        m = _SPEAKER.match(line)
        if m and m.group(1) not in speakers:
            speakers.append(m.group(1))
        if len(speakers) == 2:
            break
    if not speakers:
        raise LogError("no '--- DONE ---' marker and no 'Name:' turns: not a parrot log")
    agent_prefix = speakers[0]
    user_prefix = speakers[1] if len(speakers) > 1 else ""
    turns: list[Turn] = []
    for line in body:
        if line.startswith(agent_prefix):
            role, prefix = "assistant", agent_prefix
        elif user_prefix and line.startswith(user_prefix):
            role, prefix = "user", user_prefix
        else:
            continue
        turns.append(Turn(index=len(turns), role=role, text=line, content=_strip_prefix(line, prefix),
                          raw=_after_prefix(line, prefix), source="model"))
    return Conversation(
        file=name, format="text", agent_prefix=agent_prefix, user_prefix=user_prefix,
        turns=turns, complete=False, end_reason="interrupted", settings=_unknown_settings(),
        classic_lines=body,
    )


def _infer_tokens(turns: list[Turn], total: int | None, limit: int | None) -> None:
    """Token counts of generated turns from the ``@ tokens_before`` figures.

    A generated turn's tokens are the next turn's count minus its own; with
    ``turn_max_tokens`` known, a turn that used all of it stopped on the limit.
    """
    for i, turn in enumerate(turns):
        if turn.source != "model" or turn.tokens_before is None:
            continue
        following = next((t.tokens_before for t in turns[i + 1:] if t.tokens_before is not None), None)
        if following is None:
            following = total
        if following is None:
            continue
        used = following - turn.tokens_before
        if used < 0:
            continue
        turn.tokens = used
        if limit:
            turn.stop = "limit" if used >= limit else None  # eos or newline: unknown


def _guess_prefix(sections: list[tuple[str, int, list[str]]], role: str) -> str | None:
    for section_role, _, body in sections:
        if section_role == role and body:
            m = _SPEAKER.match(body[0])
            if m:
                return m.group(1)
    return None


# --- small helpers -----------------------------------------------------------------


def _strip_prefix(text: str, prefix: str) -> str:
    """``("Skye: Hi ", "Skye:")`` -> ``"Hi"``."""
    stripped = text.strip()
    if prefix and stripped.startswith(prefix.strip()):
        stripped = stripped[len(prefix.strip()):]
    return stripped.strip()


def _after_prefix(text: str, prefix: str) -> str:
    """``("Skye:   Hi", "Skye:")`` -> ``"  Hi"``: one separating space dropped."""
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    return text[1:] if text.startswith(" ") else text


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict_or_none(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
