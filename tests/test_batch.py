"""parrot.sh: run folders, parallel conversations, resume, server pools."""

import io
import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from conftest import ROOT, sigint_default
from rich.console import Console
from test_server import pids_of_llama_servers

from broken_record.conversation.batch import Batch, ServerPool
from broken_record.conversation.config import load_config
from broken_record.conversation.roles import embedded_servers
from broken_record.inference.embedded import EmbeddedServer

PARROT_SH = str(ROOT / "parrot.sh")


def config(tmp_path, **overrides):
    raw = json.loads((ROOT / "config.json").read_text())
    raw.update({"total_tokens": 150, "turn_max_tokens": 40})
    raw.update(overrides)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(raw))
    return path


def run_folder(tmp_path) -> Path:
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("parrot_")]
    return folder


def footers(folder):
    out = {}
    for p in folder.glob("parrot_*.jsonl"):
        last = json.loads(p.read_text().strip().splitlines()[-1])
        out[p.stem] = last if last["type"] == "footer" else None
    return out


def test_three_conversations_on_the_embedded_default(tmp_path):
    before = pids_of_llama_servers()
    r = subprocess.run([PARROT_SH, "3", str(config(tmp_path))], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    folder = run_folder(tmp_path)
    assert len(list(folder.glob("parrot_*.log"))) == 3
    assert all(f and f["complete"] for f in footers(folder).values()) and len(footers(folder)) == 3
    assert json.loads((folder / "config.json").read_text())["total_tokens"] == 150
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [c["outcome"] for c in manifest["conversations"]] == ["complete"] * 3
    assert manifest["engines"]["assistant"]["engine"] == "llama-server"
    assert manifest["engines"]["assistant"]["server_settings"]
    assert "3 completed, 0 failed, 0 interrupted" in r.stderr
    # the conversations were streamed to the terminal, as the original did with tee
    assert r.stdout.count("--- DONE ---") == 3
    assert pids_of_llama_servers() <= before


def test_parallel_conversations_overlap(tmp_path):
    r = subprocess.run([PARROT_SH, "2", str(config(tmp_path)), "-j", "2"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    folder = run_folder(tmp_path)
    convs = json.loads((folder / "manifest.json").read_text())["conversations"]
    assert len(convs) == 2 and all(c["outcome"] == "complete" for c in convs)
    t = [(datetime.fromisoformat(c["started"]), datetime.fromisoformat(c["ended"])) for c in convs]
    assert max(s for s, _ in t) < min(e for _, e in t)       # both were running at once
    servers = json.loads((folder / "manifest.json").read_text())["engines"]["assistant"]
    assert servers["n_ctx"] >= 150                            # per-slot context holds a conversation


def test_interrupt_then_resume(tmp_path):
    cfg = config(tmp_path, total_tokens=600)
    proc = subprocess.Popen([PARROT_SH, "3", str(cfg)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.time() + 600
    while time.time() < deadline:
        folders = [p for p in tmp_path.iterdir() if p.name.startswith("parrot_")]
        if folders and sum(1 for f in footers(folders[0]).values() if f and f["complete"]) >= 1 \
                and len(footers(folders[0])) >= 2:
            break
        time.sleep(0.3)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    folder = run_folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    outcomes = [c["outcome"] for c in manifest["conversations"]]
    assert "interrupted" in outcomes and outcomes.count("complete") >= 1
    interrupted = [f for f in footers(folder).values() if f and f["end_reason"] == "interrupted"]
    assert interrupted, "the running conversation's log says interrupted"

    r = subprocess.run([PARROT_SH, "3", "--resume", str(folder)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    complete = [f for f in footers(folder).values() if f and f["complete"]]
    assert len(complete) == 3
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["sessions"]) == 2 and manifest["complete_conversations"] == 3


def test_a_dead_server_leaves_the_rotation_and_the_batch_completes(tmp_path):
    a = EmbeddedServer(ctx=2048, name="pool-a").__enter__()
    b = EmbeddedServer(ctx=2048, name="pool-b").__enter__()
    try:
        cfg = config(tmp_path, api_url=[a.url, b.url], user_api_url=[b.url], total_tokens=300,
                     retry_backoff=0.05)
        proc = subprocess.Popen([PARROT_SH, "3", str(cfg)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            folders = [p for p in tmp_path.iterdir() if p.name.startswith("parrot_")]
            if folders and any(footers(folders[0]).values()):
                break
            time.sleep(0.2)
        a.stop()                               # server a dies mid-batch
        _, err = proc.communicate(timeout=900)
    finally:
        a.stop()
        b.stop()
    assert proc.returncode == 0, err
    assert f"assistant server {a.url} taken out of rotation" in err
    folder = run_folder(tmp_path)
    assert sum(1 for f in footers(folder).values() if f and f["complete"]) == 3


@pytest.mark.parametrize("args, message", [
    ([], "usage: ./parrot.sh <number_of_iterations> <path/config.json>"),
    (["three", "c.json"], "invalid int value"),
    (["0", "c.json"], "number_of_iterations must be at least 1"),
    (["2"], "a config file is needed"),
])
def test_bad_arguments_print_usage(tmp_path, args, message):
    r = subprocess.run([PARROT_SH] + args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr and "usage:" in r.stderr


def test_missing_config_file_is_one_line(tmp_path):
    r = subprocess.run([PARROT_SH, "2", "nope.json"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "parrot.sh: nope.json: file not found (give the path of a config JSON file)"
    assert not any(p.name.startswith("parrot_") for p in tmp_path.iterdir())


def test_a_parallel_conversation_keeps_to_its_own_slots(tmp_path):
    # -j 2 on the embedded default: one server with 4 slots. The conversation in
    # lane j sends the assistant's requests to slot 2j and the user's to 2j + 1,
    # so parallel conversations never evict each other's cached prompts.
    cfg = load_config(config(tmp_path))

    def one_conversation(urls, lane, name):
        folder = tmp_path / name
        folder.mkdir()
        batch = Batch(cfg, folder, 1, 2, Console(file=io.StringIO()), display_text=False)
        batch.lanes = [lane]  # as if the other lane were busy
        assert batch.run(ServerPool.for_roles(urls, batch.warn)) == 0
        assert batch.lanes == [lane]
        used = {s["id"] for s in requests.get(urls["assistant"][0] + "/slots", timeout=10).json() if "id_task" in s}
        header = json.loads(next(folder.glob("*.jsonl")).read_text().splitlines()[0])
        return used, header["assistant"]["sampler"].get("id_slot"), header["user"]["sampler"].get("id_slot")

    with embedded_servers(cfg, slots=2) as urls:
        assert urls.slots == {"assistant": {urls["assistant"][0]: (0, 2)}, "user": {urls["user"][0]: (1, 2)}}
        # Left to itself the server would give the second conversation the
        # slots holding the first one's prompts (the same system prompt).
        assert one_conversation(urls, 1, "first") == ({2, 3}, 2, 3)
        assert one_conversation(urls, 0, "second") == ({0, 1, 2, 3}, 0, 1)
