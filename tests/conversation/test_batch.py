"""parrot.sh: run folders, parallel conversations, resume, server pools."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from conftest import ROOT, kill_servers_midway, pids_of_llama_servers, sigint_default
from fakes import FakeServer
from rich.console import Console

from broken_record.conversation.batch import Batch
from broken_record.conversation.config import load_config
from broken_record.conversation.pool import ServerPool
from broken_record.conversation.roles import ServerURLs, embedded_servers
from broken_record.inference.embedded import EmbeddedServer
from broken_record.runs import schema

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


def fits(record: dict, typed_dict: type) -> None:
    """``record`` holds every required key of ``typed_dict`` and no key it does not declare."""
    required, optional = set(typed_dict.__required_keys__), set(typed_dict.__optional_keys__)
    assert required <= record.keys() <= required | optional, (typed_dict.__name__, sorted(record))


def all_keys(typed_dict: type) -> set[str]:
    return set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)


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
    assert manifest["engines"]["assistant"]["server_defaults"]
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


def test_a_parallel_conversation_keeps_to_its_own_lane_server(tmp_path):
    # -j 2 on the embedded default: one server per lane, each with the cores shared
    # out, slot 0 the assistant's and slot 1 the user's. No conversation's tokens are
    # ever batched with another's, so a seeded batch is reproducible.
    cfg = load_config(config(tmp_path))

    def one_conversation(urls, lane, name):
        folder = tmp_path / name
        folder.mkdir()
        batch = Batch(cfg, folder, 1, 2, Console(file=io.StringIO()), display_text=False)
        batch.lanes = [lane]  # as if the other lane were busy
        assert batch.generate(ServerPool.for_roles(urls, batch.warn)) == 0
        assert batch.lanes == [lane]
        used = {url: {s["id"] for s in requests.get(url + "/slots", timeout=10).json() if "id_task" in s}
                for url in urls.lanes["assistant"]}
        header = json.loads(next(folder.glob("*.jsonl")).read_text().splitlines()[0])
        return used, header["assistant"]["url"], header["user"]["url"]

    with embedded_servers(cfg, slots=2) as urls:
        lane0, lane1 = urls.lanes["assistant"]
        assert urls.lanes["user"] == [lane0, lane1] and lane0 != lane1
        assert urls.slots == {"assistant": {lane0: (0, 0), lane1: (0, 0)}, "user": {lane0: (1, 0), lane1: (1, 0)}}
        cores = len(os.sched_getaffinity(0))
        for srv in urls.servers.values():
            assert srv.command()[srv.command().index("-t") + 1] == str(max(1, cores // 2))
        assert one_conversation(urls, 1, "first") == ({lane0: set(), lane1: {0, 1}}, lane1, lane1)
        assert one_conversation(urls, 0, "second") == ({lane0: {0, 1}, lane1: {0, 1}}, lane0, lane0)


def fake_batch(tmp_path, fake_url, target, jobs, **overrides):
    cfg = load_config(config(tmp_path, **{"api_url": fake_url, "template": "chatml", "total_tokens": 30,
                                          "turn_max_tokens": 10, **overrides}))
    folder = tmp_path / "parrot_20261122_101500"
    folder.mkdir(exist_ok=True)
    out = io.StringIO()
    batch = Batch(cfg, folder, target, jobs, Console(file=out, width=400), display_text=False)
    return batch, folder, out


def test_a_session_on_a_fake_server_fills_the_manifest_as_the_schema_says(tmp_path):
    with FakeServer("openai", ["Juno says hello there\n", "Theo nods\n"]) as fake:
        batch, folder, out = fake_batch(tmp_path, fake.url, target=3, jobs=2)
        pools = ServerPool.for_roles(ServerURLs({"assistant": [fake.url], "user": [fake.url]}), batch.warn)
        assert batch.generate(pools) == 0
    assert batch.complete == 3 and sorted(batch.lanes) == [0, 1]
    manifest = json.loads((folder / "manifest.json").read_text())
    fits(manifest, schema.ManifestFile)
    assert list(manifest) == ["tool", "tool_version", "created", "conversations", "sessions", "seeds",
                              "seeds_picked", "engines", "complete_conversations"]
    # the config fixes no seed: one is picked for the folder, conversation n uses it + n
    assert manifest["seeds_picked"] is True and manifest["seeds"]["assistant"] == manifest["seeds"]["user"]
    for n, entry in enumerate(manifest["conversations"]):
        fits(entry, schema.ManifestConversation)
        assert entry.keys() == all_keys(schema.ManifestConversation)
        assert entry["outcome"] == "complete" and entry["servers"] == {"assistant": [fake.url], "user": [fake.url]}
        assert entry["number"] == n and entry["seeds"] == {r: (b + n) % 2**31 for r, b in manifest["seeds"].items()}
    # each conversation sent its own seed
    assert sorted({r["seed"] for r in fake.requests}) == sorted({e["seeds"]["assistant"] for e in manifest["conversations"]})
    for role in manifest["engines"].values():
        assert role.keys() == all_keys(schema.RoleInfo)
    (session,) = manifest["sessions"]
    assert session.keys() == all_keys(schema.Session) and session["summary"].keys() == all_keys(schema.SessionSummary)
    assert session["summary"]["complete"] == 3 and session["summary"]["tokens"] == batch.tokens > 0
    assert manifest["complete_conversations"] == 3
    assert sorted(c["stem"] for c in manifest["conversations"]) == sorted(footers(folder))
    lines = out.getvalue().splitlines()
    ended = [line for line in lines if line.startswith("[parrot.sh] conversation parrot_")]
    assert len(ended) == 3 and all(": complete (total_tokens, " in line and " · time left " in line for line in ended)
    # counted and printed together: the counts come in order even from parallel conversations
    assert [line.split(" · ")[1] for line in ended] == [f"{n} of 3 complete" for n in (1, 2, 3)]
    assert lines[-1].startswith("[parrot.sh] done: 3 completed, 0 failed, 0 interrupted · ")
    assert lines[-1].endswith(f" · folder {folder}")


def test_a_resumed_session_counts_the_folder_s_complete_conversations(tmp_path):
    with FakeServer("openai", ["Juno says hello there\n", "Theo nods\n"]) as fake:
        urls = ServerURLs({"assistant": [fake.url], "user": [fake.url]})
        batch, folder, _ = fake_batch(tmp_path, fake.url, target=1, jobs=1)
        assert batch.generate(ServerPool.for_roles(urls, batch.warn)) == 0
        again, _, out = fake_batch(tmp_path, fake.url, target=2, jobs=1)
        assert again.complete == 1
        assert again.generate(ServerPool.for_roles(urls, again.warn)) == 0
    assert out.getvalue().splitlines()[0] == "[parrot.sh] conversation 2 of 2"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["target"] for s in manifest["sessions"]] == [1, 2]
    assert len(manifest["conversations"]) == 2 and manifest["complete_conversations"] == 2


def test_no_server_answering_fails_the_conversations_and_the_session(tmp_path):
    batch, folder, out = fake_batch(tmp_path, "http://127.0.0.1:9", target=2, jobs=1)
    pools = ServerPool.for_roles(ServerURLs({"assistant": ["http://127.0.0.1:9"], "user": ["http://127.0.0.1:9"]}),
                                 batch.warn)
    assert batch.generate(pools) == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    (entry,) = manifest["conversations"]
    assert entry["outcome"] == "failed" and entry["detail"] == "no assistant server answers"
    assert list(entry) == ["stem", "started", "outcome", "number", "seeds", "ended", "detail"]
    assert "assistant server http://127.0.0.1:9 taken out of rotation" in out.getvalue()
    assert "[parrot.sh] done: 0 completed, 1 failed, 0 interrupted" in out.getvalue()


def test_ctrl_c_closes_the_conversation_and_the_session(tmp_path):
    with FakeServer("openai", ["Juno says hello there\n", "Theo nods\n"]) as fake:
        batch, folder, out = fake_batch(tmp_path, fake.url, target=2, jobs=1, total_tokens=10**7)
        pools = ServerPool.for_roles(ServerURLs({"assistant": [fake.url], "user": [fake.url]}), batch.warn)
        stop = threading.Event()

        def ctrl_c_mid_conversation():
            # As soon as the first conversation has written a few turns: a fixed delay let a fast
            # machine fill the fake's context and start a second conversation first.
            while not stop.is_set():
                if any(len(p.read_text().splitlines()) >= 6 for p in folder.glob("*.jsonl")):
                    signal.raise_signal(signal.SIGINT)
                    return
                stop.wait(0.002)

        watcher = threading.Thread(target=ctrl_c_mid_conversation)
        watcher.start()
        try:
            assert batch.generate(pools) == 130
        finally:
            stop.set()
            watcher.join()
    manifest = json.loads((folder / "manifest.json").read_text())
    (entry,) = manifest["conversations"]
    assert entry["outcome"] == "interrupted" and entry["end_reason"] == "interrupted"
    (session,) = manifest["sessions"]
    assert session["summary"] == {"complete": 0, "failed": 0, "interrupted": 1, "tokens": batch.tokens,
                                  "wall_seconds": session["summary"]["wall_seconds"]}
    assert "ended" in session and manifest["complete_conversations"] == 0
    (footer,) = footers(folder).values()
    assert footer["end_reason"] == "interrupted" and footer["complete"] is False
    assert "[parrot.sh] done: 0 completed, 0 failed, 1 interrupted" in out.getvalue()


def test_help_prints_the_usage_once(tmp_path):
    r = subprocess.run([PARROT_SH, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: ./parrot.sh <number_of_iterations>") and "usage: usage:" not in r.stdout


@pytest.mark.parametrize("out, message", [
    ("a_file.txt", "--out a_file.txt: is a file, not a folder"),
    ("/proc/nope", "--out /proc/nope: cannot make the folder"),
])
def test_a_bad_out_is_one_line_before_any_server_starts(tmp_path, out, message):
    (tmp_path / "a_file.txt").write_text("x")
    before = pids_of_llama_servers()
    r = subprocess.run([PARROT_SH, "2", str(config(tmp_path)), "--out", out], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert pids_of_llama_servers() <= before


def test_an_unreachable_server_is_exit_2_and_leaves_no_run_folder(tmp_path):
    r = subprocess.run([PARROT_SH, "2", str(config(tmp_path, api_url="http://127.0.0.1:9"))], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("parrot.sh: assistant server http://127.0.0.1:9 is unreachable: start it, fix "
                                "api_url/user_api_url, or remove the key to use the embedded llama-server")
    assert not any(p.name.startswith("parrot_") for p in tmp_path.iterdir())


def test_a_killed_embedded_server_is_started_again_and_every_conversation_completes(tmp_path):
    before = pids_of_llama_servers()
    cfg = config(tmp_path, total_tokens=300, retry_backoff=0.1)
    proc = subprocess.Popen([PARROT_SH, "3", str(cfg), "-j", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    # one server per lane
    _, err = kill_servers_midway(proc, lambda: list(tmp_path.glob("parrot_*/parrot_*.jsonl")), before,
                                 servers=2, logs=2)
    assert proc.returncode == 0, err
    assert "llama-server was killed by signal 9 (SIGKILL)" in err, err
    assert "started it again on http://127.0.0.1:" in err and "carries on from its record of the turns" in err
    assert "3 completed, 0 failed, 0 interrupted" in err
    folder = run_folder(tmp_path)
    assert [c["outcome"] for c in json.loads((folder / "manifest.json").read_text())["conversations"]] == \
        ["complete"] * 3
    records = [json.loads(line) for p in folder.glob("*.jsonl") for line in p.open()]
    assert any(r.get("attempts", 1) > 1 for r in records), "a turn was cut by the kill and done again"
    assert pids_of_llama_servers() <= before


def test_a_server_that_comes_back_is_put_back_into_rotation(tmp_path):
    from broken_record.inference import connect
    warnings = []
    with EmbeddedServer(ctx=256, name="pool-back") as srv:
        url, port = srv.url, srv.port
        pool = ServerPool("assistant", [url, "http://127.0.0.1:9"], warnings.append)
        pool.check(connect)
        assert pool.healthy() == [url] and "http://127.0.0.1:9 taken out of rotation" in warnings[-1]
    pool.mark_down(url, "stopped answering")
    assert pool.pick() is None
    pool.REPROBE_SECONDS = 0.0
    with EmbeddedServer(ctx=256, name="pool-back", port=port):
        assert pool.pick() == url
    assert f"assistant server {url} answers again: back in rotation" in warnings


def _texts(folder):
    """Each conversation's generated turns, in the folder's order (its manifest numbers)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out = []
    for entry in sorted(manifest["conversations"], key=lambda c: c["number"]):
        lines = [json.loads(line) for line in (folder / f"{entry['stem']}.jsonl").open()]
        out.append([m["text"] for m in lines if m.get("source") == "model"])
    return out, manifest


def test_a_seeded_parallel_batch_differs_within_and_repeats_exactly(tmp_path):
    cfg = config(tmp_path, total_tokens=200, seed=42)
    runs = []
    for name in ("first", "again"):
        r = subprocess.run([PARROT_SH, "3", str(cfg), "-j", "2", "--out", name], cwd=tmp_path,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        runs.append(_texts(run_folder(tmp_path / name)))
    (first, manifest), (again, _) = runs
    assert [c["seeds"] for c in manifest["conversations"]] == [{"assistant": 42 + n, "user": 42 + n} for n in range(3)]
    assert manifest["seeds"] == {"assistant": 42, "user": 42} and manifest["seeds_picked"] is False
    assert len({tuple(turns) for turns in first}) == 3, "each conversation of the batch has its own seed"
    assert first == again, "the same config and seed give the same batch, however it was scheduled"
    # a conversation of the batch is the one parrot.py gives alone with its seed and the
    # lane servers' threads (llama.cpp's sums come out otherwise with other thread counts)
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    alone_cfg = config(tmp_path, total_tokens=200, seed=43, threads=threads)
    alone = subprocess.run([sys.executable, str(ROOT / "parrot.py"), str(alone_cfg),
                            "--out", "alone", "--name", "c"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr
    lines = [json.loads(line) for line in (tmp_path / "alone" / "c.jsonl").open()]
    assert [m["text"] for m in lines if m.get("source") == "model"] == first[1]


def test_the_bar_shows_time_left_from_the_first_turn():
    from broken_record.conversation.progress import BatchProgress
    progress = BatchProgress(Console(file=io.StringIO(), force_terminal=True), target=2, conversation_tokens=1000,
                             started=time.monotonic() - 10)
    progress.start(bar=True)
    try:
        progress.update(complete=0, tokens=100, running=100)     # 10 tok/s, 1900 tokens to go
        assert progress.bar is not None
        assert progress.bar.tasks[0].fields["left"] == "time left 3m10s"
    finally:
        progress.stop()
