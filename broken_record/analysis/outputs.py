"""The files ``analyze.py`` writes into a run folder.

Three files, named in runs/layout.py:

* ``analysis.json`` (ANALYSIS_FILE): the dict ``folder.analyze_folder``
  computes, with the judge's entries when one was asked;
* ``response_length_vs_loop_density.json`` (SCATTER_JSON): the original
  tool's ``[[avg_response_length, loop_density], ...]``;
* ``response_length_vs_loop_density.png`` (SCATTER_PNG): its scatter plot
  (scatter_png.py).

Each file is written to a temporary name and renamed, so a reader (view.py
polls analysis.json) never sees half a file, and an interrupted analyze.py
leaves the old file or the new one, never a part (nor the temporary file).
analysis.json is indented at its top level with one conversation per line:
json's C encoder writes it, ten times faster than ``indent=1`` would. ``write_analysis`` is
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
    """Write ``data`` as UTF-8 JSON to ``path`` through a temporary file and a rename.

    ``indent=1`` on a dict: its keys one per line, each value on one line
    (so an analysis' conversations one per line), all by the C encoder.
    """
    text = json_text(data, indent)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after an error or Ctrl-C: no temporary file left behind


def json_text(data: Any, indent: int | None = None) -> str:
    """``data`` as JSON (UTF-8 kept); with ``indent``, a dict or list is broken into lines at its top level only."""
    if indent is None:
        return json.dumps(data, ensure_ascii=False)
    if isinstance(data, dict):
        return _top_level_lines(data, indent)
    if isinstance(data, list):  # several folders' analyses
        pad = " " * indent
        return "[\n" + ",\n".join(pad + json_text(item, indent).replace("\n", "\n" + pad) for item in data) + "\n]"
    return json.dumps(data, ensure_ascii=False, indent=indent)


def _top_level_lines(data: dict[str, Any], indent: int) -> str:
    """``{"a": [1, 2], "b": {"c": 3}}`` -> ``'{\\n "a": [\\n  1,\\n  2\\n ],\\n "b": {"c": 3}\\n}'``."""
    pad = " " * indent

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            inner = (",\n" + pad * 2).join(dumps(item) for item in value)
            lines.append(f"{pad}{dumps(key)}: [\n{pad * 2}{inner}\n{pad}]")
        else:
            lines.append(f"{pad}{dumps(key)}: {dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}" if lines else "{}"
