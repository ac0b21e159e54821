"""A run folder's conversations analysed into the ``analysis.json`` dict.

``analyze_folder`` reads every conversation log of a folder (logs.py), runs
the classic score, the loop and break detectors and the standard metrics on
each, in a process pool across files, and adds a per-folder summary.
``write_outputs`` writes analysis.json and the original tool's two files
(response_length_vs_loop_density.json and .png) into the folder.

The schema is DESIGN.md's; each conversation entry also carries
``complete``, ``stop_reasons`` (counts over the generated turns of both
roles, from a .jsonl; null for a text log), ``settings`` (models, engines,
samplers as the log states them), ``repeated_share`` (the bounded companion
of ``loop_density``) and ``segment_extensions`` (the longer segments that
extend each top segment). The classic figures read every assistant line, as
the original did; detectors and ``metrics`` skip the config's opening lines
where the log tells them apart. A file that cannot be read is skipped with a
warning naming it.

With a judge (``write_analysis(..., judge=URL)`` or ``analyze.py --judge``),
judge.py adds a ``"judge"`` entry to each conversation and to the folder,
after the pooled analysis and in this process.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from broken_record.analysis import classic, detectors, metrics
from broken_record.runs import reader as logs

VERSION = 1
ANALYSIS_FILE = "analysis.json"
SCATTER_JSON = "response_length_vs_loop_density.json"
SCATTER_PNG = "response_length_vs_loop_density.png"
TOP_SEGMENTS = 20
DENSITY_EDGES = [round(0.05 * i, 2) for i in range(17)]  # 0.00 .. 0.80, the last bucket open


class NoLogsError(Exception):
    """The folder has no conversation log that could be read."""


# --- one conversation -------------------------------------------------------------


def analyze_conversation(conv: logs.Conversation) -> dict:
    """The analysis.json entry of one conversation."""
    figures = classic.classic_from_lines(conv.classic_lines, conv.agent_prefix)
    assistant = conv.assistant_turns
    replies = detectors.replies_from_turns(assistant)
    loops, breaks, onset = detectors.detect(replies, conv.turn_max_tokens)
    generated = [r for r in replies if r.generated]
    text_metrics = metrics.text_metrics([r.text for r in generated], [r.words for r in generated],
                                        [r.rep4 for r in generated])
    share = metrics.repeated_share(figures.text_length, figures.remaining_length)
    text_metrics["repeated_share"] = share
    top = figures.top_segments(TOP_SEGMENTS)
    entry = {
        "file": conv.file,
        "format": conv.format,
        "complete": conv.complete,
        "end_reason": conv.end_reason,
        "turns": len(conv.turns),
        "assistant_turns": len(assistant),
        "character_count": figures.character_count,
        "avg_response_length": figures.avg_response_length,
        "response_lengths": figures.response_lengths,
        "loop_score": figures.loop_score,
        "loop_density": figures.loop_density,
        "repeated_share": share,
        "top_segments": [[segment, count] for segment, count in top],
        "segment_extensions": [
            [[other, c] for other, c in longer] for _, _, longer in classic.extensions(figures.segments, TOP_SEGMENTS)
        ],
        "segments_found": len(figures.segments),
        "loops": loops,
        "breaks": breaks,
        "loop_onset_turn": onset,
        "metrics": text_metrics,
        "settings": conv.settings,
        "agent_prefix": conv.agent_prefix,
    }
    if conv.format == "jsonl":
        stops = Counter(t.stop or "unknown" for t in conv.turns if t.source not in ("config", None))
        entry["stop_reasons"] = dict(sorted(stops.items()))
        entry["assistant_stop_reasons"] = dict(sorted(Counter(
            t.stop or "unknown" for t in assistant if t.source != "config").items()))
    else:
        entry["stop_reasons"] = None
    if conv.total_tokens is not None:
        entry["total_tokens"] = conv.total_tokens
    return entry


def analyze_file(path: str) -> tuple[dict | None, str | None]:
    """``(entry, None)`` or ``(None, "file: why it was skipped")``; never raises for a bad file."""
    name = Path(path).name
    try:
        conv = logs.read_log(path)
    except logs.LogError as exc:
        return None, f"{name}: {exc}; skipped"
    try:
        return analyze_conversation(conv), None
    except Exception as exc:  # one bad file never stops the folder
        return None, f"{name}: could not be analysed ({type(exc).__name__}: {exc}); skipped"


# --- a folder ---------------------------------------------------------------------


def analyze_folder(path: str | Path, workers: int | None = None) -> dict:
    """The analysis.json dict of a run folder.

    ``workers``: processes to use across files (default: every core; 1 runs
    in this process). Raises ``NoLogsError`` when no log could be read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise NoLogsError(f"'{folder}' is not a folder")
    files = [str(p) for p in logs.find_logs(folder)]
    if not files:
        raise NoLogsError(f"no conversation logs (.log or .jsonl) in '{folder}'")
    workers = workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(files)))
    if workers == 1:
        results = [analyze_file(f) for f in files]
    else:
        # Compile or load the classic kernel once here: the forked workers
        # inherit it instead of each loading (or compiling) their own.
        classic.fast_miner()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            # Small chunks keep both cores busy when file sizes differ a lot.
            results = list(pool.map(analyze_file, files, chunksize=max(1, len(files) // (workers * 8))))
    conversations = [entry for entry, _ in results if entry is not None]
    warnings = [warning for _, warning in results if warning is not None]
    if not conversations:
        raise NoLogsError(f"none of the {len(files)} log(s) in '{folder}' could be read: " + "; ".join(warnings))
    return {
        "version": VERSION,
        "folder": folder.resolve().name,
        "conversations": conversations,
        "summary": summarize(conversations, skipped=len(warnings)),
        "warnings": warnings,
    }


def summarize(conversations: list[dict], skipped: int = 0) -> dict:
    """Per-folder aggregates: counts, means, and the share of conversations with each type."""
    count = len(conversations)

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def share(family, name):
        return sum(1 for c in conversations if c[family][name]["present"]) / count if count else 0.0

    stops: Counter = Counter()
    for c in conversations:
        stops.update(c.get("stop_reasons") or {})
    lengths = [x for c in conversations for x in c["response_lengths"]]
    onsets = [c["loop_onset_turn"] for c in conversations if c["loop_onset_turn"] is not None]
    densities = [c["loop_density"] for c in conversations]
    return {
        "conversations": count,
        "complete": sum(1 for c in conversations if c["complete"]),
        "partial": sum(1 for c in conversations if not c["complete"]),
        "skipped": skipped,
        "turns": sum(c["turns"] for c in conversations),
        "assistant_turns": sum(c["assistant_turns"] for c in conversations),
        "mean_avg_response_length": mean(c["avg_response_length"] for c in conversations),
        "mean_loop_density": mean(densities),
        "mean_repeated_share": mean(c["repeated_share"] for c in conversations),
        "looping_share": sum(1 for c in conversations if c["loop_onset_turn"] is not None) / count if count else 0.0,
        "mean_loop_onset_turn": mean(onsets),
        "loop_types": {name: share("loops", name) for name in detectors.LOOP_TYPES},
        "break_types": {name: share("breaks", name) for name in detectors.BREAK_TYPES},
        "stop_reasons": dict(sorted(stops.items())),
        "histograms": {
            "loop_density": density_histogram(densities),
            "response_length": length_histogram(lengths),
        },
    }


def density_histogram(densities: list[float]) -> list[list]:
    """The original's loop-density buckets: ``[[low, high, count], ...]``, 0.05 wide, last open.

    ``[0.0, 0.07, 3.2]`` -> ``[[0.0, 0.05, 1], [0.05, 0.1, 1], ..., [0.8, None, 1]]``.
    """
    counts = [0] * len(DENSITY_EDGES)
    for d in densities:
        for k in range(len(DENSITY_EDGES) - 1, -1, -1):
            if d >= DENSITY_EDGES[k]:
                counts[k] += 1
                break
    highs = DENSITY_EDGES[1:] + [None]
    return [[low, high, n] for low, high, n in zip(DENSITY_EDGES, highs, counts)]


def length_histogram(lengths: list[int]) -> list[list]:
    """The original's response-length buckets: 0-1, then 100 wide to 2000, then above.

    A length of exactly 100 falls in 0-100, 101 in 100-200, as the original did.
    ``[0, 100, 101, 5000]`` -> ``[[0, 1, 1], [0, 100, 1], [100, 200, 1], ..., [2000, None, 1]]``.
    """
    buckets = [[0, 1, 0]] + [[i * 100, (i + 1) * 100, 0] for i in range(20)] + [[2000, None, 0]]
    for length in lengths:
        if length <= 1:
            buckets[0][2] += 1
        elif length > 2000:
            buckets[-1][2] += 1
        else:
            buckets[(length - 1) // 100 + 1][2] += 1
    return buckets


# --- writing ------------------------------------------------------------------------


def scatter_points(analysis: dict) -> list[list[float]]:
    """``[[avg_response_length, loop_density], ...]`` as the original wrote them."""
    return [[c["avg_response_length"], c["loop_density"]] for c in analysis["conversations"]]


def write_outputs(folder: str | Path, analysis: dict) -> list[str]:
    """Write the original's scatter JSON and PNG, then analysis.json; returns new warnings.

    A PNG that cannot be drawn (no vl-convert) is a warning, recorded in
    analysis.json too, not a failure.
    """
    folder = Path(folder)
    points = scatter_points(analysis)
    _write_json(folder / SCATTER_JSON, points)
    new = []
    try:
        write_scatter_png(folder / SCATTER_PNG, points)
    except Exception as exc:  # the chart is a convenience; the figures are written
        new.append(f"{SCATTER_PNG}: not written ({type(exc).__name__}: {exc})")
    analysis["warnings"] = list(analysis.get("warnings", [])) + new
    _write_json(folder / ANALYSIS_FILE, analysis, indent=1)
    return new


def write_analysis(path: str | Path, workers: int | None = None, judge: str | None = None,
                   judge_engine: str = "auto", judge_lines: int = 5) -> dict:
    """Analyse a folder and write its outputs; returns the analysis dict.

    ``judge``: a judge server URL or ``"embedded"`` (see judge.py), asked after
    the pooled analysis; its warnings (an unreachable judge, unusable replies)
    are added to the analysis' ``warnings``, never raised.
    """
    analysis = analyze_folder(path, workers=workers)
    if judge:
        from broken_record.analysis import judge as judge_mod

        notes = judge_mod.judge_folders([(path, analysis)], judge, kind=judge_engine, lines=judge_lines)
        analysis["warnings"] = list(analysis.get("warnings", [])) + notes
    write_outputs(path, analysis)
    return analysis


def _write_json(path: Path, data, indent: int | None = None) -> None:
    # Write then rename, so a reader never sees half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=indent), encoding="utf-8")
    os.replace(tmp, path)


def write_scatter_png(path: Path, points: list[list[float]]) -> None:
    """The original's scatter plot (Altair, rendered by vl-convert)."""
    import altair as alt  # heavy: only when a chart is drawn

    rows = [{"avg_response_length": x, "loop_density": y} for x, y in points]
    x_max = max([2000.0] + [x for x, _ in points])
    y_max = max([1.0] + [y for _, y in points])
    chart = (
        alt.Chart(alt.Data(values=rows), title="Average Response Length vs Loop Density")
        .mark_circle(size=60, opacity=0.7)
        .encode(
            x=alt.X("avg_response_length:Q", title="Average Response Length", scale=alt.Scale(domain=[0, x_max])),
            y=alt.Y("loop_density:Q", title="Loop Density", scale=alt.Scale(domain=[0, y_max])),
        )
        .properties(width=800, height=480)
    )
    png = _to_png(chart.to_dict())
    path.write_bytes(png)


def _to_png(spec: dict) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(spec, scale=1)
