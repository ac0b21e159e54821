"""The conversation reader's pure HTML: model text in, escaped markup out.

``turn_html`` draws one turn (its message number ``#m``, its speaker and
speaker turn, stop reason, token count, the loop and break types, echoes
and loop onset flagged on it) and ``highlight`` marks the
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
.brp-flag.echo{background:#e5dbff;color:#5f3dc4}
.brp-flag.onset{background:#a50f15;color:#fff;font-weight:bold}
.brp-turn.brp-onset{border-left-width:8px;border-left-color:#a50f15;background:#fff5f5;border-top:2px dashed #a50f15}
.brp-stop{display:inline-block;border-radius:8px;padding:0 6px;margin-left:4px;font-size:0.75rem;background:#e7f0fa;color:#08519c}
.brp-text{white-space:pre-wrap;word-break:break-word}
.brp-text mark{background:#ffe08a}
</style>
"""


def turn_name(turn: dict, speaker_turn: int | None = None) -> str:
    """How a turn is named: its message number, speaker and speaker turn.

    ``({"index": 15, "role": "assistant"}, 7)`` -> ``"#15 · assistant turn 7"``;
    the system prompt is ``"#0 · system"``.
    """
    role = str(turn.get("role", ""))
    name = f"#{int(turn.get('index', 0))} · {role}"
    return name + (f" turn {speaker_turn}" if speaker_turn is not None and role in frames.SPEAKERS else "")


def turn_html(turn: dict, flags: list[tuple[str, str]], segments: list[str], speaker_turn: int | None = None) -> str:
    """One turn as escaped HTML: header (``#m · speaker turn k``, stop reason, flags) and text.

    A turn flagged ``onset`` (its speaker's loop starts here) is drawn marked.
    """
    role = turn.get("role", "")
    css_role = role if role in ("assistant", "user", "system") else "other"
    if any(kind == "onset" for kind, _ in flags):
        css_role += " brp-onset"
    head = [html.escape(turn_name(turn, speaker_turn))]
    badges = ""
    if turn.get("stop"):
        badges += f'<span class="brp-stop">stop: {html.escape(str(turn["stop"]))}</span>'
    if turn.get("tokens") is not None:
        badges += f'<span class="brp-stop">{html.escape(str(turn["tokens"]))} tokens</span>'
    for kind, name in flags:
        badges += f'<span class="brp-flag {html.escape(kind)}">{html.escape(name.replace("_", " "))}</span>'
    text = str(turn.get("text", ""))
    body = highlight(text, segments) if role == "assistant" else html.escape(text)
    return (
        f'<div class="brp-turn {css_role}" data-message="{int(turn.get("index", 0))}">'
        f'<div class="brp-head">{" · ".join(head)}{badges}</div>'
        f'<div class="brp-text">{body}</div></div>'
    )


def figure(value: Any) -> str:
    """``0.80733`` -> ``"0.8073"``; missing -> ``"—"``."""
    number = frames.as_float(value)
    return "—" if number != number else f"{number:.4g}"


def onset_words(conv: dict, turns: list[dict]) -> list[str]:
    """Where each speaker's loop starts, named by message number.

    ``["assistant loop from #15 (assistant turn 7)"]``; a speaker without a loop says nothing.
    """
    roles = [str(t.get("role", "")) for t in turns]
    words = []
    for speaker in frames.SPEAKERS:
        positions = frames.speaker_messages(roles, speaker)
        m = frames.onset_message(conv, speaker, positions)
        if m is None:
            continue
        k = positions.index(m) if m in positions else frames.onset_turn(conv, speaker)
        words.append(f"{speaker} loop from #{m}" + (f" ({speaker} turn {k})" if k is not None else ""))
    return words


def reader_caption(conv: dict, turns: list[dict]) -> str:
    """The line above a conversation: its turns, figures, the types found and where loops start.

    ``"10 messages · loop density 0.8073 · repeated share (0-1) 0.5886 · types found: single turn loop
    · assistant loop from #5 (assistant turn 2) · turns are named #message number"``.
    """
    present = [name for name, entry in frames.detections(conv).items() if entry.get("present")]
    user = frames.speaker_entry(conv, "user")
    user_present = [name for name, entry in frames.detections(user).items() if entry.get("present")]
    parts = [
        f"{len(turns)} messages",
        f"loop density {figure(conv.get('loop_density'))}",
        f"{MEASURES[BOUNDED]} {figure(frames.bounded_share(conv))}",
        ("types found: " + ", ".join(p.replace("_", " ") for p in present) if present
         else "no loop or break types found"),
    ]
    if user_present:
        parts.append("user's types: " + ", ".join(p.replace("_", " ") for p in user_present))
    parts += onset_words(conv, turns)
    drivers = conv.get("drivers")
    driver = drivers.get("driven_by") if isinstance(drivers, dict) else None
    if driver:
        parts.append(f"loop driven by the {driver}")
    echoes = conv.get("echoes")
    if isinstance(echoes, dict) and any(echoes.get(s) for s in frames.SPEAKERS):
        parts.append("echoes: " + ", ".join(f"{s} {len(echoes.get(s) or [])}" for s in frames.SPEAKERS))
    if not conv.get("complete", True):
        parts.append("interrupted (no footer)")
    parts.append("turns are named #message number (the system prompt is #0)")
    return " · ".join(parts)


def reader_html(turns: list[dict], flags: dict[int, list[tuple[str, str]]], segments: list[str]) -> str:
    """The whole conversation as one escaped block, its styles first; each turn named ``#m · speaker turn k``."""
    counts: dict[str, int] = {}
    body = []
    for i, t in enumerate(turns):
        role = str(t.get("role", ""))
        body.append(turn_html(t, flags.get(i, []), segments, counts.get(role, 0)))
        counts[role] = counts.get(role, 0) + 1
    return READER_CSS + f'<div class="brp-reader">{"".join(body)}</div>'
