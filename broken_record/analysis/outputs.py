"""The files ``analyze.py`` writes into a run folder.

Three files, named in runs/layout.py:

* ``analysis.json`` (ANALYSIS_FILE): the dict ``folder.analyze_folder``
  computes, with the judge's entries when one was asked;
* ``response_length_vs_loop_density.json`` (SCATTER_JSON): the original
  tool's ``[[avg_response_length, loop_density], ...]``;
* ``response_length_vs_loop_density.png`` (SCATTER_PNG): its scatter plot
  (scatter_png.py).

The JSON files are written to a temporary name and renamed, so a reader
(view.py polls analysis.json) never sees half a file. ``write_analysis`` is
the one call that computes and writes; ``folder.analyze_folder`` computes
and writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from broken_record.analysis.folder import analyze_folder
from broken_record.runs.layout import ANALYSIS_FILE, SCATTER_JSON, SCATTER_PNG


def scatter_points(analysis: dict[str, Any]) -> list[list[float]]:
    """``[[avg_response_length, loop_density], ...]`` as the original wrote them."""
    return [[c["avg_response_length"], c["loop_density"]] for c in analysis["conversations"]]


def write_outputs(folder: str | Path, analysis: dict[str, Any]) -> list[str]:
    """Write the original's scatter JSON and PNG, then analysis.json; returns new warnings.

    A PNG that cannot be drawn (no vl-convert) is a warning, added to
    ``analysis["warnings"]`` and so recorded in analysis.json too, not a
    failure. An OSError writing the JSON files is raised.
    """
    from broken_record.analysis.scatter_png import write_scatter_png

    folder = Path(folder)
    points = scatter_points(analysis)
    write_json_atomic(folder / SCATTER_JSON, points)
    new = []
    try:
        write_scatter_png(folder / SCATTER_PNG, points)
    except Exception as exc:  # the chart is a convenience; the figures are written
        new.append(f"{SCATTER_PNG}: not written ({type(exc).__name__}: {exc})")
    analysis["warnings"] = list(analysis.get("warnings", [])) + new
    write_json_atomic(folder / ANALYSIS_FILE, analysis, indent=1)
    return new


def write_analysis(path: str | Path, workers: int | None = None, judge: str | None = None,
                   judge_engine: str = "auto", judge_lines: int = 5) -> dict[str, Any]:
    """Analyse a folder and write its outputs into it; returns the analysis dict.

    Computes with ``folder.analyze_folder`` (which writes nothing), asks the
    judge if one is given, then writes with ``write_outputs``. ``judge``: a
    judge server URL or ``"embedded"`` (see the judge package), asked after
    the pooled analysis; its warnings (an unreachable judge, unusable
    replies) are added to the analysis' ``warnings``, never raised. Raises
    ``folder.NoLogsError`` when the folder has no readable log.
    """
    analysis = analyze_folder(path, workers=workers)
    if judge:
        from broken_record.analysis.judge import judge_folders  # only with a judge: it pulls in HTTP and servers

        notes = judge_folders([(path, analysis)], judge, kind=judge_engine, lines=judge_lines)
        analysis["warnings"] = list(analysis.get("warnings", [])) + notes
    write_outputs(path, analysis)
    return analysis


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as UTF-8 JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=indent), encoding="utf-8")
    os.replace(tmp, path)
