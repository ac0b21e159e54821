"""manifest.json: created, saved whole on every change, loaded again on --resume."""

from __future__ import annotations

import json
import threading

from broken_record import __version__
from broken_record.runs.manifest import TOOL, Manifest


def on_disk(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def role_info(url: str) -> dict:
    return {"engine": "llama-server", "url": url, "model": "smollm2-135m", "n_ctx": 4096,
            "template": "chatml", "sampler": {}, "seed": 1, "server_defaults": None, "warnings": [], "server_notes": []}


def test_a_new_folder_gets_a_new_manifest_saved_on_the_first_change(tmp_path):
    manifest = Manifest(tmp_path)
    assert not (tmp_path / "manifest.json").exists()
    assert manifest.data["tool"] == TOOL and manifest.data["tool_version"] == __version__
    assert manifest.conversations == [] and manifest.sessions == []
    session = manifest.start_session(jobs=2, target=3)
    assert on_disk(tmp_path) == {"tool": TOOL, "tool_version": __version__, "created": manifest.data["created"],
                                 "conversations": [], "sessions": [session]}
    assert session.keys() == {"started", "jobs", "target"} and session["jobs"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]      # no temporary file left


def test_a_session_in_the_order_parrot_sh_writes_it(tmp_path):
    manifest = Manifest(tmp_path)
    session = manifest.start_session(1, 2)
    done = manifest.add_conversation("parrot_1")
    assert on_disk(tmp_path)["conversations"] == [{"stem": "parrot_1", "started": done["started"],
                                                   "outcome": "running", "number": 0}]
    assert manifest.set_engines({"assistant": role_info("a"), "user": role_info("u")})
    assert not manifest.set_engines({"assistant": role_info("b"), "user": role_info("b")})
    manifest.conversation_ended(done, "complete", "total_tokens", 150, 9, "", {"assistant": ["a", "b"], "user": ["u"]})
    failed = manifest.add_conversation("parrot_2", lambda n: {"assistant": 40 + n, "user": None})
    manifest.conversation_failed(failed, "no user server answers")
    summary = {"complete": 1, "failed": 1, "interrupted": 0, "tokens": 150, "wall_seconds": 3.5}
    manifest.end_session(session, summary, complete_conversations=1)

    saved = on_disk(tmp_path)
    assert list(saved) == ["tool", "tool_version", "created", "conversations", "sessions", "engines",
                           "complete_conversations"]
    assert saved["engines"]["assistant"]["url"] == "a"          # the first conversation's
    first, second = saved["conversations"]
    assert list(first) == ["stem", "started", "outcome", "number", "ended", "end_reason", "total_tokens", "turns",
                           "detail", "servers"]
    assert first["outcome"] == "complete" and first["servers"] == {"assistant": ["a", "b"], "user": ["u"]}
    assert list(second) == ["stem", "started", "outcome", "number", "seeds", "ended", "detail"]
    assert second["number"] == 1 and second["seeds"] == {"assistant": 41, "user": None}
    assert second["outcome"] == "failed" and second["detail"] == "no user server answers"
    assert list(saved["sessions"][0]) == ["started", "jobs", "target", "ended", "summary"]
    assert saved["sessions"][0]["summary"] == summary and saved["complete_conversations"] == 1
    assert manifest.count("complete") == 1 and manifest.count("failed") == 1 and manifest.count("running") == 0
    # written as parrot.sh always wrote it
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == json.dumps(saved, indent=1,
                                                                                   ensure_ascii=False)


def test_resume_loads_what_was_saved_and_adds_a_session(tmp_path):
    first = Manifest(tmp_path)
    session = first.start_session(1, 1)
    entry = first.add_conversation("parrot_1")
    first.conversation_ended(entry, "interrupted", "interrupted", 40, 3, "stopped by the user", {})
    first.end_session(session, {"complete": 0, "failed": 0, "interrupted": 1, "tokens": 40,
                                "wall_seconds": 1.0}, 0)

    again = Manifest(tmp_path)
    assert again.data == first.data
    assert again.count("interrupted") == 1
    again.start_session(2, 4)
    saved = on_disk(tmp_path)
    assert saved["created"] == first.data["created"]
    assert [s["jobs"] for s in saved["sessions"]] == [1, 2]
    assert saved["conversations"][0]["stem"] == "parrot_1"


def test_an_unreadable_manifest_starts_over(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    manifest = Manifest(tmp_path)
    assert manifest.conversations == [] and manifest.data["tool"] == TOOL
    (tmp_path / "manifest.json").write_text('{"conversations": []}', encoding="utf-8")
    assert Manifest(tmp_path).sessions == []      # a manifest without sessions gets the list


def test_conversations_added_from_many_threads_are_all_saved(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.start_session(8, 80)
    start = threading.Barrier(8)

    def worker(k):
        start.wait()
        for i in range(10):
            entry = manifest.add_conversation(f"parrot_{k}_{i}")
            manifest.conversation_ended(entry, "complete", "total_tokens", 10, 2, "", {"assistant": "a"})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = on_disk(tmp_path)
    assert len(saved["conversations"]) == 80
    assert {c["outcome"] for c in saved["conversations"]} == {"complete"}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_resumed_session_settles_conversations_a_killed_session_left_running(tmp_path):
    # kill -9 of parrot.sh: its manifest still says "running" for the conversations it had
    manifest = Manifest(tmp_path)
    manifest.start_session(2, 3)
    killed = manifest.add_conversation("parrot_killed")
    (tmp_path / "parrot_killed.jsonl").write_text('{"type": "header"}\n{"type": "message"}\n')
    closed = manifest.add_conversation("parrot_closed")
    (tmp_path / "parrot_closed.jsonl").write_text(
        '{"type": "header"}\n' + json.dumps({"type": "footer", "ended": "2026-12-02T05:00:00.000+00:00",
                                             "end_reason": "total_tokens", "complete": True, "detail": "",
                                             "total_tokens": 150, "turns": 9, "malformed_stream_lines": 0}) + "\n")
    assert killed["outcome"] == closed["outcome"] == "running"

    again = Manifest(tmp_path)
    again.start_session(1, 3)
    first, second = on_disk(tmp_path)["conversations"]
    assert first["outcome"] == "interrupted" and "killed" in first["detail"]
    assert second["outcome"] == "complete" and second["total_tokens"] == 150 and second["turns"] == 9
    assert again.count("running") == 0
    # the new session counts only its own conversations
    assert again.count("interrupted", since=2) == 0 and again.count("interrupted") == 1


def test_seeds_are_kept_for_the_folder(tmp_path):
    manifest = Manifest(tmp_path)
    assert manifest.seeds({"assistant": 42, "user": None}, picked=7) == {"assistant": 42, "user": 7}
    manifest.save()
    again = Manifest(tmp_path)
    assert again.seeds({"assistant": None, "user": None}, picked=99) == {"assistant": 42, "user": 7}
    assert again.data["seeds_picked"] is True
