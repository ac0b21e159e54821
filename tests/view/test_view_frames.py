"""frames.py's reshaping, reader.py's escaping, and view.py's argument errors."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES
from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.view import frames
from broken_record.view.frames import BOUNDED, Run
from broken_record.view.reader import highlight, reader_caption, reader_html, turn_html

ROOT = Path(__file__).resolve().parents[2]


def conv(file: str, *, onset: int | None = None, turns: int = 5, density: float = 0.5, share: float = 0.25,
         avg: float = 100.0, lengths: Sequence[float] = (100,), present: Collection[str] = (),
         settings: dict | None = None, messages: int | None = None, **new: object) -> dict:
    """One analysis.json entry; ``new``: keys of the new analysis.json (``loop_onset_message``, ``user`` ...)."""
    loops = {name: {"present": name in present, "turns": [0] if name in present else []}
             for name in LOOP_TYPES}
    breaks = {name: {"present": name in present, "turns": [1] if name in present else []}
              for name in BREAK_TYPES}
    return {
        "file": file, "complete": True, "turns": 2 * turns if messages is None else messages, "assistant_turns": turns,
        "avg_response_length": avg, "response_lengths": list(lengths), "loop_score": 1,
        "loop_density": density, BOUNDED: share, "loop_onset_turn": onset,
        "loops": loops, "breaks": breaks, "top_segments": [],
        "settings": settings or {},
        **new,
    }


def run(label: str, *convs: dict) -> Run:
    return Run(label=label, folder=label, analysis={"conversations": list(convs)})


@pytest.mark.parametrize("folder, label", [
    ("out/results-hot_sampler", "hot_sampler"),
    ("out/results-hot_sampler/", "hot_sampler"),
    ("parrot_20261122_101500", "parrot_20261122_101500"),
    ("results-", "results-"),
])
def test_run_label_drops_results_prefix(folder, label):
    assert frames.run_label(folder) == label


def test_unique_labels_number_duplicates():
    assert frames.unique_labels(["a/run", "b/run", "c"]) == ["run", "run (2)", "c"]


def test_too_many_runs():
    assert frames.too_many_runs(["x"] * 10) is None
    message = frames.too_many_runs(["x"] * 11)
    assert "11" in message and "at most 10" in message and "\n" not in message


def curve(frame, speaker: str = "assistant") -> dict[int, float]:
    mine = frame[frame["speaker"] == speaker]
    return dict(zip(mine["message"], mine["loop_free"]))


# A conversation as the reader shows it: message 0 the system prompt, then the speakers alternating.
ALTERNATING = ["system"] + ["assistant", "user"] * 5  # assistant turn k = message 2k+1, user turn k = 2k+2


def test_survival_drops_at_the_onset_message():
    # The loop starts at message #5 (assistant turn 2): the reader marks #5 "loop starts here",
    # so the conversation is loop-free up to #4 and looping from #5, not from #6.
    looping = conv("a", onset=2, messages=10, loop_onset_message=5)
    clean = conv("b", onset=None, messages=10, loop_onset_message=None)
    frame = frames.survival([run("r", looping, clean)])
    assert list(frame.columns) == ["run", "speaker", "message", "loop_free", "at_risk"]
    assert [curve(frame)[m] for m in range(10)] == [1.0] * 5 + [0.5] * 5
    assert set(frame["speaker"]) == {"assistant"}  # no user analysis in these entries


def test_survival_maps_an_old_analysis_by_the_logs_roles():
    # An analysis.json from before message numbers: assistant turn 2 is the log's 3rd assistant message.
    old = run("r", conv("a", onset=2, messages=10), conv("b", onset=None, messages=10))
    old.roles = {"a": ALTERNATING[:10], "b": ALTERNATING[:10]}
    assert [curve(frames.survival([old]))[m] for m in range(10)] == [1.0] * 5 + [0.5] * 5
    # Two opening lines of the assistant: its turn 2 is message #4 here, not 2*2+1.
    shifted = run("r", conv("a", onset=2, messages=10), conv("b", onset=None, messages=10))
    shifted.roles = {"a": ["system", "assistant", "assistant", "user", "assistant"] + ["user", "assistant"] * 2,
                     "b": ALTERNATING[:10]}
    assert [curve(frames.survival([shifted]))[m] for m in range(10)] == [1.0] * 4 + [0.5] * 6
    # Without the log the onset has no message number: that conversation is left out.
    unknown = run("r", conv("a", onset=2, messages=10), conv("b", onset=None, messages=10))
    assert set(curve(frames.survival([unknown])).values()) == {1.0}


def test_survival_is_kaplan_meier():
    # A short loop-free conversation (messages #0-#1) leaves the count instead of holding the curve up.
    frame = frames.survival([run("r", conv("a", messages=2, loop_onset_message=None),
                                 conv("b", onset=1, messages=6, loop_onset_message=3),
                                 conv("c", messages=10, loop_onset_message=None))])
    at_risk = dict(zip(frame["message"], frame["at_risk"]))
    assert (at_risk[1], at_risk[2], at_risk[3], at_risk[4]) == (3, 2, 2, 1)
    assert curve(frame)[2] == 1.0
    assert curve(frame)[3] == pytest.approx(0.5)  # 2 at risk at #3, one loops
    assert curve(frame)[9] == pytest.approx(0.5)


def test_survival_has_a_curve_for_the_user():
    user: dict = {"loops": {}, "breaks": {}, "loop_onset_turn": 1, "loop_onset_message": 4}
    quiet: dict = {"loops": {}, "breaks": {}, "loop_onset_turn": None, "loop_onset_message": None}
    frame = frames.survival([run("r", conv("a", messages=8, loop_onset_message=None, user=user),
                                 conv("b", messages=8, loop_onset_message=None, user=quiet))])
    assert set(curve(frame).values()) == {1.0}
    assert [curve(frame, "user")[m] for m in range(8)] == [1.0] * 4 + [0.5] * 4


def new_style(file: str = "a") -> dict:
    """A new analysis.json entry on ALTERNATING: loops named by message number, both speakers, echoes."""
    entry = conv(file, onset=2, messages=11, loop_onset_message=5,
                 echoes={"assistant": [7], "user": [4]}, drivers={"driven_by": "user"})
    entry["loops"]["single_turn_loop"] = {"present": True, "turns": [2, 3], "messages": [5, 7], "onset": 2,
                                          "onset_message": 5, "severity": 0.9}
    entry["breaks"]["word_soup"] = {"present": True, "turns": [3], "messages": [7], "severity": 0.6}
    entry["user"] = {"loops": {"multi_turn_loop": {"present": True, "turns": [1, 2], "messages": [4, 6],
                                                   "onset": 1, "onset_message": 4, "severity": 0.7}},
                     "breaks": {"rejection": {"present": False, "turns": [], "messages": [], "severity": 0.0}},
                     "loop_onset_turn": 1, "loop_onset_message": 4}
    return entry


def turns_of(roles: list[str]) -> list[dict]:
    return [{"index": m, "role": role, "text": f"{role} says {m}"} for m, role in enumerate(roles)]


def test_turn_flags_by_message_number_for_both_speakers():
    flags = frames.turn_flags(new_style(), turns_of(ALTERNATING))
    assert flags == {
        4: [("onset", frames.ONSET), ("loop", "multi_turn_loop"), ("echo", "echoes #3")],
        5: [("onset", frames.ONSET), ("loop", "single_turn_loop")],
        6: [("loop", "multi_turn_loop")],
        7: [("loop", "single_turn_loop"), ("break", "word_soup"), ("echo", "echoes #6")],
    }


def test_turn_flags_of_an_old_analysis_map_speaker_turns_to_the_logs_messages():
    # Two assistant opening lines: assistant turns 0, 1, 2, 3 are messages #1, #2, #4, #6.
    roles = ["system", "assistant", "assistant", "user", "assistant", "user", "assistant"]
    old = conv("a", onset=2, messages=7)
    old["loops"]["single_turn_loop"] = {"present": True, "turns": [2, 3], "severity": 0.9}
    old["breaks"]["word_soup"] = {"present": True, "turns": [1], "severity": 0.5}
    flags = frames.turn_flags(old, turns_of(roles))
    assert flags == {2: [("break", "word_soup")],
                     4: [("onset", frames.ONSET), ("loop", "single_turn_loop")],
                     6: [("loop", "single_turn_loop")]}
    page = reader_html(turns_of(roles), flags, [])
    assert "#4 · assistant turn 2" in page and "#3 · user turn 0" in page and "#0 · system<" in page
    assert "assistant loop from #4 (assistant turn 2)" in reader_caption(old, turns_of(roles))


def test_turn_flags_ignore_numbers_that_are_not_the_speakers_messages():
    entry = new_style()
    entry["loops"]["single_turn_loop"]["messages"] = [6, 99]  # #6 is a user message; #99 does not exist
    flags = frames.turn_flags(entry, turns_of(ALTERNATING))
    assert ("loop", "single_turn_loop") not in flags.get(6, []) and 99 not in flags


def test_reader_names_turns_and_onsets_by_message_number():
    turns = turns_of(ALTERNATING)
    entry = new_style()
    page = reader_html(turns, frames.turn_flags(entry, turns), [])
    blocks = dict(re.findall(r'data-message="(\d+)">(.*?)</div></div>', page))
    assert "#5 · assistant turn 2" in blocks["5"] and "loop starts here" in blocks["5"]
    assert "#4 · user turn 1" in blocks["4"] and "loop starts here" in blocks["4"]
    assert [m for m, block in blocks.items() if "loop starts here" in block] == ["4", "5"]
    assert 'class="brp-turn assistant brp-onset" data-message="5"' in page
    caption = reader_caption(entry, turns)
    assert "assistant loop from #5 (assistant turn 2)" in caption
    assert "user loop from #4 (user turn 1)" in caption
    assert "loop driven by the user" in caption and "echoes: assistant 1, user 1" in caption


def test_summary_and_type_shares():
    r = run("r", conv("a", density=1.0, share=0.5, avg=100, present={"word_soup"}),
            conv("b", density=3.0, share=0.1, avg=300))
    table = frames.summary([r]).iloc[0]
    assert table["conversations"] == 2
    assert table["avg_response_length"] == 200
    assert table["avg_loop_density"] == 2.0
    assert table[f"avg_{BOUNDED}"] == pytest.approx(0.3)
    assert table["word_soup"] == 0.5 and table["single_turn_loop"] == 0.0
    shares = frames.type_shares([r])
    assert len(shares) == 10
    row = shares[shares["type"] == "word_soup"].iloc[0]
    assert (row["family"], row["present"], row["share"]) == ("break", 1, 0.5)


def test_histograms_share_edges_across_runs():
    frame = frames.histograms([run("a", conv("x", lengths=[0, 10])), run("b", conv("y", lengths=[20]))], bins=4)
    lengths = frame[frame["quantity"] == "response_length"]
    assert set(lengths["bin_end"]) == {5.0, 10.0, 15.0, 20.0}
    assert lengths.groupby("run")["share"].sum().to_dict() == {"a": 1.0, "b": 1.0}


def test_settings_diff_keeps_models_and_differences():
    same = {"assistant": {"model": "m", "engine": "llama-server", "sampler": {"top_p": 0.8, "temperature": 0.2}}}
    hot = {"assistant": {"model": "m", "engine": "llama-server", "sampler": {"top_p": 0.8, "temperature": 1.6}}}
    frame = frames.settings_diff([run("cold", conv("a", settings=same)), run("hot", conv("b", settings=hot))])
    assert list(frame["setting"]) == ["assistant.engine", "assistant.model", "assistant.sampler.temperature"]
    assert frame.set_index("setting").loc["assistant.sampler.temperature"].to_dict() == {"cold": "0.2", "hot": "1.6"}
    # Conversations of one run that disagree show both values.
    mixed = frames.settings_diff([run("mix", conv("a", settings=same), conv("b", settings=hot))])
    assert mixed.set_index("setting").loc["assistant.sampler.temperature", "mix"] == "0.2 | 1.6"


def test_missing_figures_are_nan_not_errors():
    frame = frames.points([run("r", {"file": "x.log"})])
    assert math.isnan(frame.iloc[0]["loop_density"])


def test_open_run_errors(tmp_path):
    missing = frames.open_run(tmp_path / "nope")
    assert not missing.ok and "does not exist" in missing.error
    (tmp_path / "empty").mkdir()
    empty = frames.open_run(tmp_path / "empty")
    assert not empty.ok and "no conversation logs" in empty.error
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "analysis.json").write_text("{not json")
    bad = frames.open_run(tmp_path / "bad")
    assert not bad.ok and "analyze.py" in bad.error


def test_open_run_writes_analysis_json_or_keeps_it_in_memory(tmp_path, monkeypatch):
    from broken_record.analysis import outputs

    fresh = tmp_path / "fresh"
    shutil.copytree(ROOT / "tests" / "fixtures" / "runs" / "run_b", fresh)
    written = frames.open_run(fresh, workers=1)
    assert written.ok and written.analysed_now
    assert (fresh / ANALYSIS_FILE).is_file()

    def read_only(path, workers=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(outputs, "write_analysis", read_only)
    locked = tmp_path / "locked"
    shutil.copytree(ROOT / "tests" / "fixtures" / "runs" / "run_b", locked)
    in_memory = frames.open_run(locked, workers=1)
    assert in_memory.ok and in_memory.analysed_now
    assert not (locked / ANALYSIS_FILE).exists()
    assert in_memory.analysis is not None and written.analysis is not None
    assert [c["file"] for c in in_memory.analysis["conversations"]] == [c["file"] for c in written.analysis["conversations"]]


@pytest.mark.parametrize("text", [
    "<script>alert('x')</script>",
    "see <b>bold</b> & <img src=x onerror=alert(1)>",
])
def test_highlight_escapes_everything(text):
    out = highlight(text, ["<b>bold</b>", "alert("])
    assert "<script" not in out and "<b>" not in out and "<img" not in out
    assert out.replace("<mark>", "").replace("</mark>", "") == __import__("html").escape(text)


def test_highlight_marks_repeats():
    assert highlight("a <b> a <b>", ["a <b>"]) == "<mark>a &lt;b&gt;</mark> <mark>a &lt;b&gt;</mark>"


def test_turn_html_names_the_message_and_the_speaker_turn():
    out = turn_html({"index": 15, "role": "assistant", "text": "x"}, [("onset", frames.ONSET)], [], 7)
    assert "#15 · assistant turn 7" in out and "loop starts here" in out and "brp-onset" in out


def test_turn_html_escapes_role_stop_and_text():
    out = turn_html({"index": 3, "role": "<i>assistant</i>", "text": "<b>x</b>", "stop": "<u>eos</u>"},
                    [("loop", "single_turn_loop")], [])
    assert "<i>" not in out and "<b>" not in out and "<u>" not in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "single turn loop" in out


def view(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "view.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_view_without_arguments_prints_usage():
    result = view()
    assert result.returncode != 0
    assert result.stderr.startswith("usage: python view.py")


def test_view_refuses_eleven_runs(tmp_path):
    result = view(*[str(tmp_path / f"r{i}") for i in range(11)])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "at most 10" in lines[0]


def test_view_html_with_only_missing_runs_fails(tmp_path):
    result = view("--html", str(tmp_path / "results.html"), str(tmp_path / "nope"))
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert not (tmp_path / "results.html").exists()


def test_view_html_analyses_a_fresh_folder_with_a_notice(tmp_path):
    folder = tmp_path / "results-cold_hot"
    shutil.copytree(ROOT / "tests" / "fixtures" / "runs" / "run_b", folder)
    target = tmp_path / "results.html"
    result = view("--html", str(target), str(folder))
    assert result.returncode == 0, result.stderr
    assert "no analysis.json yet: analysing it now" in result.stderr
    assert (folder / "analysis.json").is_file()
    page = target.read_text()
    assert "<td>cold_hot</td>" in page  # labelled without the results- prefix
    assert page.count("vegaEmbed('#chart-") == 4


def test_streamlits_own_options_are_passed_on():
    from broken_record.cli.view import parse, streamlit_command

    args = parse(["run_a", "--server.headless", "true", "--server.port", "8600", "--theme.base=dark", "run_b"])
    assert args.runs == ["run_a", "run_b"]
    assert args.streamlit == ["--server.headless", "true", "--server.port", "8600", "--theme.base=dark"]
    command = streamlit_command("view.py", args.runs, None, args.streamlit)
    assert command[-3:] == ["--", "run_a", "run_b"]
    # the user's options come after the defaults, so Streamlit takes theirs
    assert command.index("--server.headless") > command.index("--server.address")
    assert parse(["run_a", "--port", "9000"]).streamlit == []


def test_run_list_counts_one_conversation_in_the_singular():
    from broken_record.view.sections import counted

    assert counted(1, "conversation") == "1 conversation" and counted(2, "conversation") == "2 conversations"


def test_the_scatter_title_follows_its_y_measure():
    import pandas as pd

    from broken_record.view import charts

    points = pd.DataFrame({"run": ["a"], "conversation": ["c"], "avg_response_length": [1.0], "loop_density": [0.5],
                           frames.BOUNDED: [0.2], "loop_score": [3], "turns": [4]})
    assert charts.scatter_chart(points, ["a"], "loop_density").to_dict()["title"] == \
        "Average response length vs loop density"
    assert charts.scatter_chart(points, ["a"], frames.BOUNDED).to_dict()["title"] == \
        "Average response length vs repeated share"
