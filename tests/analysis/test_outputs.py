"""outputs.py and scatter_png.py: what analyze.py writes into a run folder, and that computing writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broken_record.analysis import outputs, scatter_png
from broken_record.analysis.folder import NoLogsError, analyze_folder
from broken_record.runs.layout import ANALYSIS_FILE, SCATTER_JSON, SCATTER_PNG

ROOT = Path(__file__).resolve().parents[2]
RUN_A = ROOT / "tests" / "fixtures" / "runs" / "run_a"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_a(tmp_path) -> Path:
    folder = tmp_path / "run_a"
    shutil.copytree(RUN_A, folder)
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_analyze_folder_computes_and_writes_nothing(run_a):
    before = listing(run_a)
    analysis = analyze_folder(run_a, workers=1)
    assert listing(run_a) == before
    assert analysis["folder"] == "run_a" and len(analysis["conversations"]) == 3


def test_write_analysis_computes_and_writes_the_three_files(run_a):
    before = listing(run_a)
    analysis = outputs.write_analysis(run_a, workers=1)
    assert listing(run_a) == sorted(before + [ANALYSIS_FILE, SCATTER_JSON, SCATTER_PNG])
    assert json.loads((run_a / ANALYSIS_FILE).read_text(encoding="utf-8")) == analysis
    points = json.loads((run_a / SCATTER_JSON).read_text(encoding="utf-8"))
    assert points == outputs.scatter_points(analysis)
    assert points == [[c["avg_response_length"], c["loop_density"]] for c in analysis["conversations"]]
    assert (run_a / SCATTER_PNG).read_bytes()[:8] == PNG_MAGIC
    # the same dict as computing alone, written once
    assert analysis == analyze_folder(run_a, workers=1)


def test_write_analysis_of_a_folder_without_logs_raises_and_writes_nothing(tmp_path):
    with pytest.raises(NoLogsError):
        outputs.write_analysis(tmp_path, workers=1)
    assert listing(tmp_path) == []


def test_write_outputs_writes_the_analysis_it_is_given(tmp_path):
    analysis = {"version": 1, "folder": "x", "warnings": ["kept"],
                "conversations": [{"avg_response_length": 12.5, "loop_density": 0.25, "file": "é.log"}]}
    assert outputs.write_outputs(tmp_path, analysis) == []
    assert listing(tmp_path) == sorted([ANALYSIS_FILE, SCATTER_JSON, SCATTER_PNG])
    text = (tmp_path / ANALYSIS_FILE).read_text(encoding="utf-8")
    assert '"é.log"' in text and text.startswith('{\n "version": 1')   # UTF-8, indent 1, as before
    assert (tmp_path / SCATTER_JSON).read_text(encoding="utf-8") == "[[12.5, 0.25]]"
    assert json.loads(text)["warnings"] == ["kept"]


def test_a_chart_that_cannot_be_drawn_is_a_warning_in_analysis_json(tmp_path, monkeypatch):
    def fail(path, points):
        raise ImportError("no vl-convert here")

    monkeypatch.setattr(scatter_png, "write_scatter_png", fail)
    analysis = {"warnings": ["earlier"], "conversations": [{"avg_response_length": 1.0, "loop_density": 0.0}]}
    new = outputs.write_outputs(tmp_path, analysis)
    assert new == [f"{SCATTER_PNG}: not written (ImportError: no vl-convert here)"]
    assert listing(tmp_path) == sorted([ANALYSIS_FILE, SCATTER_JSON])
    assert json.loads((tmp_path / ANALYSIS_FILE).read_text())["warnings"] == ["earlier"] + new
    assert analysis["warnings"] == ["earlier"] + new


def test_json_is_replaced_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / ANALYSIS_FILE
    target.write_text("old")
    outputs.write_json_atomic(target, {"a": [1, "ü"]}, indent=1)
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, "ü"]}
    assert listing(tmp_path) == [ANALYSIS_FILE]


def test_scatter_axes_start_at_the_originals_range_and_grow_with_the_points():
    spec = scatter_png.scatter_spec([[100.0, 0.5]])
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 2000.0]
    assert spec["encoding"]["y"]["scale"]["domain"] == [0, 1.0]
    assert spec["title"] == scatter_png.TITLE
    spec = scatter_png.scatter_spec([[2500.0, 3.2], [10.0, 0.1]])
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 2500.0]
    assert spec["encoding"]["y"]["scale"]["domain"] == [0, 3.2]


def test_scatter_png_is_a_png_of_the_spec_size(tmp_path):
    path = tmp_path / SCATTER_PNG
    scatter_png.write_scatter_png(path, [[100.0, 0.5], [900.0, 1.5]])
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > scatter_png.WIDTH and height > scatter_png.HEIGHT   # the plot plus axes and title
