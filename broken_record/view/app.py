"""The Streamlit page that compares up to ten analysed runs.

Drawn when Streamlit runs the top-level view.py (``python view.py <run
folder> ...`` starts ``streamlit run view.py -- <run folder> ...``, see
cli/view.py). Order on the page, as in Streamlit's own demos: a cached
loader -> pure reshaping into long frames (frames.py) -> one Altair chain
per chart (charts.py) -> ``st.altair_chart``. The headings, captions and
order of the sections are sections.py's, shared with results.html
(static.py); this module only turns each section into Streamlit calls.
The last section, on the page only, reads one conversation turn by turn,
as reader.py's escaped HTML.

What this page leaves out: the analysis itself (analysis/) and argument
parsing (cli/view.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.runs.reader import LogError, find_logs
from broken_record.view import frames
from broken_record.view.frames import Run
from broken_record.view.reader import reader_caption, reader_html
from broken_record.view.sections import PAGE, TITLE, Column, Section, run_list, sections_on

# What the page passes to the reader to read one conversation: (folder, file) -> turns.
LoadTurns = Callable[[str, str], list[dict]]


def column_config(columns: dict[str, Column], table: pd.DataFrame) -> dict[str, Any]:
    """Streamlit column formats for a table (the figures themselves stay raw)."""
    import streamlit as st

    config: dict[str, Any] = {}
    for name, column in columns.items():
        if column.share:
            config[name] = st.column_config.NumberColumn(column.title, format="percent")
        elif column.decimals is not None:
            config[name] = st.column_config.NumberColumn(column.title, format=f"%.{column.decimals}f")
        elif name in table.columns and pd.api.types.is_numeric_dtype(table[name]):
            config[name] = st.column_config.NumberColumn(column.title)
        else:
            config[name] = st.column_config.TextColumn(column.title)
    return config


def _stamp(folder: str) -> float | None:
    """analysis.json's mtime: part of the cache key, so a re-analysis shows."""
    target = Path(folder) / ANALYSIS_FILE
    try:
        return target.stat().st_mtime
    except OSError:
        return None


def main(folders: list[str]) -> None:
    """Draw the page for the run folders (``streamlit run view.py -- <folder> ...``)."""
    import streamlit as st

    @st.cache_data(show_spinner=False)
    def load_run(folder: str, label: str, stamp: float | None) -> Run:
        # One process: forking the threaded Streamlit server for a pool is not safe.
        return frames.open_run(folder, label, workers=1)

    @st.cache_data(show_spinner=False)
    def reshape(key: tuple) -> dict[str, pd.DataFrame]:
        runs = [load_run(*k) for k in key]
        good = [r for r in runs if r.ok]
        return {section.id: section.frame(good) for section in sections_on(PAGE) if section.frame}

    @st.cache_data(show_spinner=False)
    def load_turns(folder: str, file: str) -> list[dict]:
        return frames.read_turns(folder, file)

    st.set_page_config(page_title="Broken Record Parrot", layout="wide")
    st.title(TITLE)

    if not folders:
        st.error("No run folders given: start it as  python view.py <run folder> [<run folder> ...]")
        st.stop()
    problem = frames.too_many_runs(folders)
    if problem:
        st.error(problem)
        st.stop()

    labels = frames.unique_labels(folders)
    analysed = st.session_state.setdefault("analysed_now", set())
    key: list[tuple] = []
    runs: list[Run] = []
    for folder, label in zip(folders, labels):
        stamp = _stamp(folder)
        if stamp is None and Path(folder).is_dir() and find_logs(folder):
            with st.spinner(f"Analysing {folder}: it has no analysis.json yet…"):
                run = load_run(folder, label, stamp)
            stamp = _stamp(folder)  # written now, unless the folder is read-only
        else:
            run = load_run(folder, label, stamp)
        if run.analysed_now:
            analysed.add(folder)
        key.append((folder, label, stamp))
        runs.append(run)

    for run in runs:
        if run.error:
            st.error(f"{run.label}: {run.error}")
        elif run.folder in analysed:
            target = Path(run.folder) / ANALYSIS_FILE
            saved = f"saved as {target}" if target.is_file() else "the folder is read-only, so it is kept in memory only"
            st.info(f"{run.label}: this folder had no analysis.json, so it was analysed now ({saved}).")
    good = [r for r in runs if r.ok]
    if not good:
        st.stop()
    shown = reshape(tuple(key))
    st.caption(f"{len(good)} run(s): " + run_list(good, PAGE))

    for section in sections_on(PAGE):
        st.subheader(section.heading)
        if section.frame is None:
            reader(st, good, load_turns)
        else:
            draw(st, section, shown[section.id], [r.label for r in good])


def draw(st: ModuleType, section: Section, frame: pd.DataFrame, labels: list[str]) -> None:
    """One section's chart or table under its heading, then its caption."""
    if section.chart is not None:
        chosen = None
        if section.choice:
            choice = section.choice
            chosen = st.radio(choice.label, list(choice.options), format_func=choice.options.get,
                              horizontal=True, key=choice.key)
        st.altair_chart(section.draw(frame, labels, PAGE, chosen), key=f"{section.id}_chart")
    elif frame.empty and section.empty:
        st.info(section.empty)
        return
    else:
        config = column_config(section.columns(frame), frame) if section.columns else None
        st.dataframe(frame, hide_index=True, column_config=config, key=f"{section.id}_table")
    caption = section.caption_on(PAGE)
    if caption:
        st.caption(caption)


def reader(st: ModuleType, runs: list[Run], load_turns: LoadTurns) -> None:
    """Pick a run and a conversation; show it turn by turn."""
    by_label = {r.label: r for r in runs}
    left, right = st.columns([1, 2])
    label = left.selectbox("run", list(by_label), key="reader_run")
    run = by_label[label]
    convs = frames.conversations(run)
    if not convs:
        st.info("This run has no conversations.")
        return
    files = [str(c.get("file", "")) for c in convs]
    file = right.selectbox("conversation", files, key="reader_conversation")
    conv = convs[files.index(file)]
    try:
        turns = load_turns(run.folder, file)
    except (OSError, ValueError, LogError) as exc:
        st.error(f"could not read {file} from {run.folder}: {exc}; the charts above still stand")
        return
    flags = frames.turn_flags(conv, turns)
    segments = [s for s, _ in frames.segments(conv)]
    st.caption(reader_caption(conv, turns))
    st.html(reader_html(turns, flags, segments))


if __name__ == "__main__":
    main(sys.argv[1:])
