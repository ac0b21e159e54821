"""The turn loop against the real llama-server, and its fault handling."""

import json
import re
import threading

from fakes import FakeServer

from broken_record.conversation.config import load_config
from broken_record.conversation.dialogue import Dialogue
from broken_record.conversation.roles import open_role
from broken_record.inference.embedded import EmbeddedServer
from broken_record.runs.writer import ConversationLog


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def talk(config_path, out, record_prompts=None, **kw):
    cfg = load_config(config_path)
    a = open_role(cfg.assistant, cfg.assistant.api_urls[0], cfg)
    u = open_role(cfg.user, cfg.user.api_urls[0], cfg)
    if record_prompts is not None:
        for role in (a, u):
            original = role.engine.stream

            def recording(prompt, *args, _orig=original, _name=role.name, **kwargs):
                record_prompts.append((_name, prompt))
                return _orig(prompt, *args, **kwargs)
            role.engine.stream = recording
    log = ConversationLog(out)
    outcome = Dialogue(cfg, a, u, log, **kw).talk()
    return cfg, outcome, log


def test_short_conversation_writes_both_logs_with_server_counts(small_config, tmp_path):
    cfg, outcome, log = talk(small_config(total_tokens=300), tmp_path)
    assert outcome.end_reason == "total_tokens" and outcome.complete
    records = read_jsonl(log.jsonl_path)
    header, footer = records[0], records[-1]
    msgs = [r for r in records if r["type"] == "message"]
    assert header["type"] == "header" and footer["type"] == "footer"
    assert header["assistant"]["engine"] == "llama-server"
    assert footer["complete"] is True and footer["end_reason"] == "total_tokens"
    generated = [m for m in msgs if m["source"] == "model"]
    assert len(generated) >= 4
    # totals are the sum of the server's per-turn counts
    assert footer["total_tokens"] == sum(m["tokens"] for m in generated) >= 300
    running = 0
    for m in generated:
        assert m["tokens_before"] == running
        running += m["tokens"]
        assert m["stop"] in ("word", "limit", "eos")
        assert m["tokens"] >= 1 and m["prompt_tokens"] >= 1
        assert "\n" not in m["text"]
    roles = [m["role"] for m in msgs]
    assert roles[:3] == ["system", "assistant", "user"]
    assert all(a != b for a, b in zip(roles[1:], roles[2:]))     # strict alternation
    assert generated[0]["text"].startswith("Juno:") and generated[1]["text"].startswith("Theo:")
    assert "applied_settings" in generated[0] and "applied_settings" in generated[1]
    # the text log: original layout, same messages and token markers
    text = log.log_path.read_text()
    assert "--- DONE ---\nFull Config:\n" in text
    sections = re.findall(r"^=== (\w+) @ (\d+) ===$", text, re.M)
    assert [(m["role"], str(m["tokens_before"])) for m in msgs] == sections
    assert text.rstrip().endswith(f"--- {footer['total_tokens']} tokens, {len(msgs)} turns ---")


def test_user_model_sees_last_user_memory_messages_with_roles_swapped(small_config, tmp_path):
    prompts = []
    cfg, _, log = talk(small_config(total_tokens=250, user_memory=2, turn_max_tokens=30),
                       tmp_path, record_prompts=prompts)
    msgs = [r for r in read_jsonl(log.jsonl_path) if r["type"] == "message"]
    user_turns = [m for m in msgs if m["role"] == "user" and m["source"] == "model"]
    user_prompts = [p for name, p in prompts if name == "user"]
    assert len(user_prompts) == len(user_turns) >= 2
    for turn, prompt in zip(user_turns, user_prompts):
        before = [m for m in msgs[:turn["index"]] if m["role"] != "system"]
        theo_line, juno_line = before[-2]["text"], before[-1]["text"]
        assert theo_line.startswith("Theo:") and juno_line.startswith("Juno:")
        # user_system, then exactly the last 2 messages, roles swapped, then user_prefix
        assert prompt == (f"<|im_start|>system\n{cfg.user_system}<|im_end|>\n"
                          f"<|im_start|>assistant\n{theo_line}<|im_end|>\n"
                          f"<|im_start|>user\n{juno_line}<|im_end|>\n"
                          f"<|im_start|>assistant\nTheo:")
    # the assistant sees everything: its last prompt holds every earlier message
    last_assistant = [p for name, p in prompts if name == "assistant"][-1]
    n_before = max(m["index"] for m in msgs if m["role"] == "assistant")
    assert last_assistant.count("<|im_start|>") == n_before + 1
    assert last_assistant.endswith("<|im_start|>assistant\nJuno:")


def test_context_full_stops_before_overflowing(tmp_path, small_config):
    with EmbeddedServer(ctx=512, name="small") as srv:
        cfg, outcome, log = talk(
            small_config(api_url=srv.url, total_tokens=5000, turn_max_tokens=64), tmp_path)
    assert outcome.end_reason == "context_full"
    assert "would overflow its context of 512" in outcome.detail
    footer = read_jsonl(log.jsonl_path)[-1]
    assert footer["end_reason"] == "context_full" and footer["complete"] is True


def test_http_400_context_overflow_ends_with_that_reason(tmp_path, small_config):
    with FakeServer("openai", ["hi\n"], overflow=True) as fake:
        cfg, outcome, log = talk(small_config(api_url=fake.url, template="chatml"), tmp_path)
    assert outcome.end_reason == "context_full"
    assert "5001 tokens exceeds the context of 4096" in outcome.detail


def test_dropped_connection_is_retried(tmp_path, small_config):
    with FakeServer("openai", ["Juno says hello there\n", "Theo nods shyly\n"],
                    die_after={0: 1, 3: 2}) as fake:
        cfg, outcome, log = talk(
            small_config(api_url=fake.url, template="chatml", total_tokens=30, turn_max_tokens=10, retry_backoff=0.01),
            tmp_path)
    msgs = [r for r in read_jsonl(log.jsonl_path) if r["type"] == "message" and r["source"] == "model"]
    assert outcome.complete
    assert msgs[0]["attempts"] == 2


def test_retries_exhausted_end_cleanly(tmp_path, small_config):
    with FakeServer("koboldcpp", ["a b c\n"], die_after={i: 1 for i in range(10)}) as fake:
        cfg, outcome, log = talk(
            small_config(api_url=fake.url, template="chatml", retries=2, retry_backoff=0.01), tmp_path)
        assert fake.generations == 3       # the first try and 2 retries
    assert outcome.end_reason == "error"
    footer = read_jsonl(log.jsonl_path)[-1]
    assert footer["type"] == "footer" and footer["end_reason"] == "error"
    assert "--- DONE ---" in log.log_path.read_text()


def test_malformed_lines_are_counted_in_the_footer(tmp_path, small_config):
    with FakeServer("koboldcpp", ["Juno smiles\n", "Theo waves\n"], malformed=True) as fake:
        cfg, outcome, log = talk(
            small_config(api_url=fake.url, template="chatml", total_tokens=12, turn_max_tokens=10), tmp_path)
    footer = read_jsonl(log.jsonl_path)[-1]
    assert outcome.complete
    assert footer["malformed_stream_lines"] == fake.generations >= 3


def test_killing_the_real_server_mid_conversation(tmp_path, small_config):
    srv = EmbeddedServer(ctx=2048, name="doomed").__enter__()
    try:
        path = small_config(api_url=srv.url, total_tokens=2000, retries=1, retry_backoff=0.05)

        def on_turn(record):
            if record.get("source") == "model" and record["index"] == 4:
                srv.proc.kill()
        cfg, outcome, log = talk(path, tmp_path, on_turn=on_turn)
    finally:
        srv.stop()
    assert outcome.end_reason == "error"
    assert "unreachable" in outcome.detail
    records = read_jsonl(log.jsonl_path)
    assert records[-1]["type"] == "footer" and records[-1]["complete"] is False
    kept = [r for r in records if r["type"] == "message" and r["source"] == "model"]
    assert len(kept) == 2                  # everything generated before the kill is kept


def test_cancel_event_interrupts(tmp_path, small_config):
    stop = threading.Event()

    def on_turn(record):
        if record.get("source") == "model":
            stop.set()
    cfg, outcome, log = talk(small_config(total_tokens=1000), tmp_path, on_turn=on_turn,
                             cancel=stop)
    assert outcome.end_reason == "interrupted"
    footer = read_jsonl(log.jsonl_path)[-1]
    assert footer["end_reason"] == "interrupted" and footer["complete"] is False


def test_a_failed_turn_leaves_the_stdout_layout_readable(tmp_path, small_config, monkeypatch):
    """The partial line of a failed turn is dropped from a piped stdout, so "--- DONE ---"
    starts a line and stdout stays the .log: here the server reports an error in the
    middle of the stream (not retried)."""
    import io
    import json as _json

    import fakes

    from broken_record.conversation.display import Display

    def failing_events(fake, pieces, finish, body):
        yield "data: " + _json.dumps({"choices": [{"index": 0, "text": "a b",
                                                   "finish_reason": None}]}) + "\n\n"
        yield "data: " + _json.dumps({"error": {"message": "out of memory", "type": "server_error"}}) + "\n\n"
        yield "data: [DONE]\n\n"
    monkeypatch.setattr(fakes, "openai_events", failing_events)
    out = io.StringIO()
    with FakeServer("openai", ["unused\n"]) as fake:
        cfg, outcome, log = talk(small_config(api_url=fake.url, template="chatml"),
                                 tmp_path, display=Display(stream=out, color=False))
    assert outcome.end_reason == "error" and "out of memory" in outcome.detail
    lines = out.getvalue().splitlines()
    assert "--- DONE ---" in lines
    # to a pipe the cut-off turn is dropped, as the .log has no trace of it: stdout is the .log
    assert [line for line in lines[:lines.index("--- DONE ---")] if line.startswith("Juno:")] == []
    assert out.getvalue() == log.log_path.read_text()
