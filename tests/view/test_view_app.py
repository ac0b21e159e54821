"""The dashboard page, headless with AppTest, on two real analysed runs.

The fixture runs (tests/fixtures/runs) are real SmolLM2 conversations plus
one small conversation whose turns hold <script> and <b>. They are copied to
a temporary folder and analysed there by the library, so the figures on the
page are checked against the analysis.json files the analysis wrote.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES
from broken_record.analysis.outputs import write_analysis
from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.view import frames
from broken_record.view.frames import BOUNDED

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
CHARTS = ("scatter", "histograms", "types", "survival")
TIMEOUT = 180  # first runs analyse logs; generous for a busy 2-core machine


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[str]:
    """run_a and run_b copied and analysed (analysis.json written by the library)."""
    base = tmp_path_factory.mktemp("runs")
    folders = []
    for name in ("run_a", "run_b"):
        target = base / name
        shutil.copytree(FIXTURE_RUNS / name, target)
        write_analysis(target)
        assert (target / ANALYSIS_FILE).is_file()
        folders.append(str(target))
    return folders


def analysis(folder: str) -> dict:
    return json.loads((Path(folder) / ANALYSIS_FILE).read_text())


def app(folders: list[str]) -> AppTest:
    at = AppTest.from_string(
        f"from broken_record.view.app import main\nmain({folders!r})\n", default_timeout=TIMEOUT
    )
    return at.run()


def charts(at: AppTest) -> dict:
    """``{chart name: (spec, data frame)}`` for every Altair chart on the page."""
    out = {}
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        data = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets]
        out[spec.get("name")] = (spec, data[0] if data else None)
    return out


def table(at: AppTest, first_column: str) -> pd.DataFrame:
    """The st.dataframe whose first column is ``first_column`` (summary: run, settings: setting)."""
    found = [d.value for d in at.dataframe if d.value.columns[0] == first_column]
    assert len(found) == 1
    return found[0].set_index(first_column)


@pytest.fixture(scope="module")
def page(runs) -> AppTest:
    at = app(runs)
    assert not at.exception, at.exception
    return at


def test_every_chart_shows_both_runs(page, runs):
    assert [e.value for e in page.error] == []
    found = charts(page)
    assert set(CHARTS) <= set(found)
    for name in CHARTS:
        _, data = found[name]
        assert set(data["run"]) == {"run_a", "run_b"}, name


def test_scatter_has_one_point_per_conversation(page, runs):
    spec, data = charts(page)["scatter"]
    assert len(data) == sum(len(analysis(f)["conversations"]) for f in runs)
    assert spec["encoding"]["x"]["field"] == "avg_response_length"
    assert spec["encoding"]["y"]["field"] == "loop_density"
    assert spec["encoding"]["color"]["field"] == "run"
    tooltips = {t["field"] for t in spec["encoding"]["tooltip"]}
    assert {"run", "conversation", "avg_response_length", "loop_density", BOUNDED} <= tooltips
    # The legend is bound to a selection that hides the clicked run.
    params = spec.get("params", [])
    assert any(p.get("bind") == "legend" and p["select"]["fields"] == ["run"] for p in params)
    for folder in runs:
        conversations = analysis(folder)["conversations"]
        mine = data[data["run"] == Path(folder).name].set_index("conversation")
        for conv in conversations:
            assert mine.loc[conv["file"], "loop_density"] == pytest.approx(conv["loop_density"])
            assert mine.loc[conv["file"], "avg_response_length"] == pytest.approx(conv["avg_response_length"])


def test_y_axis_can_be_the_bounded_share(runs):
    at = app(runs)
    at.radio(key="y_measure").set_value(BOUNDED).run()
    assert not at.exception
    spec, data = charts(at)["scatter"]
    assert spec["encoding"]["y"]["field"] == BOUNDED
    assert data[BOUNDED].between(0, 1).all()


def test_summary_table_equals_analysis_json(page, runs):
    summary = table(page, "run")
    assert list(summary.index) == ["run_a", "run_b"]
    for folder in runs:
        conversations = analysis(folder)["conversations"]
        row = summary.loc[Path(folder).name]
        n = len(conversations)
        assert row["conversations"] == n
        assert row["avg_response_length"] == pytest.approx(sum(c["avg_response_length"] for c in conversations) / n)
        assert row["avg_loop_density"] == pytest.approx(sum(c["loop_density"] for c in conversations) / n)
        assert row[f"avg_{BOUNDED}"] == pytest.approx(sum(frames.bounded_share(c) for c in conversations) / n)
        for family in ("loops", "breaks"):
            for name in LOOP_TYPES if family == "loops" else BREAK_TYPES:
                present = sum(1 for c in conversations if c[family][name]["present"])
                assert row[name] == pytest.approx(present / n), name
        # ... and the folder summary analysis.json carries agrees.
        summary_json = analysis(folder)["summary"]
        assert row["conversations"] == summary_json["conversations"]
        assert row["avg_response_length"] == pytest.approx(summary_json["mean_avg_response_length"])
        assert row["avg_loop_density"] == pytest.approx(summary_json["mean_loop_density"])
        assert row[f"avg_{BOUNDED}"] == pytest.approx(summary_json["mean_repeated_share"])
        for name, share in {**summary_json["loop_types"], **summary_json["break_types"]}.items():
            assert row[name] == pytest.approx(share), name


def test_type_bars_equal_analysis_json(page, runs):
    _, data = charts(page)["types"]
    for folder in runs:
        conversations = analysis(folder)["conversations"]
        mine = data[data["run"] == Path(folder).name].set_index("type")
        assert len(mine) >= 10
        for name in BREAK_TYPES:
            assert mine.loc[name, "present"] == sum(1 for c in conversations if c["breaks"][name]["present"])


def test_survival_starts_at_one_and_follows_onsets(page, runs):
    spec, data = charts(page)["survival"]
    assert spec["encoding"]["x"]["field"] == "message"
    assert spec["encoding"]["x"]["title"].startswith("message number")
    for folder in runs:
        curve = data[(data["run"] == Path(folder).name) & (data["speaker"] == "assistant")].sort_values("message")
        assert curve.iloc[0]["loop_free"] == 1.0
        assert curve["loop_free"].is_monotonic_decreasing
        conversations = analysis(folder)["conversations"]
        if all(c["loop_onset_turn"] is None for c in conversations):
            assert curve.iloc[-1]["loop_free"] == 1.0
        else:
            assert curve.iloc[-1]["loop_free"] < 1.0


def test_histograms_count_every_response(page, runs):
    _, data = charts(page)["histograms"]
    for folder in runs:
        conversations = analysis(folder)["conversations"]
        mine = data[(data["run"] == Path(folder).name) & (data["quantity"] == "response_length")]
        assert mine["count"].sum() == sum(len(c["response_lengths"]) for c in conversations)


def test_settings_side_by_side(page):
    settings = table(page, "setting")
    assert list(settings.columns) == ["run_a", "run_b"]
    assert settings.loc["assistant.model"].tolist() == ["smollm2-135m", "smollm2-135m"]
    temperature = settings.loc["assistant.sampler.temperature"]
    assert temperature["run_a"] == "0.87"  # orig, norep and the markup log all use 0.87
    assert set(temperature["run_b"].split(" | ")) == {"0.2", "1.6"}
    assert "assistant.sampler.repeat_penalty" in settings.index


def reader_html(at: AppTest) -> str:
    blocks = [h.proto.body for h in at.get("html") if "brp-reader" in h.proto.body]
    assert len(blocks) == 1
    return blocks[0]


def test_reader_escapes_model_markup(runs):
    at = app(runs)
    at.selectbox(key="reader_run").set_value("run_a").run()
    markup = next(f for f in at.selectbox(key="reader_conversation").options if "markup" in f)
    at.selectbox(key="reader_conversation").set_value(markup).run()
    assert not at.exception
    body = reader_html(at)
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body
    assert "<script" not in body and "<b>" not in body and "<img" not in body
    # Stop reasons from the .jsonl, including the turn cut at the token limit.
    assert "stop: eos" in body and "stop: limit" in body


def test_reader_flags_and_highlights_a_looping_conversation(runs):
    at = app(runs)
    at.selectbox(key="reader_run").set_value("run_b").run()
    conversations = analysis(runs[1])["conversations"]
    looping = max(conversations, key=lambda c: c["loop_density"])
    at.selectbox(key="reader_conversation").set_value(looping["file"]).run()
    assert not at.exception
    body = reader_html(at)
    assert body.count('class="brp-turn') == len(frames.read_turns(runs[1], looping["file"]))
    assert "<mark>" in body  # its repeated segments are highlighted
    flagged = {name for name, entry in frames.detections(looping).items() if entry["present"] and entry["turns"]}
    for name in flagged:
        assert name.replace("_", " ") in body


def test_missing_and_empty_folders_are_errors_others_still_shown(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    at = app([runs[0], str(tmp_path / "nope"), str(tmp_path / "empty")])
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert "does not exist" in errors[0] and "check the path" in errors[0]
    assert "no conversation logs" in errors[1] and "parrot.sh" in errors[1]
    found = charts(at)
    assert set(CHARTS) <= set(found)
    assert set(found["scatter"][1]["run"]) == {"run_a"}


def test_eleven_folders_is_one_clear_error(runs):
    at = app([runs[0]] * 11)
    assert not at.exception
    assert len(at.error) == 1 and "at most 10" in at.error[0].value
    assert charts(at) == {}


def test_no_folders_says_how_to_start(tmp_path):
    at = app([])
    assert not at.exception
    assert "python view.py" in at.error[0].value


def test_folder_without_analysis_is_analysed_with_a_notice(tmp_path):
    folder = tmp_path / "results-fresh"
    shutil.copytree(FIXTURE_RUNS / "run_b", folder)
    at = app([str(folder)])
    assert not at.exception
    assert (folder / ANALYSIS_FILE).is_file()
    notices = [i.value for i in at.info]
    assert any("analysed now" in n for n in notices)
    # Labelled without the results- prefix.
    assert set(charts(at)["scatter"][1]["run"]) == {"fresh"}


# --- one turn numbering: hand-made runs whose flags sit on known messages ---------------

# Two opening lines of the assistant, so assistant turn k is not message 2k+1:
# assistant turns 0..4 are messages #1 #2 #4 #6 #8, user turns 0..2 are #3 #5 #7.
ROLES = ["system", "assistant", "assistant", "user", "assistant", "user", "assistant", "user", "assistant"]


def write_log(path: Path) -> None:
    prefixes = {"assistant": "Skye:", "user": "Mark:", "system": ""}
    header = {"type": "header", "version": 1, "agent_prefix": "Skye:", "user_prefix": "Mark:",
              "config": {"agent_prefix": "Skye:", "user_prefix": "Mark:", "turn_max_tokens": 64,
                         "conversation": [{"role": r, "content": "x"} for r in ROLES[:3]]}}
    lines = [header]
    for m, role in enumerate(ROLES):
        said = f"message {m} of the {role}"
        lines.append({"type": "message", "index": m, "role": role, "prefix": prefixes[role],
                      "text": f"{prefixes[role]} {said}".strip(), "generated": said,
                      "source": "config" if m < 3 else "model", "stop": None if m < 3 else "eos", "tokens": 5})
    lines.append({"type": "footer", "complete": True, "end_reason": "total_tokens", "total_tokens": 90})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def entry(new: bool) -> dict:
    """The conversation's analysis.json entry: assistant loop from turn 2 (#4), user loop from turn 1 (#5)."""
    loops: dict[str, dict] = {name: {"present": False, "turns": [], "severity": 0.0} for name in LOOP_TYPES}
    breaks: dict[str, dict] = {name: {"present": False, "turns": [], "severity": 0.0} for name in BREAK_TYPES}
    loops["single_turn_loop"] = {"present": True, "turns": [2, 3], "severity": 0.9, "onset": 2}
    breaks["word_soup"] = {"present": True, "turns": [4], "severity": 0.5}
    conv = {"file": "parrot_handmade_1.jsonl", "complete": True, "turns": len(ROLES), "assistant_turns": 5,
            "avg_response_length": 20.0, "response_lengths": [20] * 5, "loop_score": 1, "loop_density": 0.5,
            BOUNDED: 0.3, "loop_onset_turn": 2, "loops": loops, "breaks": breaks, "top_segments": []}
    if new:
        for found in (*loops.values(), *breaks.values()):
            found["messages"] = [[1, 2, 4, 6, 8][k] for k in found["turns"]]
        loops["single_turn_loop"]["onset_message"] = 4
        conv["loop_onset_message"] = 4
        conv["user"] = {
            "loops": {"multi_turn_loop": {"present": True, "turns": [1, 2], "messages": [5, 7], "severity": 0.7,
                                          "onset": 1, "onset_message": 5}},
            "breaks": {"rejection": {"present": False, "turns": [], "messages": [], "severity": 0.0}},
            "loop_onset_turn": 1, "loop_onset_message": 5,
        }
        conv["echoes"] = {"assistant": [6], "user": []}
        conv["drivers"] = {"driven_by": "user"}
    return conv


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> list[str]:
    """Two runs of the same log: ``new`` with message numbers in analysis.json, ``old`` without."""
    base = tmp_path_factory.mktemp("handmade")
    folders = []
    for name in ("new", "old"):
        folder = base / name
        folder.mkdir()
        write_log(folder / "parrot_handmade_1.jsonl")
        (folder / ANALYSIS_FILE).write_text(json.dumps({"conversations": [entry(name == "new")]}))
        folders.append(str(folder))
    return folders


def blocks(body: str) -> dict[int, str]:
    """``{message number: that turn's header}`` of the reader."""
    found = re.findall(r'data-message="(\d+)"><div class="brp-head">(.*?)</div>', body)
    return {int(m): head for m, head in found}


def flagged(body: str, badge: str) -> set[int]:
    return {m for m, head in blocks(body).items() if f">{badge}<" in head}


@pytest.mark.parametrize("label", ["new", "old"])
def test_reader_flags_sit_on_their_messages(handmade, label):
    at = app(handmade)
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    at.selectbox(key="reader_run").set_value(label).run()
    assert not at.exception
    body = reader_html(at)
    heads = blocks(body)
    assert sorted(heads) == list(range(len(ROLES)))
    assert heads[4].startswith("#4 · assistant turn 2")
    assert heads[5].startswith("#5 · user turn 1")
    assert heads[0].startswith("#0 · system<")
    # Assistant turns 2, 3 and 4 are messages #4, #6 and #8 (not #5, #7, #9).
    assert flagged(body, "single turn loop") == {4, 6}
    assert flagged(body, "word soup") == {8}
    assert 'class="brp-turn assistant brp-onset" data-message="4"' in body
    captions = [c.value for c in at.caption if "messages ·" in c.value]
    assert len(captions) == 1 and "assistant loop from #4 (assistant turn 2)" in captions[0]
    if label == "new":  # the user's types, onset and echoes come only with the new analysis.json
        assert flagged(body, "multi turn loop") == {5, 7}
        assert flagged(body, "loop starts here") == {4, 5}
        assert flagged(body, "echoes #5") == {6}
        assert "user loop from #5 (user turn 1)" in captions[0] and "driven by the user" in captions[0]
    else:
        assert flagged(body, "multi turn loop") == set()
        assert flagged(body, "loop starts here") == {4}


def test_onset_chart_drops_at_the_onset_message(handmade):
    at = app(handmade)
    assert not at.exception, at.exception
    _, data = charts(at)["survival"]
    for label in ("new", "old"):
        mine = data[(data["run"] == label) & (data["speaker"] == "assistant")]
        curve = dict(zip(mine["message"], mine["loop_free"]))
        assert (curve[3], curve[4]) == (1.0, 0.0), label  # loop-free up to #3, looping from #4
    user = data[(data["run"] == "new") & (data["speaker"] == "user")]
    assert dict(zip(user["message"], user["loop_free"]))[4] == 1.0
    assert dict(zip(user["message"], user["loop_free"]))[5] == 0.0
    assert set(data[data["run"] == "old"]["speaker"]) == {"assistant"}
