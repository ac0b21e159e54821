"""The console report a new user reads: the turns of each type, both speakers, the legend, no wrapping when piped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from broken_record.analysis import report

ROOT = Path(__file__).resolve().parents[2]
REAL_RUN = ROOT / "tests" / "fixtures" / "parrot_20261123_005123"  # written by ./parrot.sh 2 (embedded server)
TESTDATA = ROOT / "tests" / "fixtures" / "testdata"


def analyze(folder: Path) -> tuple[str, dict]:
    result = subprocess.run([sys.executable, str(ROOT / "analyze.py"), str(folder)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads((folder / "analysis.json").read_text())


def test_each_type_is_listed_with_its_messages_for_both_speakers(tmp_path):
    folder = tmp_path / "testdata"
    shutil.copytree(TESTDATA, folder)
    out, data = analyze(folder)
    cold = next(c for c in data["conversations"] if c["file"] == "parrot_cold_1.log")
    single = cold["loops"]["single_turn_loop"]
    assert single["present"]
    block = out[out.index("parrot_cold_1.log"):]
    line = next(x for x in block.splitlines() if x.startswith("Types (assistant):"))
    assert f"single_turn_loop {single['severity']:.2f} " + " ".join(f"#{m}" for m in single["messages"]) in line
    assert f"[loop from #{cold['loop_onset_message']} (assistant turn {cold['loop_onset_turn']})]" in line
    assert any(x.startswith("Types (user):") for x in block.splitlines())


def test_the_legend_explains_the_figures(tmp_path):
    folder = tmp_path / REAL_RUN.name
    shutil.copytree(REAL_RUN, folder)
    out, _ = analyze(folder)
    legend = out[out.index("How to read this report"):]
    for term in ("#m", "Loop Density", "can exceed 1", "Repeated Share", ">> longer", "Severity",
                 "0.50 = half", "loop onset", "driven by", "echoes"):
        assert term in legend, term


def test_piped_output_does_not_wrap_or_split_file_names(tmp_path):
    folder = tmp_path / REAL_RUN.name
    shutil.copytree(REAL_RUN, folder)
    long_name = "parrot_" + "very_long_conversation_name_" * 4 + "1.jsonl"
    source = next(folder.glob("*.jsonl"))
    source.rename(folder / long_name)
    source.with_suffix(".log").unlink()
    out, _ = analyze(folder)
    assert f"\n{long_name}\n" in out
    assert any(long_name in line and line.startswith("│") for line in out.splitlines())  # one table row
    segments = [x for x in out.splitlines() if x.endswith(" times)")]
    assert all("\n" not in x for x in segments)


def test_messages_list_is_cut_after_twelve():
    assert report.messages_list([3, 5]) == "#3 #5"
    assert report.messages_list(list(range(20))).endswith("#11 … (+8 more)")
