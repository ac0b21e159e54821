"""Judging whole analysed folders: every conversation's ``"judge"`` entry and the folder's.

Runs after the pooled analysis (``folder.analyze_folder``), in the calling
process, against one judge for all the folders given; its failures become
warning lines, never exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broken_record.analysis.judge.client import (
    MAX_TOKENS,
    Judge,
    JudgeUnavailable,
    normalize_url,
    open_judge,
)
from broken_record.analysis.judge.progress import progress_bar
from broken_record.analysis.judge.reply import DEFAULT_LINES, Chunk, chunk_turns, recurring
from broken_record.runs import reader


def judge_folders(analyses: list[tuple[str | Path, dict[str, Any]]], spec: str, kind: str = "auto",
                  lines: int = DEFAULT_LINES, max_tokens: int = MAX_TOKENS,
                  progress: bool | None = None) -> list[str]:
    """Judge every conversation of analysed folders in place; returns warning lines.

    ``analyses``: ``(folder, analysis dict)`` pairs from ``folder.analyze_folder``.
    ``spec``: a judge server URL or ``"embedded"``. Each conversation gets a
    ``"judge"`` entry and each analysis a folder-level ``"judge"`` (the
    judge, totals, words recurring across the folder). A judge that cannot
    be reached gives one warning and ``{"url": ..., "error": ...}`` as the
    folder-level entry; the analyses are otherwise untouched. ``progress``:
    a rich progress line on stderr (default: when stderr is a terminal).
    """
    work: list[tuple[dict[str, Any], dict[str, Any], list[Chunk]]] = []   # (analysis, conversation, chunks)
    warnings: list[str] = []
    for folder, analysis in analyses:
        for conv in analysis["conversations"]:
            try:
                turns = reader.read_log(Path(folder) / conv["file"]).turns
            except reader.LogError as exc:
                warnings.append(f"judge: {conv['file']}: {exc}; not judged")
                continue
            work.append((analysis, conv, chunk_turns(turns, lines)))
    try:
        with open_judge(spec, kind, lines=lines, max_tokens=max_tokens) as judge:
            with progress_bar(sum(len(c) for _, _, c in work), progress) as advance:
                for _, conv, chunks in work:
                    advance.describe(conv["file"])
                    conv["judge"] = judge.judge_chunks(chunks, advance)
            for _, analysis in analyses:
                analysis["judge"] = folder_entry(judge, analysis)
    except JudgeUnavailable as exc:
        for _, analysis in analyses:
            analysis["judge"] = {"url": spec if spec == "embedded" else normalize_url(spec), "error": str(exc)}
        return [f"{exc}; analysis written without the judge"] + warnings
    errors = sum(c["judge"]["errors"] for _, c, _ in work)
    asked = sum(len(c["judge"]["chunks"]) + c["judge"]["errors"] for _, c, _ in work)
    if judge.gone:
        skipped = sum(c["judge"]["skipped"] for _, c, _ in work)
        warnings.append(f"{judge.gone}: {skipped} chunk(s) not judged")
    if errors:
        warnings.append(f"judge: {errors} of {asked} replies were unusable (see \"garbage\" in analysis.json)")
    return warnings


def folder_entry(judge: Judge, analysis: dict[str, Any]) -> dict[str, Any]:
    """The folder-level ``"judge"`` entry: the judge, totals, and words recurring across the folder."""
    judged = [c["judge"] for c in analysis["conversations"] if "judge" in c]
    chunks = [chunk for j in judged for chunk in j["chunks"]]
    return {
        **judge.describe(),
        "chunks": len(chunks),
        "errors": sum(j["errors"] for j in judged),
        "skipped": sum(j["skipped"] for j in judged),
        "recurring_topics": recurring(chunks, "topics"),
        "recurring_themes": recurring(chunks, "themes"),
        "gone": judge.gone,
    }
