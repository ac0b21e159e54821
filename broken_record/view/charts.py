"""The comparison's Altair charts: pure functions, frames in, charts out.

Each builder takes one frame of frames.py (``points``, ``histograms``,
``type_shares``, ``survival``) and the labels of the runs shown, and returns
an Altair chart whose ``name`` is its section's id in sections.py. The same
charts are drawn on the Streamlit page (app.py) and into results.html
(static.py); how each target draws them, and where they differ, is said in
sections.py. Nothing here reads files or imports Streamlit.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from broken_record.view.frames import BOUNDED, MEASURES

# The label of the scatter's y-measure choice: the page's radio (sections.py)
# and the chart's own radio buttons in results.html.
Y_CHOICE = "y axis"


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
        alt.Tooltip("turns:Q", title="messages"),
    ]
    versus = MEASURES[y].split(" (")[0] if y in MEASURES else "loop density or repeated share"
    base = alt.Chart(points, name="scatter", title=f"Average response length vs {versus}")
    if y is None:
        measure = alt.param(
            name="y_measure",
            value="loop_density",
            bind=alt.binding_radio(options=list(MEASURES), labels=list(MEASURES.values()), name=f"{Y_CHOICE}: "),
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
    """Share of conversations whose loop has not started by message m.

    x is the message number, the reader's ``#m``: a conversation whose loop
    starts at message m drops the curve at m. Colour is the run; the line
    is solid for the assistant's loops and dashed for the user's.
    """
    speakers = [s for s in ("assistant", "user") if s in set(surv["speaker"])] or ["assistant"]
    return (
        alt.Chart(surv, name="survival", title="Loop onset: share of conversations still loop-free")
        .mark_line(interpolate="step-after", point=False)
        .encode(
            x=alt.X("message:Q", title="message number (#m in the reader; the system prompt is #0)",
                    axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("loop_free:Q", title="still loop-free", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            color=_color(labels),
            strokeDash=alt.StrokeDash("speaker:N", title="whose loop",
                                      scale=alt.Scale(domain=speakers, range=[[1, 0], [6, 4]][:len(speakers)])),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("speaker:N", title="whose loop"),
                alt.Tooltip("message:Q", title="message #"),
                alt.Tooltip("loop_free:Q", title="still loop-free", format=".0%"),
                alt.Tooltip("at_risk:Q", title="conversations still running"),
            ],
        )
        .properties(height=300)
    )
