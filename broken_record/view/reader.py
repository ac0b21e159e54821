"""The conversation reader's pure HTML: model text in, escaped markup out.

``turn_html`` draws one turn (index, role, stop reason, token count, the
loop and break types flagged on it) and ``highlight`` marks the
conversation's repeated segments in an assistant turn's text; every piece
of model text is html-escaped on its own, so none can become markup.
``READER_CSS`` styles the blocks and ``reader_caption`` is the line above
them. The reader is on the Streamlit page only (app.py draws its widgets;
sections.py says why results.html leaves it out).
"""

from __future__ import annotations

import html
from typing import Any

from broken_record.view import frames
from broken_record.view.frames import BOUNDED, MEASURES


def highlight(text: str, segments: list[str]) -> str:
    """``text`` html-escaped, with occurrences of the segments in <mark>.

    Spans are found in the raw text and every piece is escaped on its own,
    so no model text can become markup.
    ``highlight("a <b> a <b>", ["a <b>"])`` -> ``"<mark>a &lt;b&gt;</mark> <mark>a &lt;b&gt;</mark>"``.
    """
    marked = [False] * len(text)
    for segment in sorted({s for s in segments if s and s.strip()}, key=len, reverse=True):
        start = text.find(segment)
        while start != -1:
            end = start + len(segment)
            if not any(marked[start:end]):
                marked[start:end] = [True] * len(segment)
            start = text.find(segment, end)
    pieces: list[str] = []
    i = 0
    while i < len(text):
        j = i
        while j < len(text) and marked[j] == marked[i]:
            j += 1
        chunk = html.escape(text[i:j])
        pieces.append(f"<mark>{chunk}</mark>" if marked[i] else chunk)
        i = j
    return "".join(pieces)


READER_CSS = """
<style>
.brp-turn{border-left:4px solid #ccc;padding:4px 10px;margin:6px 0;font-family:sans-serif;font-size:0.92rem}
.brp-turn.assistant{border-color:#1f77b4}
.brp-turn.user{border-color:#ff7f0e}
.brp-turn.system{border-color:#999;background:#f6f6f6}
.brp-head{color:#555;font-size:0.8rem;margin-bottom:2px}
.brp-flag{display:inline-block;border-radius:8px;padding:0 6px;margin-left:4px;font-size:0.75rem}
.brp-flag.loop{background:#fde0dd;color:#a50f15}
.brp-flag.break{background:#fff3bf;color:#7a4d00}
.brp-stop{display:inline-block;border-radius:8px;padding:0 6px;margin-left:4px;font-size:0.75rem;background:#e7f0fa;color:#08519c}
.brp-text{white-space:pre-wrap;word-break:break-word}
.brp-text mark{background:#ffe08a}
</style>
"""


def turn_html(turn: dict, flags: list[tuple[str, str]], segments: list[str]) -> str:
    """One turn as escaped HTML: header (index, role, stop reason, flags) and text."""
    role = turn.get("role", "")
    css_role = role if role in ("assistant", "user", "system") else "other"
    head = [f"#{int(turn.get('index', 0))}", html.escape(str(role))]
    badges = ""
    if turn.get("stop"):
        badges += f'<span class="brp-stop">stop: {html.escape(str(turn["stop"]))}</span>'
    if turn.get("tokens") is not None:
        badges += f'<span class="brp-stop">{html.escape(str(turn["tokens"]))} tokens</span>'
    for family, name in flags:
        badges += f'<span class="brp-flag {family}">{html.escape(name.replace("_", " "))}</span>'
    text = str(turn.get("text", ""))
    body = highlight(text, segments) if role == "assistant" else html.escape(text)
    return (
        f'<div class="brp-turn {css_role}"><div class="brp-head">{" · ".join(head)}{badges}</div>'
        f'<div class="brp-text">{body}</div></div>'
    )


def figure(value: Any) -> str:
    """``0.80733`` -> ``"0.8073"``; missing -> ``"—"``."""
    number = frames.as_float(value)
    return "—" if number != number else f"{number:.4g}"


def reader_caption(conv: dict, turns: list[dict]) -> str:
    """The line above a conversation: its turns, figures and the types found in it.

    ``"10 turns · loop density 0.8073 · repeated share (0-1) 0.5886 · types found: single turn loop"``.
    """
    present = [name for name, entry in frames.detections(conv).items() if entry.get("present")]
    return (
        f"{len(turns)} turns · loop density {figure(conv.get('loop_density'))} · "
        f"{MEASURES[BOUNDED]} {figure(frames.bounded_share(conv))} · "
        + ("types found: " + ", ".join(p.replace("_", " ") for p in present) if present else "no loop or break types found")
        + ("" if conv.get("complete", True) else " · interrupted (no footer)")
    )


def reader_html(turns: list[dict], flags: dict[int, list[tuple[str, str]]], segments: list[str]) -> str:
    """The whole conversation as one escaped block, its styles first."""
    body = "".join(turn_html(t, flags.get(i, []), segments) for i, t in enumerate(turns))
    return READER_CSS + f'<div class="brp-reader">{body}</div>'
