"""The page and results.html show the same sections: sections.py's headings and captions.

The Streamlit page (headless, AppTest) and results.html (build_html, parsed)
are each reduced to an outline: every heading in order with the captions and
notes under it. Both outlines must be the one sections.py describes for the
target, so a heading or caption can only differ where sections.py says so.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection
from html.parser import HTMLParser
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from broken_record.analysis.outputs import write_analysis
from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.view import frames
from broken_record.view.sections import FILE, PAGE, SECTIONS, Section, Target, sections_on
from broken_record.view.static import build_html

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
TIMEOUT = 180

# Today's wording, as each target shows it (sections.py writes each text once).
CAPTIONS = {
    ("scatter", PAGE): "Click a run in the legend to hide its points; click it again to show them. "
                       "Hover a point for details.",
    ("scatter", FILE): "Click a run in the legend to hide its points; click it again to show them. "
                       "The radio buttons below the chart choose the y measure.",
    ("summary", PAGE): "Type columns: share of the run's conversations where that loop or break type is present.",
    ("summary", FILE): "Type columns: share of the run's conversations where that loop or break type is present.",
    ("settings", PAGE): "Models and engines, and every setting whose value differs between runs "
                        "('a | b': differs inside a run).",
    ("settings", FILE): "",
    ("histograms", PAGE): "", ("histograms", FILE): "",
    ("types", PAGE): "", ("types", FILE): "",
    ("survival", PAGE): "x: the message number, #m in the reader. A conversation whose loop starts at message m "
                        "counts as loop-free up to m-1 and looping from m; one that never loops counts as loop-free "
                        "for as long as it ran and then leaves the count (Kaplan-Meier), so short conversations do "
                        "not inflate the curve. Solid: the assistant's loops; dashed: the user's (when analysis.json "
                        "has them).",
    ("survival", FILE): "x: the message number, #m in the reader. A conversation whose loop starts at message m "
                        "counts as loop-free up to m-1 and looping from m; one that never loops counts as loop-free "
                        "for as long as it ran and then leaves the count (Kaplan-Meier). Solid: the assistant's "
                        "loops; dashed: the user's (when analysis.json has them).",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[str]:
    base = tmp_path_factory.mktemp("section_runs")
    folders = []
    for name in ("run_a", "run_b"):
        shutil.copytree(FIXTURE_RUNS / name, base / name)
        write_analysis(base / name)
        folders.append(str(base / name))
    return folders


Outline = list[tuple[str, list[str]]]


def page_outline(folders: list[str]) -> Outline:
    """The page's subheaders in order, each with the captions and notes below it."""
    at = AppTest.from_string(f"from broken_record.view.app import main\nmain({folders!r})\n",
                             default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    outline: Outline = []
    for element in at.main.children.values():
        if element.type == "subheader":
            outline.append((element.proto.body, []))
        elif element.type in ("caption", "info") and outline:
            outline[-1][1].append(element.proto.body)
    return outline


class _Notes(HTMLParser):
    """results.html's <h2> headings, each with the <p class="note"> texts after it."""

    def __init__(self) -> None:
        super().__init__()
        self.outline: Outline = []
        self.within: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2" or (tag == "p" and ("class", "note") in attrs):
            self.within, self.text = tag, ""

    def handle_data(self, data: str) -> None:
        if self.within:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag != self.within:
            return
        if tag == "h2":
            self.outline.append((self.text, []))
        elif self.outline:  # the note under the title (runs, time written) comes before any heading
            self.outline[-1][1].append(self.text)
        self.within = None


def file_outline(folders: list[str]) -> Outline:
    parser = _Notes()
    parser.feed(build_html([frames.open_run(f) for f in folders]))
    return parser.outline


def expected(target: Target, empty: Collection[str] = ()) -> Outline:
    """sections.py's outline for ``target``; ``empty``: ids of the sections whose table is empty."""
    outline: Outline = []
    for section in sections_on(target):
        if section.frame is None:
            continue  # the reader's caption is the conversation's own
        caption = section.caption_on(target)
        notes = [section.empty] if section.id in empty and section.empty else [caption] if caption else []
        outline.append((section.heading, notes))
    return outline


def without_reader(outline: Outline) -> Outline:
    readers = {s.heading for s in SECTIONS if s.frame is None}
    return [(heading, notes) for heading, notes in outline if heading not in readers]


def test_page_and_results_html_show_sections_py(runs):
    page = page_outline(runs)
    file = file_outline(runs)
    assert [h for h, _ in page] == [s.heading for s in sections_on(PAGE)]
    assert [h for h, _ in file] == [s.heading for s in sections_on(FILE)]
    assert without_reader(page) == expected(PAGE)
    assert file == expected(FILE)
    # The same headings in the same order, apart from the sections one target leaves out, and why.
    page_only = [s for s in SECTIONS if not s.shown_on(FILE)]
    assert [h for h, _ in page if h not in {s.heading for s in page_only}] == [h for h, _ in file]
    assert all(s.why_only for s in SECTIONS if s.only)
    assert [s.id for s in page_only] == ["reader"]


def test_captions_keep_their_wording():
    for section in SECTIONS:
        if section.frame is None:
            continue
        for target in (PAGE, FILE):
            assert section.caption_on(target) == CAPTIONS[section.id, target], (section.id, target)


def test_charts_are_named_for_their_sections(runs):
    """Each chart's Vega-Lite name is its section's id: the page's spec name and results.html's div."""
    good = [frames.open_run(f) for f in runs]
    labels = [r.label for r in good]
    written = build_html(good)
    for section in SECTIONS:
        if section.chart is None:
            continue
        assert section.frame is not None
        frame = section.frame(good)
        for target in (PAGE, FILE):
            assert section.draw(frame, labels, target, "loop_density").to_dict()["name"] == section.id
        assert f'<div class="chart" id="chart-{section.id}"></div>' in written


def radios(spec: dict) -> list[dict]:
    """The spec's parameters bound to radio buttons."""
    return [p for p in spec.get("params", []) if isinstance(p.get("bind"), dict) and p["bind"].get("input") == "radio"]


def test_the_choice_is_a_radio_on_the_page_and_the_charts_own_in_results_html(runs):
    good = [frames.open_run(f) for f in runs]
    labels = [r.label for r in good]
    scatter = next(s for s in SECTIONS if s.choice)
    assert scatter.frame is not None and scatter.choice is not None
    frame = scatter.frame(good)
    on_page = scatter.draw(frame, labels, PAGE, "repeated_share").to_dict()
    in_file = scatter.draw(frame, labels, FILE).to_dict()
    assert on_page["encoding"]["y"]["field"] == "repeated_share"
    assert radios(on_page) == []  # the page's radio is a Streamlit widget
    assert [r["bind"]["options"] for r in radios(in_file)] == [list(scatter.choice.options)]
    assert in_file["width"] == scatter.file_width and "width" not in on_page


def test_runs_without_settings_show_the_empty_note_on_both(runs, tmp_path):
    bare = []
    for folder in runs:
        target = tmp_path / Path(folder).name
        shutil.copytree(folder, target)
        analysis = json.loads((target / ANALYSIS_FILE).read_text())
        for conv in analysis["conversations"]:
            conv.pop("settings", None)
        (target / ANALYSIS_FILE).write_text(json.dumps(analysis))
        bare.append(str(target))
    empty = {s.id for s in SECTIONS if s.empty}
    assert empty == {"settings"}
    assert without_reader(page_outline(bare)) == expected(PAGE, empty)
    assert file_outline(bare) == expected(FILE, empty)


def test_every_section_shows_something():
    for section in SECTIONS:
        assert isinstance(section, Section) and section.id and section.heading
        assert section.frame is not None or section.only == PAGE, section.id
