"""The native and OpenAI-compatible adapters against the real llama-server."""

import pytest
import requests

from broken_record.inference import ContextOverflow, connect, detect
from broken_record.inference.templates import builtin

PROMPT = builtin("chatml").render([
    {"role": "system", "content": "You are Juno, cheerful and talkative."},
    {"role": "user", "content": "Theo: Hi Juno, how was your day?"}]) + "Juno:"


def test_detects_llama_server(llama_server):
    assert detect(llama_server.url) == "llama-server"


def test_native_stream_reports_server_counts(llama_server):
    engine = connect(llama_server.url)
    assert engine.info.n_ctx == 4096
    assert "im_start" in engine.info.chat_template
    stream = engine.stream(PROMPT, {"temperature": 0.0, "seed": 1}, 40, ["\n"])
    pieces = list(stream)
    res = stream.result
    assert len(pieces) >= 2 and "".join(pieces) == res.text
    assert res.stop in ("word", "limit", "eos")
    assert 1 <= res.tokens <= 40
    assert res.prompt_tokens == engine.count_tokens(PROMPT)
    assert 0 <= res.cached_tokens <= res.prompt_tokens
    assert res.settings["n_predict"] == 40
    assert res.server_gen_ms > 0 and res.tokens_per_second > 0
    # the server's count of the text it sent us (the stop token aside)
    assert abs(engine.count_tokens(res.text) - 1 - res.tokens) <= 1


def test_limit_stop_type(llama_server):
    engine = connect(llama_server.url, "llama-server")
    res = engine.stream(PROMPT, {"temperature": 0.0, "seed": 1}, 3, ["\n"])
    res.text()
    assert res.result.stop == "limit" and res.result.tokens == 3


def test_openai_adapter_against_llama_server(llama_server):
    engine = connect(llama_server.url, "openai")
    assert engine.info.extra.get("backend") == "llama-server"
    assert engine.info.n_ctx == 4096
    native = connect(llama_server.url, "llama-server")
    params = {"temperature": 0.0, "seed": 3, "repeat_penalty": 1.0}
    a = engine.stream(PROMPT, engine.translate(params)[0], 24, ["\n"])
    b = native.stream(PROMPT, native.translate(params)[0], 24, ["\n"])
    assert a.text() == b.text()
    assert a.result.tokens == b.result.tokens
    assert a.result.stop in ("eos", "limit")
    assert (a.result.stop == "limit") == (b.result.stop == "limit")


def test_context_overflow_http_400(llama_server):
    engine = connect(llama_server.url)
    long_prompt = "word " * 5000
    with pytest.raises(ContextOverflow, match="exceeds the context"):
        engine.stream(long_prompt, {}, 8, ["\n"]).text()
    # the server's own answer, for the record: HTTP 400 with the error type
    r = requests.post(llama_server.url + "/completion",
                      json={"prompt": long_prompt, "n_predict": 1, "stream": True})
    assert r.status_code == 400 and r.json()["error"]["type"] == "exceed_context_size_error"


def test_grammar_constrains_output(llama_server):
    engine = connect(llama_server.url)
    params, dropped = engine.translate({"grammar": 'root ::= "yes" | "no"', "temperature": 0.0})
    assert not dropped
    text = engine.stream(PROMPT, params, 8, ["\n"]).text()
    assert text in ("yes", "no")


def test_json_schema_constrains_output(llama_server):
    import json
    engine = connect(llama_server.url)
    schema = {"type": "object", "properties": {"mood": {"type": "string", "enum": ["happy", "shy"]}},
              "required": ["mood"]}
    text = engine.stream(PROMPT, {"json_schema": schema, "temperature": 0.0}, 30, []).text()
    assert json.loads(text)["mood"] in ("happy", "shy")


def test_n_cache_reuse_reuses_a_sliding_window(llama_server):
    # The user model's prompt: a system prompt and the last few messages, so
    # each turn drops the oldest message. With n_cache_reuse the server
    # shifts the still-present messages' cache instead of computing them again.
    engine = connect(llama_server.url, "llama-server")
    lines = [f"Line {i}: the moon over the harbour was {i} shades of silver and the gulls slept." for i in range(8)]

    def cached_over_window(system: str, sampler: dict) -> int:
        cached = 0
        for end in range(4, len(lines) + 1):
            messages = [{"role": "system", "content": system}]
            messages += [{"role": "user" if i % 2 else "assistant", "content": lines[i]} for i in range(end - 4, end)]
            stream = engine.stream(builtin("chatml").render(messages) + "Theo:", sampler, 4, ["\n"])
            stream.text()
            if end > 4:
                cached += stream.result.cached_tokens
        return cached

    sampler, dropped = engine.translate({"temperature": 0.0, "seed": 1, "n_cache_reuse": 8})
    assert dropped == [] and sampler["n_cache_reuse"] == 8
    plain = cached_over_window("You are Theo, shy and kind. Plain run.", {"temperature": 0.0, "seed": 1})
    reused = cached_over_window("You are Theo, shy and kind. Reuse run.", sampler)
    assert reused > 2 * plain
