"""What the judge is asked and what it must answer: chunks, prompt, reply shape, parsing.

Pure: no HTTP, no files. Every chunk of about ``lines`` messages (system
messages left out) becomes two chat messages (``messages_for``), and the
reply must be one JSON object ``{"summary": one sentence, "topics": [single
words], "themes": [single words]}``. ``SCHEMA`` is that shape as JSON schema
(llama-server ``json_schema``, vLLM/aphrodite ``guided_json``) and
``GRAMMAR`` the same shape in GBNF (koboldcpp's ``grammar``). Whatever
constrained it, every reply is parsed and checked by ``parse_reply``.

``lines`` of a chunk are the first and last message indices (0-based,
inclusive, counting every message of the log as the .jsonl ``index`` does).
A word recurs (``recurring``) when it is named in two chunks or more; its
count is the number of chunks naming it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broken_record.runs.reader import Turn

DEFAULT_LINES = 5
LINE_CHARS = 300          # each message is cut to this many characters in the prompt

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


# --- chunks and prompts -------------------------------------------------------------


@dataclass
class Chunk:
    """Consecutive messages of a conversation, judged together."""

    start: int          # index of the first message (as in the log)
    end: int            # index of the last message, inclusive
    lines: list[str]    # the messages' text, speaker prefix included


def chunk_turns(turns: list[Turn], size: int = DEFAULT_LINES) -> list[Chunk]:
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


def messages_for(chunk: Chunk, line_chars: int = LINE_CHARS) -> list[dict[str, str]]:
    """The chat messages that ask for one chunk's judgement: the instructions, then the lines."""
    body = "\n".join(shorten(line, line_chars) for line in chunk.lines)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


# --- replies ------------------------------------------------------------------------


def parse_reply(text: str) -> tuple[dict[str, Any] | None, str | None]:
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
    out: dict[str, Any] = {"summary": " ".join(summary.split())}
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


def recurring(chunks: list[dict[str, Any]], key: str, minimum: int = 2) -> list[list[Any]]:
    """``[[word, chunks naming it], ...]`` for words named in ``minimum`` chunks or more.

    Most frequent first; ties in order of first appearance.
    """
    counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for chunk in chunks:
        for word in dict.fromkeys(chunk.get(key) or []):
            counts[word] += 1
            order.setdefault(word, len(order))
    ranked = sorted(counts, key=lambda w: (-counts[w], order[w]))
    return [[w, counts[w]] for w in ranked if counts[w] >= minimum]
