"""analyze.py on long and on garbage logs: Ctrl-C stops it at once, files that are no log are skipped.

The long log is built from the real turns of the test vectors, written by
the project's own ConversationLog as parrot.sh would. No figure of speed is
asserted here (bench/bench_analyze.py measures it); the Ctrl-C bound is generous.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.runs.reader import read_log
from broken_record.runs.writer import ConversationLog, closing_text

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "fixtures" / "testdata"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "analyze.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def write_long_log(folder: Path, turns: int, seed: int = 1) -> Path:
    """A .log of ``turns`` real turns (half of the assistant's repeat one of its last two), without its .jsonl."""
    rng = random.Random(seed)
    pool: dict[str, list[str]] = {"assistant": [], "user": []}
    config = None
    for name in ("parrot_cold_1.log", "parrot_hot_1.log", "parrot_norep_1.log", "parrot_orig_1.log"):
        conv = read_log(TESTDATA / name)
        config = config or conv.config
        for t in conv.turns:
            if t.source == "model" and t.role in pool and t.content:
                pool[t.role].append(t.content)
    assert config is not None
    config = dict(config, conversation=[], turn_max_tokens=256, total_tokens=10**9)
    prefixes = {"assistant": config["agent_prefix"], "user": config["user_prefix"]}
    log = ConversationLog(folder, stem="parrot_20261122_101501_000000001")
    log.header({"config": config, "agent_prefix": prefixes["assistant"], "user_prefix": prefixes["user"],
                "assistant": {"engine": "llama-server"}, "user": {"engine": "llama-server"}})
    records, total, said = [], 0, []
    for index in range(turns):
        role = "assistant" if index % 2 == 0 else "user"
        if role == "assistant" and len(said) >= 2 and rng.random() < 0.5:
            text = rng.choice(said[-2:])
        else:
            text = " ".join(rng.choice(pool[role]) for _ in range(rng.randint(1, 3)))
        if role == "assistant":
            said.append(text)
            log.marker(total)
        tokens = max(1, len(text) // 4)
        record = {"index": index, "role": role, "text": f"{prefixes[role]} {text}", "prefix": prefixes[role],
                  "generated": text, "tokens_before": total, "source": "model", "tokens": tokens, "stop": "eos"}
        records.append(record)
        log.message(record)
        total += tokens
    log.close({"end_reason": "total_tokens", "complete": True, "total_tokens": total, "turns": len(records),
               "malformed_stream_lines": 0}, closing_text(records, config, "m", "m", total))
    jsonl = folder / "parrot_20261122_101501_000000001.jsonl"
    jsonl.unlink()
    return folder / "parrot_20261122_101501_000000001.log"


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long") / "parrot_20261122_101500"
    folder.mkdir()
    log = write_long_log(folder, 16000)
    assert log.stat().st_size > 10_000_000
    return folder


@pytest.mark.parametrize("jobs", [[], ["-j", "1"]], ids=["default-j", "j1"])
def test_ctrl_c_stops_a_long_analysis_at_once(long_run, jobs):
    before = sorted(p.name for p in long_run.iterdir())
    proc = subprocess.Popen([sys.executable, str(ROOT / "analyze.py"), str(long_run), *jobs], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # well inside the analysis of a log of more than 10 MB (many seconds)
    assert proc.poll() is None, "analyze.py ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("analyze.py did not stop within 10 s of SIGINT")
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130
    assert err == "analyze.py: interrupted\n"
    assert "Traceback" not in out
    # Nothing written, nothing half-written, no worker left behind.
    assert sorted(p.name for p in long_run.iterdir()) == before
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    assert children == ""


def test_a_long_log_is_analysed(tmp_path):
    # About 2 MB: the linear kernel's ground, end to end, with the figures of the plain algorithm.
    from broken_record.analysis import classic

    folder = tmp_path / "parrot_20261122_101500"
    folder.mkdir()
    log = write_long_log(folder, 3000, seed=2)
    result = run(str(folder), "--json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)["conversations"][0]
    conv = read_log(log)
    text, lengths = classic.assistant_lines(conv.classic_lines, conv.agent_prefix)
    expected = classic.classic_figures(text, lengths, miner=classic.mine_reference)
    assert entry["loop_score"] == expected.loop_score
    assert entry["top_segments"] == [list(s) for s in expected.top_segments(20)]


GARBAGE = {
    "random.log": bytes(random.Random(5).getrandbits(8) for _ in range(4000)),
    "binary.log": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,
    "notes.log": b"Dear diary: today I wrote notes.\nMark: not a conversation either.\n",
    "noise.jsonl": bytes(random.Random(6).getrandbits(8) for _ in range(4000)),
}


def test_garbage_logs_are_skipped_with_a_warning_naming_them(tmp_path):
    folder = tmp_path / "parrot_20261122_101500"
    shutil.copytree(TESTDATA, folder)
    for name, data in GARBAGE.items():
        (folder / name).write_bytes(data)
    result = run(str(folder))
    assert result.returncode == 0, result.stderr
    for name in GARBAGE:
        assert f"warning: {name}:" in result.stdout
    data = json.loads((folder / ANALYSIS_FILE).read_text())
    files = {c["file"] for c in data["conversations"]}
    assert not files & set(GARBAGE)
    assert len(files) == 7 and data["summary"]["skipped"] == len(GARBAGE)
    assert data["summary"]["conversations"] == 7


def test_a_folder_of_garbage_is_an_error(tmp_path):
    folder = tmp_path / "garbage"
    folder.mkdir()
    for name, data in GARBAGE.items():
        (folder / name).write_bytes(data)
    result = run(str(folder), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"analyze.py: none of the {len(GARBAGE)} log(s) in ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (folder / ANALYSIS_FILE).exists()


def test_progress_shows_on_a_terminal_only(long_run, tmp_path):
    # On a pseudo-terminal stderr shows "N/M files"; piped, stderr stays empty.
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: analyze.py with stderr (and stdout) on the terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, str(ROOT / "analyze.py"), str(long_run), "--json"])
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if b"0/1 files" in plain(seen):
            break
    os.kill(pid, signal.SIGINT)
    os.waitpid(pid, 0)
    os.close(fd)
    assert b"0/1 files" in plain(seen)
    # Piped, nothing but the JSON: no progress on stderr.
    small = tmp_path / "small"
    shutil.copytree(TESTDATA, small)
    result = run(str(small), "--json")
    assert result.returncode == 0 and result.stderr == ""
    json.loads(result.stdout)


def plain(data: bytes) -> bytes:
    """Terminal output without its escape sequences."""
    return re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", data)
