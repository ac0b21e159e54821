"""The sections of the comparison, written once for both of its targets.

Two targets draw the same comparison: ``PAGE``, the Streamlit page
(app.py), and ``FILE``, the static results.html (static.py). Each
``Section`` below says, once, what both show: its id (the chart's name and
the id of its place in results.html), its heading, the frame of frames.py
it shows, drawn by a chart builder of charts.py or as a table, and its
caption. Both targets walk ``SECTIONS`` in order and render each section
in their own way; neither writes a heading or a caption of its own.

Where the two targets differ, the difference is said here and nowhere else:

* a caption's ``Words`` with ``only=PAGE`` or ``only=FILE`` are shown by that
  target alone (the page's hover hint, results.html's radio-button hint);
* a ``Choice`` is a Streamlit radio above the chart on the page, its value
  passed to the chart builder; in results.html the builder gets None and
  draws the chart's own radio buttons (no Streamlit widget exists there);
* ``file_width``: results.html has no container for a chart to fill, so a
  chart that fills the page's width gets this width there;
* a section with ``only=PAGE`` (the conversation reader) is on the page
  alone, for the reason in its ``why_only``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import pandas as pd

from broken_record.view import charts, frames
from broken_record.view.frames import BOUNDED, MEASURES, SUMMARY_FIGURES, Run

Target = Literal["page", "file"]
PAGE: Target = "page"  # the Streamlit page, app.py
FILE: Target = "file"  # results.html, static.py

TITLE = "Broken Record Parrot — run comparison"


@dataclass(frozen=True)
class Words:
    """A piece of a caption; ``only``: the one target that shows it (None: both)."""

    text: str
    only: Target | None = None


@dataclass(frozen=True)
class Choice:
    """A choice of the chart's reader, passed to its builder as ``argument``.

    On the page: a horizontal radio labelled ``label`` with ``options``
    (value -> shown text), keyed ``key``. In results.html the builder gets
    ``argument=None`` and binds the same choice to the chart's own radio.
    """

    argument: str
    label: str
    options: Mapping[str, str]
    key: str


@dataclass(frozen=True)
class Column:
    """How one table column reads: the page's header, and how its numbers are shown.

    ``decimals``: digits after the point (None: as they are); ``share``: a
    share of conversations, shown as a percentage. results.html keeps the
    frame's own column names as headers.
    """

    title: str
    decimals: int | None = None
    share: bool = False


ChartBuilder = Callable[..., alt.TopLevelMixin]


@dataclass(frozen=True)
class Section:
    """One section of the comparison: a heading and what it shows below it.

    ``frame`` makes the section's frame from the runs shown (None: the
    reader, which reads one conversation's log instead); ``chart`` draws it
    (None: the frame is shown as a table, its columns read as ``columns``
    says). ``empty``: the note shown instead of an empty table.
    """

    id: str
    heading: str
    frame: Callable[[list[Run]], pd.DataFrame] | None = None
    chart: ChartBuilder | None = None
    caption: tuple[Words, ...] = ()
    columns: Callable[[pd.DataFrame], dict[str, Column]] | None = None
    empty: str | None = None
    choice: Choice | None = None
    file_width: int | None = None
    only: Target | None = None
    why_only: str = ""

    def shown_on(self, target: Target) -> bool:
        return self.only in (None, target)

    def caption_on(self, target: Target) -> str:
        """The caption as ``target`` shows it: the shared words and its own, in order."""
        return "".join(words.text for words in self.caption if words.only in (None, target))

    def draw(self, frame: pd.DataFrame, labels: list[str], target: Target, chosen: str | None = None) -> alt.TopLevelMixin:
        """The section's chart for ``target``; ``chosen``: the page's value of the choice."""
        if self.chart is None:
            raise ValueError(f"section {self.id!r} is a table, not a chart")
        options: dict[str, Any] = {}
        if self.choice:
            options[self.choice.argument] = chosen if target == PAGE else None
        figure = self.chart(frame, labels, **options)
        if target == FILE and self.file_width:
            figure = figure.properties(width=self.file_width)
        return figure


def summary_columns(table: pd.DataFrame) -> dict[str, Column]:
    """The summary's columns: figures to 1, 4 and 3 decimals, each type column a share."""
    columns = {
        "run": Column("run"),
        "conversations": Column("conversations"),
        "avg_response_length": Column("avg response length", decimals=1),
        "avg_loop_density": Column("avg loop density", decimals=4),
        f"avg_{BOUNDED}": Column(f"avg {MEASURES[BOUNDED]}", decimals=3),
    }
    for column in table.columns:
        if column not in SUMMARY_FIGURES:
            columns[column] = Column(column.replace("_", " "), share=True)
    return columns


SECTIONS: tuple[Section, ...] = (
    Section(
        "scatter", "Response length vs loop density", frames.points, charts.scatter_chart,
        caption=(
            Words("Click a run in the legend to hide its points; click it again to show them."),
            Words(" Hover a point for details.", only=PAGE),
            Words(" The radio buttons below the chart choose the y measure.", only=FILE),
        ),
        choice=Choice("y", charts.Y_CHOICE, MEASURES, key="y_measure"),
        file_width=760,
    ),
    Section(
        "summary", "Summary", frames.summary, columns=summary_columns,
        caption=(Words("Type columns: share of the run's conversations where that loop or break type is present."),),
    ),
    Section(
        "settings", "Settings compared", frames.settings_diff,
        caption=(Words("Models and engines, and every setting whose value differs between runs "
                       "('a | b': differs inside a run).", only=PAGE),),
        empty="The runs record no settings.",
    ),
    Section("histograms", "Distributions", frames.histograms, charts.histogram_chart),
    Section("types", "Loop and break types", frames.type_shares, charts.types_chart),
    Section(
        "survival", "Loop onset", frames.survival, charts.survival_chart,
        caption=(
            Words("x: the message number, #m in the reader. A conversation whose loop starts at message m "
                  "counts as loop-free up to m-1 and looping from m; one that never loops counts as loop-free "
                  "for as long as it ran and then leaves the count (Kaplan-Meier)"),
            Words(", so short conversations do not inflate the curve", only=PAGE),
            Words(". Solid: the assistant's loops; dashed: the user's (when analysis.json has them)."),
        ),
        file_width=760,
    ),
    Section(
        "reader", "Read a conversation", only=PAGE,
        why_only="it reads each conversation's log on demand; results.html is one small file per comparison",
    ),
)


def sections_on(target: Target) -> Iterator[Section]:
    """The sections ``target`` shows, in order."""
    return (section for section in SECTIONS if section.shown_on(target))


def run_list(runs: list[Run], target: Target) -> str:
    """The runs shown, for the line under the title; results.html names each folder too.

    ``"run_a (3 conversations), run_b (2 conversations)"``.
    """
    return ", ".join(
        f"{run.label} ({counted(len(frames.conversations(run)), 'conversation')}"
        + (f", {run.folder})" if target == FILE else ")")
        for run in runs
    )


def counted(n: int, noun: str) -> str:
    """``(1, "conversation")`` -> ``"1 conversation"``; ``(3, ...)`` -> ``"3 conversations"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
