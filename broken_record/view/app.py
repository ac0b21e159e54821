"""The Streamlit page that compares up to ten analysed runs.

Run by view.py as ``streamlit run dashboard.py -- <run folder> ...``. Order
on the page, as in Streamlit's own demos: a cached loader -> pure reshaping
into long frames (compare.py) -> one Altair chain per chart with typed
encodings -> ``st.altair_chart``. Below the charts, a reader shows one
conversation turn by turn; every piece of model text is html-escaped
before it reaches the page.

The chart builders here are plain functions of the frames, so html_report.py
draws the same charts into results.html. What this page leaves out: the
analysis itself (analysis.py) and argument parsing (view.py).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import altair as alt
import pandas as pd

from broken_record.runs.reader import LogError
from broken_record.view import frames as compare
from broken_record.view.frames import BOUNDED, MEASURES, Run

TITLE = "Broken Record Parrot — run comparison"

# --- charts (pure: frames in, Altair charts out) -------------------------------


def _color(labels: list[str]) -> alt.Color:
    # A fixed domain keeps each run's colour the same in every chart, and
    # keeps a run in the legend while its points are hidden.
    return alt.Color("run:N", title="run", scale=alt.Scale(domain=labels, scheme="category10"))


def scatter_chart(points: pd.DataFrame, labels: list[str], y: str | None = "loop_density") -> alt.Chart:
    """Average response length vs loop density (or the bounded share).

    Clicking a run in the legend hides its points; clicking again shows
    them. With ``y=None`` the chart carries its own radio buttons for the
    y measure (used in results.html, where no Streamlit widget exists).
    """
    # Every run starts selected (shown); a legend click toggles one run out
    # and back in, and the legend greys out the runs that are hidden.
    shown = alt.selection_point(
        name="shown", fields=["run"], bind="legend", toggle="true", empty=False,
        value=[{"run": label} for label in labels],
    )
    tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip("conversation:N"),
        alt.Tooltip("avg_response_length:Q", title="avg response length", format=".1f"),
        alt.Tooltip("loop_density:Q", title="loop density", format=".4f"),
        alt.Tooltip(f"{BOUNDED}:Q", title=MEASURES[BOUNDED], format=".3f"),
        alt.Tooltip("loop_score:Q", title="loop score"),
        alt.Tooltip("turns:Q"),
    ]
    base = alt.Chart(points, name="scatter", title="Average response length vs loop density")
    if y is None:
        measure = alt.param(
            name="y_measure",
            value="loop_density",
            bind=alt.binding_radio(options=list(MEASURES), labels=list(MEASURES.values()), name="y axis: "),
        )
        base = base.add_params(measure).transform_calculate(y_value="datum[y_measure]")
        y_enc = alt.Y("y_value:Q", title="loop density or repeated share (chosen below)")
    else:
        # Room above the highest point: Streamlit's theme fits the domain
        # exactly, which cuts the top points in half.
        top = points[y].max() if len(points) else float("nan")
        scale = alt.Scale(domain=[0, float(top) * 1.06]) if top == top and top > 0 else alt.Undefined
        y_enc = alt.Y(f"{y}:Q", title=MEASURES.get(y, y), scale=scale)
    return (
        base.mark_circle()
        .encode(
            x=alt.X("avg_response_length:Q", title="average response length (characters)",
                    scale=alt.Scale(zero=False)),
            y=y_enc,
            color=_color(labels),
            opacity=alt.condition(shown, alt.value(0.8), alt.value(0.0)),
            size=alt.condition(shown, alt.value(70), alt.value(0)),  # no hover on hidden points
            tooltip=tooltip,
        )
        .add_params(shown)
        .properties(height=380)
        .interactive(bind_y=False)
    )


def histogram_chart(hist: pd.DataFrame, labels: list[str]) -> alt.FacetChart:
    """Response lengths and loop densities, one row of small bar charts per run."""
    return (
        alt.Chart(hist)
        .mark_bar()
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title=None),
            x2="bin_end:Q",
            y=alt.Y("share:Q", title="share", axis=alt.Axis(format="%", tickCount=3)),
            color=_color(labels),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("quantity:N"),
                alt.Tooltip("bin_start:Q", title="from", format=".3~f"),
                alt.Tooltip("bin_end:Q", title="to", format=".3~f"),
                alt.Tooltip("count:Q"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(width=320, height=60)
        .facet(
            row=alt.Row("run:N", title=None, sort=labels),
            column=alt.Column("quantity:N", title=None, sort=["response_length", "loop_density"]),
            title="Histograms: response lengths (characters) and loop densities",
        )
        .resolve_scale(x="independent", y="independent")
        .properties(name="histograms")
    )


def types_chart(shares: pd.DataFrame, labels: list[str]) -> alt.FacetChart:
    """Share of conversations showing each loop and break type, bars grouped by run."""
    order = list(dict.fromkeys(shares["type"]))
    return (
        alt.Chart(shares)
        .mark_bar()
        .encode(
            x=alt.X("type:N", sort=order, title=None,
                    # "single_turn_loop" on three short lines, so no label hides another
                    axis=alt.Axis(labelAngle=0, labelExpr="split(datum.label, '_')", labelOverlap=False)),
            xOffset=alt.XOffset("run:N", sort=labels),
            y=alt.Y("share:Q", title="share of conversations", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            color=_color(labels),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("type:N"),
                alt.Tooltip("present:Q", title="conversations with it"),
                alt.Tooltip("conversations:Q"),
                alt.Tooltip("share:Q", format=".0%"),
            ],
        )
        # A step width, not a fixed one: vega-lite draws zero-width bars for
        # xOffset inside a facet with a fixed width.
        .properties(width=alt.Step(max(7, 60 // max(1, len(labels)))), height=260)
        .facet(column=alt.Column("family:N", title=None, sort=["loop", "break"]),
               title="Loop and break types per run")
        .resolve_scale(x="independent")
        .properties(name="types")
    )


def survival_chart(surv: pd.DataFrame, labels: list[str]) -> alt.Chart:
    """Share of conversations still loop-free after t assistant turns."""
    return (
        alt.Chart(surv, name="survival", title="Loop onset: share of conversations still loop-free")
        .mark_line(interpolate="step-after", point=False)
        .encode(
            x=alt.X("turn:Q", title="assistant turns", axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("loop_free:Q", title="still loop-free", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            color=_color(labels),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("turn:Q"),
                alt.Tooltip("loop_free:Q", title="still loop-free", format=".0%"),
                alt.Tooltip("at_risk:Q", title="conversations still running"),
            ],
        )
        .properties(height=300)
    )


def summary_columns(table: pd.DataFrame) -> dict:
    """Streamlit column formats for the summary table (figures stay raw)."""
    import streamlit as st

    config = {
        "run": st.column_config.TextColumn("run"),
        "conversations": st.column_config.NumberColumn("conversations"),
        "avg_response_length": st.column_config.NumberColumn("avg response length", format="%.1f"),
        "avg_loop_density": st.column_config.NumberColumn("avg loop density", format="%.4f"),
        f"avg_{BOUNDED}": st.column_config.NumberColumn(f"avg {MEASURES[BOUNDED]}", format="%.3f"),
    }
    for column in table.columns:
        if column not in compare.SUMMARY_FIGURES:
            config[column] = st.column_config.NumberColumn(column.replace("_", " "), format="percent")
    return config


# --- the conversation reader (pure: text in, escaped HTML out) --------------------


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
.brp-stop{display:inline-block;border-radius:8px;padding:0 6px;margin-left:4px;font-size:0.75rem;background:#e7f0fa;color:#08519c}
.brp-text{white-space:pre-wrap;word-break:break-word}
.brp-text mark{background:#ffe08a}
</style>
"""


def turn_html(turn: dict, flags: list[tuple[str, str]], segments: list[str]) -> str:
    """One turn as escaped HTML: header (index, role, stop reason, flags) and text."""
    role = turn.get("role", "")
    css_role = role if role in ("assistant", "user", "system") else "other"
    head = [f"#{int(turn.get('index', 0))}", html.escape(str(role))]
    badges = ""
    if turn.get("stop"):
        badges += f'<span class="brp-stop">stop: {html.escape(str(turn["stop"]))}</span>'
    if turn.get("tokens") is not None:
        badges += f'<span class="brp-stop">{html.escape(str(turn["tokens"]))} tokens</span>'
    for family, name in flags:
        badges += f'<span class="brp-flag {family}">{html.escape(name.replace("_", " "))}</span>'
    text = str(turn.get("text", ""))
    body = highlight(text, segments) if role == "assistant" else html.escape(text)
    return (
        f'<div class="brp-turn {css_role}"><div class="brp-head">{" · ".join(head)}{badges}</div>'
        f'<div class="brp-text">{body}</div></div>'
    )


# --- the page ---------------------------------------------------------------------------


def _stamp(folder: str) -> float | None:
    """analysis.json's mtime: part of the cache key, so a re-analysis shows."""
    target = Path(folder) / compare.ANALYSIS_FILE
    try:
        return target.stat().st_mtime
    except OSError:
        return None


def main(folders: list[str]) -> None:
    import streamlit as st

    @st.cache_data(show_spinner=False)
    def load_run(folder: str, label: str, stamp: float | None) -> Run:
        # One process: forking the threaded Streamlit server for a pool is not safe.
        return compare.open_run(folder, label, workers=1)

    @st.cache_data(show_spinner=False)
    def reshape(key: tuple) -> dict[str, pd.DataFrame]:
        runs = [load_run(*k) for k in key]
        good = [r for r in runs if r.ok]
        return {
            "points": compare.points(good),
            "summary": compare.summary(good),
            "histograms": compare.histograms(good),
            "types": compare.type_shares(good),
            "survival": compare.survival(good),
            "settings": compare.settings_diff(good),
        }

    @st.cache_data(show_spinner=False)
    def load_turns(folder: str, file: str) -> list[dict]:
        return compare.read_turns(folder, file)

    st.set_page_config(page_title="Broken Record Parrot", layout="wide")
    st.title(TITLE)

    if not folders:
        st.error("No run folders given: start it as  python view.py <run folder> [<run folder> ...]")
        st.stop()
    problem = compare.too_many_runs(folders)
    if problem:
        st.error(problem)
        st.stop()

    labels = compare.unique_labels(folders)
    analysed = st.session_state.setdefault("analysed_now", set())
    key: list[tuple] = []
    runs: list[Run] = []
    for folder, label in zip(folders, labels):
        stamp = _stamp(folder)
        if stamp is None and Path(folder).is_dir() and compare.conversation_logs(Path(folder)):
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
            target = Path(run.folder) / compare.ANALYSIS_FILE
            saved = f"saved as {target}" if target.is_file() else "the folder is read-only, so it is kept in memory only"
            st.info(f"{run.label}: this folder had no analysis.json, so it was analysed now ({saved}).")
    good = [r for r in runs if r.ok]
    if not good:
        st.stop()
    frames = reshape(tuple(key))
    shown = [r.label for r in good]
    st.caption(
        f"{len(good)} run(s): " + ", ".join(f"{r.label} ({len(compare.conversations(r))} conversations)" for r in good)
    )

    st.subheader("Response length vs loop density")
    y = st.radio("y axis", list(MEASURES), format_func=MEASURES.get, horizontal=True, key="y_measure")
    st.altair_chart(scatter_chart(frames["points"], shown, y), key="scatter_chart")
    st.caption("Click a run in the legend to hide its points; click it again to show them. Hover a point for details.")

    st.subheader("Summary")
    table = frames["summary"]
    st.dataframe(table, hide_index=True, column_config=summary_columns(table), key="summary_table")
    st.caption("Type columns: share of the run's conversations where that loop or break type is present.")

    st.subheader("Settings compared")
    if frames["settings"].empty:
        st.info("The runs record no settings.")
    else:
        st.dataframe(frames["settings"], hide_index=True, key="settings_table")
        st.caption("Models and engines, and every setting whose value differs between runs ('a | b': differs inside a run).")

    st.subheader("Distributions")
    st.altair_chart(histogram_chart(frames["histograms"], shown), key="histogram_chart")

    st.subheader("Loop and break types")
    st.altair_chart(types_chart(frames["types"], shown), key="types_chart")

    st.subheader("Loop onset")
    st.altair_chart(survival_chart(frames["survival"], shown), key="survival_chart")
    st.caption(
        "A conversation that never loops counts as loop-free for as long as it ran and then leaves "
        "the count (Kaplan-Meier), so short conversations do not inflate the curve."
    )

    reader(st, good, load_turns)


def _figure(value) -> str:
    """``0.80733`` -> ``"0.8073"``; missing -> ``"—"``."""
    number = compare.as_float(value)
    return "—" if number != number else f"{number:.4g}"


def reader(st, runs: list[Run], load_turns) -> None:
    """Pick a run and a conversation; show it turn by turn."""
    st.subheader("Read a conversation")
    by_label = {r.label: r for r in runs}
    left, right = st.columns([1, 2])
    label = left.selectbox("run", list(by_label), key="reader_run")
    run = by_label[label]
    convs = compare.conversations(run)
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
    flags = compare.turn_flags(conv, turns)
    segments = [s for s, _ in compare.segments(conv)]
    present = [name for name, entry in compare.detections(conv).items() if entry.get("present")]
    st.caption(
        f"{len(turns)} turns · loop density {_figure(conv.get('loop_density'))} · "
        f"{MEASURES[BOUNDED]} {_figure(compare.bounded_share(conv))} · "
        + ("types found: " + ", ".join(p.replace("_", " ") for p in present) if present else "no loop or break types found")
        + ("" if conv.get("complete", True) else " · interrupted (no footer)")
    )
    body = "".join(turn_html(t, flags.get(i, []), segments) for i, t in enumerate(turns))
    st.html(READER_CSS + f'<div class="brp-reader">{body}</div>')


if __name__ == "__main__":
    main(sys.argv[1:])
