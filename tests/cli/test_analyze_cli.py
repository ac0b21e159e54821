"""analyze.py end to end: report, the three files, --json, bad input, run folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broken_record.analysis import folder as analysis
from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "fixtures" / "testdata"
RUN_A = ROOT / "tests" / "fixtures" / "runs" / "run_a"
EXPECTED = json.loads((TESTDATA / "expected_classic.json").read_text())


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "analyze.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def testdata(tmp_path) -> Path:
    folder = tmp_path / "parrot_20261122_101500"
    shutil.copytree(TESTDATA, folder)
    return folder


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "parrot_testdata"
    shutil.copytree(TESTDATA, folder)
    result = run(str(folder))
    return folder, result


def test_report_has_the_original_figures(analysed):
    folder, result = analysed
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name, expected in EXPECTED.items():
        block = out[out.index(name):]
        assert f"Character Count: {expected['character_count']}" in block
        assert f"Loop Score: {expected['loop_score']}" in block
        assert f"Loop Density: {expected['loop_density']:.4f}" in block
        assert f"Average Response Length: {expected['avg_response_length']:.2f}" in block
    # Top segments print on one line each, with the longer ones that extend them.
    assert "  a b c d e (found 2 times)\n" in out
    assert "  >> a b c d e a b c d e (found 2 times)\n" in out
    # The original's buckets to 0.80, then wider ones instead of one "0.80-inf" for every looping conversation.
    assert "Histogram of Loop Densities:" in out and "0.80-1.00: # (1)" in out and "5.00-inf: ## (2)" in out
    assert "Histogram of Response Lengths:" in out and "0-1: # (1)" in out
    assert "Traceback" not in out + result.stderr


def test_writes_the_three_files(analysed):
    folder, _ = analysed
    points = json.loads((folder / "response_length_vs_loop_density.json").read_text())
    data = json.loads((folder / "analysis.json").read_text())
    by_file = {c["file"]: c for c in data["conversations"]}
    assert sorted(map(tuple, points)) == sorted(
        (e["avg_response_length"], e["loop_density"]) for e in EXPECTED.values())
    assert (folder / "response_length_vs_loop_density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, expected in EXPECTED.items():
        for key, value in expected.items():
            assert by_file[name][key] == value, (name, key)


def test_analysis_json_follows_the_schema(analysed):
    folder, _ = analysed
    data = json.loads((folder / "analysis.json").read_text())
    assert data["version"] == 1 and data["folder"] == "parrot_testdata"
    assert len(data["conversations"]) == 7
    for conv in data["conversations"]:
        for key in ("file", "complete", "turns", "assistant_turns", "character_count", "avg_response_length",
                    "response_lengths", "loop_score", "loop_density", "top_segments", "loops", "breaks",
                    "loop_onset_turn", "metrics", "settings", "stop_reasons", "repeated_share"):
            assert key in conv, key
        assert set(conv["loops"]) == set(LOOP_TYPES) and set(conv["breaks"]) == set(BREAK_TYPES)
        for entry in (*conv["loops"].values(), *conv["breaks"].values()):
            assert isinstance(entry["present"], bool) and isinstance(entry["turns"], list)
            assert 0 <= entry["severity"] <= 1
            assert all(0 <= t < conv["assistant_turns"] for t in entry["turns"])
        assert 0 <= conv["repeated_share"] <= 1
        for key in ("distinct_1", "distinct_2", "seq_rep_4", "compression_ratio"):
            assert key in conv["metrics"]
    cold = next(c for c in data["conversations"] if c["file"] == "parrot_cold_1.log")
    assert cold["loops"]["single_turn_loop"]["present"] and cold["loop_onset_turn"] == 1
    assert cold["settings"]["assistant"]["model"] == "smollm2-135m"
    summary = data["summary"]
    assert summary["conversations"] == 7 and summary["complete"] == 7
    # parrot_hot, and quirks_overlap's "a b c d e a b c d e ..." (letters, no syntax); parrot_orig's long
    # "You're amazing. You're splendid..." turn is a template loop, not soup
    assert summary["break_types"]["word_soup"] == pytest.approx(2 / 7)
    assert summary["mean_loop_density"] == pytest.approx(
        sum(e["loop_density"] for e in EXPECTED.values()) / 7)


def test_json_flag_prints_analysis_json(testdata):
    result = run(str(testdata), "--json", "-j", "1")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads((testdata / "analysis.json").read_text())


def test_one_core_and_all_cores_agree(testdata):
    one = analysis.analyze_folder(testdata, workers=1)
    many = analysis.analyze_folder(testdata, workers=2)
    assert one == many


def test_no_arguments_prints_usage():
    result = run()
    assert result.returncode != 0
    assert result.stderr.startswith("usage: python analyze.py <folder>")


@pytest.mark.parametrize("make", ["empty", "missing", "only_json"])
def test_folder_without_logs_is_one_line(tmp_path, make):
    folder = tmp_path / "run"
    if make != "missing":
        folder.mkdir()
    if make == "only_json":
        (folder / "config.json").write_text("{}")
        (folder / "manifest.json").write_text("{}")
    result = run(str(folder))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("analyze.py: ")
    assert "Traceback" not in result.stderr


def test_bad_files_are_skipped_with_a_warning(testdata):
    (testdata / "empty.log").write_text("")
    (testdata / "garbled.jsonl").write_text("\x00{{{ not json\n")
    (testdata / "random.log").write_text("lorem ipsum\n" * 3)
    result = run(str(testdata))
    assert result.returncode == 0
    for name in ("empty.log", "garbled.jsonl", "random.log"):
        assert f"warning: {name}:" in result.stdout
    data = json.loads((testdata / "analysis.json").read_text())
    assert len(data["conversations"]) == 7 and data["summary"]["skipped"] == 3


def test_run_folder_from_parrot_sh(tmp_path):
    # A run folder holds .log/.jsonl pairs plus config.json and manifest.json.
    folder = tmp_path / "parrot_20261122_101500"
    shutil.copytree(RUN_A, folder)
    (folder / "config.json").write_text(json.dumps({"agent_prefix": "Skye:"}))
    (folder / "manifest.json").write_text(json.dumps({"conversations": []}))
    lines = (RUN_A / "parrot_markup_1.jsonl").read_text().splitlines()
    (folder / "parrot_killed_2.jsonl").write_text("\n".join(lines[:7]) + "\n")
    result = run(str(folder), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    files = [c["file"] for c in data["conversations"]]
    assert files.count("parrot_markup_1.jsonl") == 1 and "parrot_markup_1.log" not in files
    markup = next(c for c in data["conversations"] if c["file"] == "parrot_markup_1.jsonl")
    assert markup["complete"] and markup["stop_reasons"] == {"eos": 7, "limit": 1}
    assert markup["settings"]["assistant"]["engine"] == "llama-server"
    killed = next(c for c in data["conversations"] if c["file"] == "parrot_killed_2.jsonl")
    assert killed["complete"] is False
    assert data["summary"]["partial"] == 1


def test_several_folders(tmp_path, testdata):
    other = tmp_path / "other"
    shutil.copytree(RUN_A, other)
    result = run(str(testdata), str(other), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["folder"] for d in data] == [testdata.name, "other"]
    assert (other / "analysis.json").is_file() and (testdata / "analysis.json").is_file()


def test_a_bad_folder_among_good_ones_fails_the_exit_code_only(tmp_path, testdata):
    result = run(str(tmp_path / "nope"), str(testdata))
    assert result.returncode == 1
    assert (testdata / "analysis.json").is_file()


def test_histograms():
    assert analysis.density_histogram([0.0, 0.07, 3.2, 0.8])[:2] == [[0.0, 0.05, 1], [0.05, 0.1, 1]]
    assert analysis.density_histogram([0.8, 3.2, 9.0])[-6:] == [
        [0.8, 1.0, 1], [1.0, 1.5, 0], [1.5, 2.0, 0], [2.0, 3.0, 0], [3.0, 5.0, 1], [5.0, None, 1]]
    lengths = analysis.length_histogram([0, 1, 2, 100, 101, 2000, 2001])
    assert lengths[0] == [0, 1, 2] and lengths[1] == [0, 100, 2] and lengths[2] == [100, 200, 1]
    assert lengths[20] == [1900, 2000, 1] and lengths[21] == [2000, None, 1]


REAL_RUN = ROOT / "tests" / "fixtures" / "parrot_20261123_005123"  # written by ./parrot.sh 2 (embedded server)


def test_a_real_parrot_sh_folder(tmp_path):
    folder = tmp_path / REAL_RUN.name
    shutil.copytree(REAL_RUN, folder)
    result = run(str(folder))
    assert result.returncode == 0, result.stderr
    data = json.loads((folder / "analysis.json").read_text())
    assert [c["file"] for c in data["conversations"]] == sorted(p.name for p in REAL_RUN.glob("*.jsonl"))
    for conv in data["conversations"]:
        assert conv["complete"] and conv["end_reason"] == "total_tokens"
        assert set(conv["stop_reasons"]) <= {"eos", "limit", "word", "error"}
        assert "SmolLM2" in conv["settings"]["assistant"]["model"]
        assert conv["settings"]["assistant"]["engine"] == "llama-server"
    assert "Character Count:" in result.stdout and "Traceback" not in result.stderr


def test_text_and_jsonl_logs_of_a_real_run_agree():
    from broken_record.runs.reader import read_log

    for jsonl in REAL_RUN.glob("*.jsonl"):
        a = analysis.analyze_conversation(read_log(jsonl))
        b = analysis.analyze_conversation(read_log(jsonl.with_suffix(".log")))
        for key in ("character_count", "loop_score", "loop_density", "response_lengths", "top_segments",
                    "loop_onset_turn"):
            assert a[key] == b[key], (jsonl.name, key)
        assert a["assistant_turns"] == b["assistant_turns"]
