"""A run folder's conversations analysed into the ``analysis.json`` dict; nothing is written here.

``analyze_folder`` reads every conversation log of a folder (runs/reader.py),
runs the classic score (classic.py), the loop and break detectors
(detectors.py) and the standard metrics (metrics.py) on each, in a process
pool across files, and adds a per-folder summary with the original tool's
histograms. outputs.py writes the result (``write_analysis`` computes with
``analyze_folder`` and writes); the judge package adds its entries to it.

The dict::

    {"version": 1, "folder": name, "conversations": [entry, ...],
     "summary": {counts, means, shares of each loop and break type,
                 "histograms": {"loop_density": ..., "response_length": ...}},
     "warnings": [...]}

(with ``"judge"`` entries in it and in each conversation once the judge
package has judged it). Each conversation entry has the original's figures
(``character_count``, ``avg_response_length``, ``response_lengths``,
``loop_score``, ``loop_density``, ``top_segments``) and beside them
``complete``, ``end_reason``, ``stop_reasons`` (counts over the generated
turns of both roles, from a .jsonl; null for a text log), ``settings``
(models, engines, samplers as the log states them), ``repeated_share`` (the
bounded companion of ``loop_density``), ``segment_extensions`` (the longer
segments that extend each top segment), the ``loops`` and ``breaks`` of
README.md's "Loops and breaks" with ``loop_onset_turn``, and ``metrics``.
The classic figures read every assistant line, as the original did;
detectors and ``metrics`` skip the config's opening lines where the log
tells them apart. A file that cannot be read is skipped with a warning naming it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from broken_record.analysis import classic, detectors, metrics
from broken_record.runs import reader as logs

VERSION = 1
TOP_SEGMENTS = 20
DENSITY_EDGES = [round(0.05 * i, 2) for i in range(17)]  # 0.00 .. 0.80, the last bucket open


class NoLogsError(Exception):
    """The folder has no conversation log that could be read."""


# --- one conversation -------------------------------------------------------------


def analyze_conversation(conv: logs.Conversation) -> dict[str, Any]:
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
    entry: dict[str, Any] = {
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


def analyze_file(path: str) -> tuple[dict[str, Any] | None, str | None]:
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


def analyze_folder(path: str | Path, workers: int | None = None) -> dict[str, Any]:
    """The analysis.json dict of a run folder, computed; writes nothing (``outputs.write_analysis`` does).

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


def summarize(conversations: list[dict[str, Any]], skipped: int = 0) -> dict[str, Any]:
    """Per-folder aggregates: counts, means, and the share of conversations with each type."""
    count = len(conversations)

    def mean(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    def share(family: str, name: str) -> float:
        return sum(1 for c in conversations if c[family][name]["present"]) / count if count else 0.0

    stops: Counter[str] = Counter()
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


def density_histogram(densities: list[float]) -> list[list[Any]]:
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


def length_histogram(lengths: list[int]) -> list[list[Any]]:
    """The original's response-length buckets: 0-1, then 100 wide to 2000, then above.

    A length of exactly 100 falls in 0-100, 101 in 100-200, as the original did.
    ``[0, 100, 101, 5000]`` -> ``[[0, 1, 1], [0, 100, 1], [100, 200, 1], ..., [2000, None, 1]]``.
    """
    edges: list[tuple[int, int | None]] = [(0, 1)] + [(i * 100, (i + 1) * 100) for i in range(20)] + [(2000, None)]
    counts = [0] * len(edges)
    for length in lengths:
        if length <= 1:
            counts[0] += 1
        elif length > 2000:
            counts[-1] += 1
        else:
            counts[(length - 1) // 100 + 1] += 1
    return [[low, high, n] for (low, high), n in zip(edges, counts)]
