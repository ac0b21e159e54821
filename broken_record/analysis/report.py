"""The console report of an analysis, with rich.

Keeps the original analyze.py's lines (``Character Count: ...``, ``Loop
Density: 0.4615``, ``  segment (found N times)``, ``  >> longer (found N
times)``, the histograms as ``low-high: ### (n)``) so anything that read the
old output still can, and adds per conversation the types each speaker shows
with the messages involved, the loop onsets and who drives the repetition;
then a table of the types per conversation, a folder summary and a legend of
what the figures mean. Turns are named by message number ``#m`` everywhere,
as in analysis.json and the dashboard's reader.

Texts from the logs are printed as plain text, never as rich markup. Piped
output is not wrapped: a line is as long as its text.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from broken_record.analysis.detectors import BREAK_TYPES, CONTENT_LOOPS, LOOP_TYPES, PREFIX_LONG, SPEAKERS

SHORT = {
    "single_turn_loop": "single", "multi_turn_loop": "multi", "intra_turn_repetition": "intra",
    "prefix_repetition": "prefix", "semantic_repetition": "semantic", "word_soup": "soup",
    "nothing_to_say": "empty", "apostrophe_break": "apostrophe", "leading_whitespace": "whitespace",
    "rejection": "reject",
}
MAX_MESSAGES = 12  # message numbers listed per type before "… (+N more)"

LEGEND = f"""\
How to read this report
  #m               a message, by its number in the .jsonl (the system prompt is #0), as in view.py's reader;
                   "assistant turn k" counts the assistant's messages from 0, opening lines included.
  Character Count  characters of the assistant's lines; Average Response Length is per assistant line.
  Loop Score       the original's classic score: for windows of 64 down to 5 words, the most frequent
                   repeated window is removed from the assistant's text and counted; the score is the
                   sum of characters x count of the removed segments.
  Loop Density     Loop Score / Character Count. Overlapping windows are all counted, so it can exceed 1;
                   kept as the original computed it, to compare with old results.
  Repeated Share   the share (0-1) of the assistant's text the classic mining removed: the bounded measure.
  segment (found N times)       a repeated segment and how often it was removed, most frequent first;
  >> longer (found N times)     a longer removed segment that contains the one above it.
  Types            each speaker's loop and break types (README.md, "Loops and breaks"), with their
                   severity and the messages that show them. Severity is the same for every type:
                   the share of that speaker's generated turns showing it (0.50 = half of them).
  loop onset       the first message of a content loop ({", ".join(CONTENT_LOOPS)};
                   a repeated opening counts once it is {PREFIX_LONG}+ words long). A conversation "loops"
                   when its assistant has an onset.
  driven by        the speaker who first said the repeated segments (weighted by how often they repeat);
  echoes           turns that copy the other speaker's turn just before them."""


def make_console() -> Console:
    """The report's console: rich on a terminal; unwrapped plain lines when piped."""
    if sys.stdout.isatty():
        return Console(highlight=False, soft_wrap=True)
    # Not a terminal: no colours, and wide enough that nothing wraps or splits a file name.
    return Console(highlight=False, soft_wrap=True, width=100_000, no_color=True, color_system=None)


def print_report(analysis: dict, console: Console | None = None) -> None:
    """Per conversation, then the histograms, then the types table, summary and legend."""
    console = console or make_console()
    console.print(Text(f"\n{analysis['folder']}", style="bold underline"))
    for conv in analysis["conversations"]:
        console.print(conversation_text(conv))
        if conv.get("judge"):
            _judge(console, conv["judge"])
    summary = analysis["summary"]
    hist = summary["histograms"]
    console.print(histogram_text("Histogram of Loop Densities:", hist["loop_density"], "{:.2f}"))
    if "repeated_share" in hist:
        console.print(histogram_text("Histogram of Repeated Shares (0-1):", hist["repeated_share"], "{:.1f}"))
    console.print(histogram_text("Histogram of Response Lengths:", hist["response_length"], "{:.0f}"))
    console.print(types_table(analysis))
    console.print(summary_table(analysis))
    console.print(speakers_table(analysis))
    judge = analysis.get("judge")
    if judge and not judge.get("error"):
        _judge_summary(console, judge)
    console.print(Text("\n" + LEGEND, style="dim"))
    for warning in analysis.get("warnings", []):
        console.print(Text(f"warning: {warning}", style="yellow"))


def messages_list(messages: list[int], limit: int = MAX_MESSAGES) -> str:
    """``[3, 5, 7]`` -> ``"#3 #5 #7"``; longer lists end with ``"… (+N more)"``."""
    shown = " ".join(f"#{m}" for m in messages[:limit])
    return shown + (f" … (+{len(messages) - limit} more)" if len(messages) > limit else "")


def _found(part: dict) -> list[tuple[str, dict]]:
    return [(name, e) for family in ("loops", "breaks") for name, e in part[family].items() if e["present"]]


def _onset(part: dict, speaker: str) -> str:
    message, turn = part.get("loop_onset_message"), part.get("loop_onset_turn")
    if turn is None:
        return "no loop"
    where = f"#{message}" if message is not None else "?"
    return f"loop from {where} ({speaker} turn {turn})"


def conversation_text(conv: dict) -> Text:
    """One conversation's block: the original's figures and segments, then types, onsets and drivers."""
    out = Text(f"\n{conv['file']}", style="bold cyan")
    if not conv["complete"]:
        out.append(f"  (partial: {conv.get('end_reason') or 'interrupted'})", style="yellow")
    out.append(f"\nCharacter Count: {conv['character_count']}"
               f"\nLoop Score: {conv['loop_score']}"
               f"\nLoop Density: {conv['loop_density']:.4f}"
               f"\nAverage Response Length: {conv['avg_response_length']:.2f}")
    out.append(f"\nRepeated Share: {conv['repeated_share']:.4f}", style="dim")
    for speaker in SPEAKERS:
        part = conv if speaker == "assistant" else conv.get("user")
        if part is None:
            continue
        found = _found(part)
        out.append(f"\nTypes ({speaker}): ", style="dim")
        if found:
            out.append("; ".join(f"{name} {e['severity']:.2f} {messages_list(e.get('messages') or [])}".rstrip()
                                 for name, e in found), style="magenta")
        else:
            out.append("none", style="dim")
        out.append(f"  [{_onset(part, speaker)}]", style="dim")
    drivers = conv.get("drivers")
    if drivers and (drivers.get("driven_by") or any(drivers["echoes"].values())):
        line = "\nRepetition: "
        if drivers.get("driven_by"):
            first = drivers["first_share"][drivers["driven_by"]]
            line += f"driven by the {drivers['driven_by']} (first said {first:.0%} of the repeated segments); "
        echoes = conv.get("echoes") or {}
        line += (f"echoes: the user copied the assistant {len(echoes.get('user', []))}x, "
                 f"the assistant copied the user {len(echoes.get('assistant', []))}x")
        out.append(line, style="dim")
    extensions = conv.get("segment_extensions") or [[] for _ in conv["top_segments"]]
    for (segment, count), longer in zip(conv["top_segments"], extensions):
        out.append(f"\n  {segment} (found {count} times)")
        for other, c in longer:
            out.append(f"\n  >> {other} (found {c} times)", style="dim")
    return out


def _words(pairs: list) -> str:
    return ", ".join(f"{word} ({count})" for word, count in pairs) or "none"


def _judge(console: Console, judge: dict) -> None:
    """The judge's summaries of one conversation, and the words that recur in them."""
    head = Text("Judge: ", style="bold")
    head.append(f"{len(judge['chunks'])} chunk(s) summarised")
    if judge.get("errors"):
        head.append(f", {judge['errors']} unusable repl{'y' if judge['errors'] == 1 else 'ies'}", style="yellow")
    if judge.get("skipped"):
        head.append(f", {judge['skipped']} not judged", style="yellow")
    console.print(head)
    # summaries and unusable replies in the order of the conversation
    for entry in sorted(judge["chunks"] + judge.get("garbage", []), key=lambda e: e["lines"][0]):
        start, end = entry["lines"]
        if "summary" in entry:
            line = Text(f"  lines {start}-{end}: ", style="dim")
            line.append(entry["summary"])
        else:
            line = Text(f"  lines {start}-{end}: unusable reply ({entry['error']})", style="yellow")
        console.print(line)
    console.print(Text(f"  recurring topics: {_words(judge['recurring_topics'])}"))
    console.print(Text(f"  recurring themes: {_words(judge['recurring_themes'])}"))


def histogram_text(title: str, buckets: list, pattern: str) -> Text:
    """``title`` then ``low-high: ### (n)`` per bucket (``inf`` for an open last one)."""
    lines = [f"\n{title}"]
    for low, high, count in buckets:
        top = "inf" if high is None else pattern.format(high)
        lines.append(f"{pattern.format(low)}-{top}: {'#' * count} ({count})")
    return Text("\n".join(lines))


def _types_cell(part: dict | None) -> Text:
    if part is None:
        return Text("?", style="dim")
    found = [f"{SHORT[n]} {part[f][n]['severity']:.2f}" for f, names in (("loops", LOOP_TYPES), ("breaks", BREAK_TYPES))
             for n in names if part[f][n]["present"]]
    return Text(", ".join(found), style="red") if found else Text("·", style="dim")


def types_table(analysis: dict) -> Table:
    """One row per conversation: each speaker's types with their severity, the onsets, the driver."""
    table = Table(title="Loops and breaks per conversation (severity: share of the speaker's turns)",
                  title_justify="left")
    table.add_column("conversation", no_wrap=True)
    table.add_column("assistant")
    table.add_column("user")
    table.add_column("onset", justify="right")
    table.add_column("user onset", justify="right")
    table.add_column("driven by")
    for conv in analysis["conversations"]:
        user = conv.get("user")
        onset, user_onset = conv.get("loop_onset_message"), (user or {}).get("loop_onset_message")
        driven = (conv.get("drivers") or {}).get("driven_by")
        table.add_row(Text(conv["file"]), _types_cell(conv), _types_cell(user),
                      "—" if onset is None else f"#{onset}", "—" if user_onset is None else f"#{user_onset}",
                      driven or "—")
    return table


def summary_table(analysis: dict) -> Table:
    """The folder's figures: counts, the classic means, the drivers, the stop reasons."""
    s = analysis["summary"]
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("conversations", f"{s['conversations']} ({s['complete']} complete, {s['partial']} partial, "
                          f"{s['skipped']} skipped)"),
        ("mean average response length", _fmt(s["mean_avg_response_length"], "{:.2f}")),
        ("mean loop density", _fmt(s["mean_loop_density"])),
        ("mean repeated share", _fmt(s["mean_repeated_share"])),
    ]
    if s.get("driven_by"):
        rows.append(("repetition driven by (conversations)", ", ".join(f"{k} {v}" for k, v in s["driven_by"].items())))
    if s.get("stop_reasons"):
        rows.append(("stop reasons (turns of both speakers)",
                     ", ".join(f"{k} {v}" for k, v in s["stop_reasons"].items())))
    for name, value in rows:
        table.add_row(name, value)
    return table


def speakers_table(analysis: dict) -> Table:
    """Per speaker: the share of conversations that loop and that show each type, the mean onset, echoes."""
    s = analysis["summary"]
    user = s.get("user") or {}
    table = Table(title="Per speaker (shares of conversations)", title_justify="left")
    table.add_column("figure")
    table.add_column("assistant", justify="right")
    table.add_column("user", justify="right")
    table.add_row("conversations that loop", _fmt(s["looping_share"], "{:.0%}"),
                  _fmt(user.get("looping_share"), "{:.0%}"))
    table.add_row("mean loop onset (message #)", _fmt(s.get("mean_loop_onset_message"), "{:.1f}"),
                  _fmt(user.get("mean_loop_onset_message"), "{:.1f}"))
    table.add_row("turns copying the other speaker", _fmt(s.get("echoes"), "{}"), _fmt(user.get("echoes"), "{}"))
    for family in ("loop_types", "break_types"):
        for name, share in s[family].items():
            table.add_row(name, f"{share:.0%}", _fmt((user.get(family) or {}).get(name), "{:.0%}"))
    return table


def _fmt(value, pattern="{:.4f}") -> str:
    return "—" if value is None else pattern.format(value)


def _judge_summary(console: Console, judge: dict) -> None:
    """The folder's judge line: who judged, how it went, the words recurring across the folder."""
    where = "embedded llama-server" if judge.get("embedded") else judge.get("url")
    head = Text("\nJudge: ", style="bold")
    model = judge.get("model") or "?"
    if model.endswith(".gguf"):
        model = model.replace("\\", "/").rsplit("/", 1)[-1]  # a llama-server model path: its file name
    head.append(f"{model} ({judge.get('engine')}, {where}, "
                f"replies constrained by {judge.get('constraint') or 'nothing'}): "
                f"{judge['chunks']} chunk(s) summarised, {judge['errors']} unusable")
    if judge.get("skipped"):
        head.append(f", {judge['skipped']} not judged", style="yellow")
    console.print(head)
    console.print(Text(f"  recurring topics across the folder: {_words(judge['recurring_topics'])}"))
    console.print(Text(f"  recurring themes across the folder: {_words(judge['recurring_themes'])}"))
