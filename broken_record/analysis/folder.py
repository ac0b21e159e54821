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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from broken_record.analysis import classic
from broken_record.analysis.conversation import (  # noqa: F401  (re-exported)
    DENSITY_EDGES,
    TOP_SEGMENTS,
    analyze_conversation,
    density_histogram,
    length_histogram,
    summarize,
)
from broken_record.runs import reader as logs

VERSION = 1


class NoLogsError(Exception):
    """The folder has no conversation log that could be read."""


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
