"""The console report of an analysis, with rich.

Keeps the original analyze.py's lines (``Character Count: ...``, ``Loop
Density: 0.4615``, ``  segment (found N times)``, ``  >> longer (found N
times)``, the two histograms as ``low-high: ### (n)``) so anything that read
the old output still can, and adds a table of the loop and break types per
conversation and a folder summary. Texts from the logs are printed as plain
text, never as rich markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES

SHORT = {
    "single_turn_loop": "single", "multi_turn_loop": "multi", "intra_turn_repetition": "intra",
    "prefix_repetition": "prefix", "semantic_repetition": "semantic", "word_soup": "soup",
    "nothing_to_say": "empty", "apostrophe_break": "apostrophe", "leading_whitespace": "whitespace",
    "rejection": "reject",
}


def print_report(analysis: dict, console: Console | None = None) -> None:
    """Per conversation, then the histograms, then the types table and summary."""
    # soft_wrap: long segments stay on one line, as the original printed them.
    console = console or Console(highlight=False, soft_wrap=True)
    console.print(Text(f"\n{analysis['folder']}", style="bold underline"))
    for conv in analysis["conversations"]:
        _conversation(console, conv)
    summary = analysis["summary"]
    _density_histogram(console, summary["histograms"]["loop_density"])
    _length_histogram(console, summary["histograms"]["response_length"])
    console.print(types_table(analysis))
    console.print(summary_table(analysis))
    judge = analysis.get("judge")
    if judge and not judge.get("error"):
        _judge_summary(console, judge)
    for warning in analysis.get("warnings", []):
        console.print(Text(f"warning: {warning}", style="yellow"))


def _conversation(console: Console, conv: dict) -> None:
    head = Text(f"\n{conv['file']}", style="bold cyan")
    if not conv["complete"]:
        head.append(f"  (partial: {conv.get('end_reason') or 'interrupted'})", style="yellow")
    console.print(head)
    console.print(Text(f"Character Count: {conv['character_count']}"))
    console.print(Text(f"Loop Score: {conv['loop_score']}"))
    console.print(Text(f"Loop Density: {conv['loop_density']:.4f}"))
    console.print(Text(f"Average Response Length: {conv['avg_response_length']:.2f}"))
    console.print(Text(f"Repeated Share: {conv['repeated_share']:.4f}", style="dim"))
    found = [name for family in ("loops", "breaks") for name, e in conv[family].items() if e["present"]]
    onset = conv.get("loop_onset_turn")
    line = Text("Types: ", style="dim")
    line.append(", ".join(found) if found else "none", style="magenta" if found else "dim")
    if onset is not None:
        line.append(f"  (loop from assistant turn {onset})", style="dim")
    console.print(line)
    extensions = conv.get("segment_extensions") or [[] for _ in conv["top_segments"]]
    for (segment, count), longer in zip(conv["top_segments"], extensions):
        console.print(Text(f"  {segment} (found {count} times)"))
        for other, c in longer:
            console.print(Text(f"  >> {other} (found {c} times)", style="dim"))
    if conv.get("judge"):
        _judge(console, conv["judge"])


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


def _bar(count: int) -> str:
    return "#" * count


def _density_histogram(console: Console, buckets: list) -> None:
    console.print(Text("\nHistogram of Loop Densities:", style="bold"))
    for low, high, count in buckets:
        top = "inf" if high is None else f"{high:.2f}"
        console.print(Text(f"{low:.2f}-{top}: {_bar(count)} ({count})"))


def _length_histogram(console: Console, buckets: list) -> None:
    console.print(Text("\nHistogram of Response Lengths:", style="bold"))
    for low, high, count in buckets:
        top = "inf" if high is None else f"{high:.0f}"
        console.print(Text(f"{low:.0f}-{top}: {_bar(count)} ({count})"))


def types_table(analysis: dict) -> Table:
    """One row per conversation: the loop and break types present, with their severity."""
    table = Table(title="Loops and breaks (severity 0-1)", title_justify="left")
    table.add_column("conversation", overflow="fold")
    table.add_column("loops", overflow="fold")
    table.add_column("breaks", overflow="fold")
    table.add_column("onset", justify="right")
    for conv in analysis["conversations"]:
        cells = []
        for family, names in (("loops", LOOP_TYPES), ("breaks", BREAK_TYPES)):
            found = [f"{SHORT[n]} {conv[family][n]['severity']:.2f}" for n in names if conv[family][n]["present"]]
            cells.append(Text(", ".join(found), style="red") if found else Text("·", style="dim"))
        onset = conv.get("loop_onset_turn")
        table.add_row(Text(conv["file"]), *cells, "—" if onset is None else str(onset))
    return table


def summary_table(analysis: dict) -> Table:
    s = analysis["summary"]
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")

    def fmt(value, pattern="{:.4f}"):
        return "—" if value is None else pattern.format(value)

    rows = [
        ("conversations", f"{s['conversations']} ({s['complete']} complete, {s['partial']} partial, {s['skipped']} skipped)"),
        ("mean average response length", fmt(s["mean_avg_response_length"], "{:.2f}")),
        ("mean loop density", fmt(s["mean_loop_density"])),
        ("mean repeated share", fmt(s["mean_repeated_share"])),
        ("conversations that loop", fmt(s["looping_share"], "{:.0%}")),
        ("mean loop onset (assistant turn)", fmt(s["mean_loop_onset_turn"], "{:.1f}")),
    ]
    for family in ("loop_types", "break_types"):
        for name, share in s[family].items():
            rows.append((name, f"{share:.0%}"))
    if s.get("stop_reasons"):
        rows.append(("stop reasons", ", ".join(f"{k} {v}" for k, v in s["stop_reasons"].items())))
    for name, value in rows:
        table.add_row(name, value)
    return table


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
