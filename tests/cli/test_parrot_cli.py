"""parrot.py as a user runs it: the embedded default, pipes, signals, bad servers."""

import json
import os
import signal
import subprocess
import sys

from conftest import ROOT, kill_servers_midway, pids_of_llama_servers, sigint_default, wait_for_turns

PARROT = [sys.executable, str(ROOT / "parrot.py")]


def write_config(tmp_path, **overrides):
    raw = json.loads((ROOT / "config.json").read_text())
    raw.update(overrides)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def messages(folder):
    (jsonl,) = folder.glob("*.jsonl")
    return [json.loads(line) for line in jsonl.open()]


def test_embedded_default_with_a_fixed_seed_is_reproducible(tmp_path):
    """Two conversations on fresh embedded servers with the same seed: the same one.
    Also: stdout is the original text layout, identical to the .log file."""
    cfg = write_config(tmp_path, total_tokens=160, turn_max_tokens=40, seed=7)
    before = pids_of_llama_servers()
    texts = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        r = subprocess.run(PARROT + [str(cfg), "--out", str(out), "--name", "conv"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert r.stdout == (out / "conv.log").read_text()
        texts.append([m["text"] for m in messages(out) if m["type"] == "message"])
        footer = messages(out)[-1]
        assert footer["complete"] and footer["total_tokens"] >= 160
    assert texts[0] == texts[1] and len(texts[0]) >= 5
    assert pids_of_llama_servers() <= before


def test_unreachable_server_is_one_line_exit_2(tmp_path):
    cfg = write_config(tmp_path, api_url="http://127.0.0.1:9")
    r = subprocess.run(PARROT + [str(cfg), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "parrot.py: assistant server http://127.0.0.1:9 is unreachable: start it, fix "
        "api_url/user_api_url, or remove the key to use the embedded llama-server"]


def test_sigint_keeps_the_turns_and_marks_interrupted(tmp_path, llama_server):
    cfg = write_config(tmp_path, api_url=llama_server.url, total_tokens=4000, turn_max_tokens=64)
    out = tmp_path / "out"
    proc = subprocess.Popen(PARROT + [str(cfg), "--out", str(out), "--name", "c"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    wait_for_turns(lambda: [out / "c.jsonl"], 3, 300)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    records = messages(out)
    assert records[-1]["type"] == "footer" and records[-1]["end_reason"] == "interrupted"
    assert sum(1 for r in records if r.get("source") == "model") >= 3
    log = (out / "c.log").read_text()
    assert "--- DONE ---" in log and log.rstrip().endswith("turns ---")


def test_human_plays_the_user(tmp_path, llama_server):
    cfg = write_config(tmp_path, api_url=llama_server.url, total_tokens=200, turn_max_tokens=30)
    out = tmp_path / "h"
    # first user turn typed, second left empty (the user model speaks), then typed again
    lines = "I brought you a tiny radio.\n\nIt plays only love songs.\n" + "\n" * 20
    r = subprocess.run(PARROT + [str(cfg), "--out", str(out), "--name", "h", "--human"],
                       input=lines, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TERM": "dumb"})
    assert r.returncode == 0, r.stderr
    users = [m for m in messages(out) if m.get("role") == "user" and m["source"] != "config"]
    assert users[0]["source"] == "human" and users[0]["text"] == "Theo: I brought you a tiny radio."
    assert users[1]["source"] == "model"
    assert users[2]["source"] == "human" and users[2]["text"] == "Theo: It plays only love songs."
    # the prompt is on stderr; stdout is the conversation in the log's layout, typed turns included
    assert "[you] Theo:" in r.stderr and "[you]" not in r.stdout
    # the prompt ends with a space, and the line read (not echoed from a pipe) ends the prompt's line
    assert "[you] Theo: I brought you a tiny radio.\n" in r.stderr and "[you] Theo: \n" in r.stderr
    assert r.stdout == (out / "h.log").read_text()


def test_a_teed_stdout_log_analyses_like_the_jsonl(tmp_path, llama_server):
    """`python parrot.py config.json | tee x.log` gives a log analyze.py reads with
    the same classic figures as the structured log."""
    from broken_record.analysis.folder import analyze_file
    cfg = write_config(tmp_path, api_url=llama_server.url, total_tokens=300, turn_max_tokens=48)
    out = tmp_path / "run"
    r = subprocess.run(PARROT + [str(cfg), "--out", str(out), "--name", "conv"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    teed = tmp_path / "x.log"
    teed.write_text(r.stdout)
    from_text, err1 = analyze_file(str(teed))
    from_jsonl, err2 = analyze_file(str(out / "conv.jsonl"))
    assert err1 is None and err2 is None
    for key in ("character_count", "loop_score", "loop_density", "response_lengths", "top_segments"):
        assert from_text[key] == from_jsonl[key], key
    assert from_text["assistant_turns"] == from_jsonl["assistant_turns"] >= 3


def test_parrot_llama_server_env_selects_the_binary(tmp_path, monkeypatch):
    from broken_record.inference.embedded import EmbeddedServer, llama_server_binary
    real = llama_server_binary()
    monkeypatch.setenv("PARROT_LLAMA_SERVER", real)
    with EmbeddedServer(ctx=256, name="env") as srv:
        assert srv.command()[0] == real
    monkeypatch.setenv("PARROT_LLAMA_SERVER", str(tmp_path / "missing"))
    import pytest

    from broken_record.errors import ServerError
    with pytest.raises(ServerError, match=r"PARROT_LLAMA_SERVER=.*missing is not an executable"):
        llama_server_binary()


def test_a_capped_context_is_said_and_logged(tmp_path):
    # `context` above what the bundled model was trained on: a warning at start,
    # and the .jsonl header keeps it.
    cfg = write_config(tmp_path, total_tokens=60, turn_max_tokens=20, seed=3, context=9000)
    r = subprocess.run(PARROT + [str(cfg), "--out", str(tmp_path), "--name", "conv"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "warning: assistant llama-server: the model was trained on 8192 tokens" in r.stderr
    header = messages(tmp_path)[0]
    assert header["assistant"]["n_ctx"] == 8192
    assert header["assistant"]["server_notes"][0].startswith("assistant llama-server: the model was trained on 8192")
    assert header["user"]["server_notes"] == []


def _bad_out_cases(tmp_path):
    afile = tmp_path / "a_file.txt"
    afile.write_text("x")
    return [(["--out", str(afile)], f"--out {afile}: is a file, not a folder"),
            (["--out", "/proc/nope"], "--out /proc/nope: cannot make the folder"),
            (["--out", str(afile / "sub")], f"--out {afile / 'sub'}: cannot make the folder"),
            (["--name", "sub/dir/x"], "--name 'sub/dir/x': must be a plain file name"),
            (["--name", ".."], "--name '..': must be a plain file name")]


def test_a_bad_out_or_name_is_one_line_before_any_server_starts(tmp_path):
    # the config names a server that is not there: reaching it would be a different error
    cfg = write_config(tmp_path, api_url="http://127.0.0.1:9")
    for args, message in _bad_out_cases(tmp_path):
        r = subprocess.run(PARROT + [str(cfg), *args], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (args, r.stderr)


def test_a_reused_name_never_overwrites_a_log(tmp_path):
    cfg = write_config(tmp_path, api_url="http://127.0.0.1:9")
    out = tmp_path / "out"
    out.mkdir()
    for suffix in (".log", ".jsonl"):
        (out / f"conv{suffix}").write_text("earlier conversation\n")
        r = subprocess.run(PARROT + [str(cfg), "--out", str(out), "--name", "conv"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2
        assert r.stderr.strip() == (f"parrot.py: --name conv: {out / ('conv' + suffix)} already exists: "
                                    f"choose another name (logs are never overwritten)")
        assert (out / f"conv{suffix}").read_text() == "earlier conversation\n"
        (out / f"conv{suffix}").unlink()


def test_the_log_writer_refuses_an_existing_file(tmp_path):
    import pytest

    from broken_record.errors import ParrotError
    from broken_record.runs.writer import ConversationLog
    (tmp_path / "c.jsonl").write_text("keep me\n")
    with pytest.raises(ParrotError, match=r"c\.jsonl already exists"):
        ConversationLog(tmp_path, "c")
    assert (tmp_path / "c.jsonl").read_text() == "keep me\n" and not (tmp_path / "c.log").exists()


def test_killed_embedded_servers_are_started_again_and_the_conversation_completes(tmp_path):
    cfg = write_config(tmp_path, total_tokens=300, turn_max_tokens=40, retry_backoff=0.1)
    out = tmp_path / "k"
    before = pids_of_llama_servers()
    proc = subprocess.Popen(PARROT + [str(cfg), "--out", str(out), "--name", "k"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # the assistant's server and the user's
    stdout, stderr = kill_servers_midway(proc, lambda: [out / "k.jsonl"], before, servers=2)
    assert proc.returncode == 0, stderr
    assert "llama-server was killed by signal 9 (SIGKILL)" in stderr and "started it again on" in stderr
    assert "unreachable" not in stderr
    footer = messages(out)[-1]
    assert footer["type"] == "footer" and footer["complete"] and footer["end_reason"] == "total_tokens"
    # what was cut is not in the log, and stdout (a pipe) is still the .log
    assert stdout == (out / "k.log").read_text()
    assert pids_of_llama_servers() <= before


def test_a_turn_that_cannot_fit_the_context_is_a_config_error_before_any_log(tmp_path, small_config):
    # the session server has 4096 tokens per slot
    cfg = small_config(turn_max_tokens=100000, total_tokens=200000)
    out = tmp_path / "out"
    r = subprocess.run(PARROT + [str(cfg), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    line = next(x for x in r.stderr.splitlines() if "turn_max_tokens" in x)
    assert line.startswith(f"parrot.py: {cfg}: turn_max_tokens: 100000 cannot fit: the assistant's first prompt is ")
    assert "has a context of 4096; use at most " in line
    assert not list(out.glob("*.jsonl")) and not list(out.glob("*.log"))
    r = subprocess.run([str(ROOT / "parrot.sh"), "2", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "turn_max_tokens: 100000 cannot fit" in r.stderr, r.stderr
    assert not any(p.name.startswith("parrot_") for p in tmp_path.iterdir())


def test_a_template_that_fails_to_render_leaves_no_logs(tmp_path, small_config):
    template = tmp_path / "bad.jinja"
    template.write_text("{% for m in messages %}{{ raise_exception('roles must alternate') }}{% endfor %}")
    cfg = small_config(template=str(template), user_template="chatml")
    out = tmp_path / "out"
    r = subprocess.run(PARROT + [str(cfg), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"chat template {template} failed to render: roles must alternate" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(out.glob("*.jsonl")) and not list(out.glob("*.log"))


def test_quiet_hides_the_text_but_not_the_warnings_or_why_it_failed(tmp_path):
    from broken_record.inference.embedded import EmbeddedServer
    out = tmp_path / "q"
    with EmbeddedServer(ctx=2048, name="quiet") as srv:     # the user's own server, from parrot's side
        raw = json.loads((ROOT / "config.json").read_text())
        raw["sampler"]["tfs"] = 0.95                         # llama-server has no tail-free sampling
        cfg = write_config(tmp_path, api_url=srv.url, total_tokens=4000, turn_max_tokens=40, retry_backoff=0.05,
                           sampler=raw["sampler"])
        proc = subprocess.Popen(PARROT + [str(cfg), "--out", str(out), "--name", "q", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_turns(lambda: [out / "q.jsonl"], 2, 300)
    # the server is gone mid-conversation
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert stdout == ""
    assert f"engine llama-server at {srv.url} cannot honour tfs: not sent" in stderr
    assert "turn failed" in stderr and "retry 1 of 3" in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ")
    assert "turns generated" in stderr.strip().splitlines()[-1]
    records = messages(out)
    assert records[-1]["type"] == "footer" and records[-1]["end_reason"] == "error"
    header = records[0]
    # the seed parrot picked is recorded, and is what the server applied
    applied = next(r for r in records if r.get("applied_settings") and r["role"] == "assistant")
    assert isinstance(header["assistant"]["seed"], int) and 0 <= header["assistant"]["seed"] < 2 ** 31
    assert applied["applied_settings"]["seed"] == header["assistant"]["seed"]
    assert "assistant: llama-server " + srv.url in stderr and f"seed={header['assistant']['seed']}" in stderr
