"""frames.py's reshaping, reader.py's escaping, and view.py's argument errors."""

from __future__ import annotations

import math
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
from broken_record.view.reader import highlight, turn_html

ROOT = Path(__file__).resolve().parents[2]


def conv(file: str, *, onset: int | None = None, turns: int = 5, density: float = 0.5, share: float = 0.25,
         avg: float = 100.0, lengths: Sequence[float] = (100,), present: Collection[str] = (),
         settings: dict | None = None) -> dict:
    loops = {name: {"present": name in present, "turns": [0] if name in present else []}
             for name in LOOP_TYPES}
    breaks = {name: {"present": name in present, "turns": [1] if name in present else []}
              for name in BREAK_TYPES}
    return {
        "file": file, "complete": True, "turns": 2 * turns, "assistant_turns": turns,
        "avg_response_length": avg, "response_lengths": list(lengths), "loop_score": 1,
        "loop_density": density, BOUNDED: share, "loop_onset_turn": onset,
        "loops": loops, "breaks": breaks, "top_segments": [],
        "settings": settings or {},
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


def test_survival_is_kaplan_meier():
    # onset 2 -> loops during its 3rd turn; the other never loops in 5 turns.
    frame = frames.survival([run("r", conv("a", onset=2), conv("b", onset=None, turns=5))])
    curve = dict(zip(frame["turn"], frame["loop_free"]))
    assert [curve[t] for t in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    # A short loop-free conversation leaves the count instead of holding the curve up.
    frame = frames.survival([run("r", conv("a", onset=None, turns=1), conv("b", onset=3), conv("c", onset=None, turns=9))])
    curve = dict(zip(frame["turn"], frame["loop_free"]))
    assert curve[4] == pytest.approx(0.5)  # 2 at risk at t=4, one loops
    assert curve[9] == pytest.approx(0.5)


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
