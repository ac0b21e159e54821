"""The native and OpenAI-compatible adapters against the real llama-server."""

import pytest
import requests

from broken_record.conversation.config import parse_config
from broken_record.conversation.roles import open_role
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


def recording(engine):
    """The bodies `engine` posts, in order."""
    sent = []
    post = engine._post_stream

    def record(path, body):
        sent.append(body)
        return post(path, body)
    engine._post_stream = record
    return sent


def test_a_slot_is_sent_as_id_slot_only_when_given(llama_server):
    engine = connect(llama_server.url, "llama-server")
    assert engine.pins_slots
    sent = recording(engine)
    # a prompt no other test sends, so that no slot holds it yet
    prompt = builtin("chatml").render([{"role": "user", "content": "Pinned: the lighthouse keeper's 9 cats."}])
    first = engine.stream(prompt, {"temperature": 0.0}, 2, ["\n"], slot=0)
    first.text()
    other = engine.stream(prompt, {"temperature": 0.0}, 2, ["\n"], slot=1)
    other.text()
    again = engine.stream(prompt, {"temperature": 0.0}, 2, ["\n"], slot=0)
    again.text()
    engine.stream(prompt, {"temperature": 0.0}, 2, ["\n"]).text()
    assert [body.get("id_slot") for body in sent] == [0, 1, 0, None]
    assert "id_slot" not in sent[3]
    assert {k: v for k, v in sent[0].items() if k != "id_slot"} == sent[3]
    # the server kept to the slots: slot 1 had to compute the prompt that slot 0 held
    assert again.result.cached_tokens >= again.result.prompt_tokens - 2
    assert other.result.cached_tokens < again.result.cached_tokens


def test_openai_adapter_does_not_pin_a_slot_even_on_llama_server(llama_server):
    engine = connect(llama_server.url, "openai")
    assert engine.info.extra.get("backend") == "llama-server" and not engine.pins_slots
    sent = recording(engine)
    engine.stream(PROMPT, {"temperature": 0.0}, 2, ["\n"], slot=1).text()
    engine.stream(PROMPT, {"temperature": 0.0}, 2, ["\n"]).text()
    assert "id_slot" not in sent[0] and sent[0] == sent[1]


@pytest.mark.parametrize("engine, kept", [("llama-server", 1), ("openai", None)])
def test_open_role_keeps_a_slot_where_the_engine_pins_one(llama_server, engine, kept):
    cfg = parse_config({"conversation": [{"role": "user", "content": "Hi"}], "agent_prefix": "Juno:",
                        "api_url": llama_server.url, "engine": engine, "sampler": {"temperature": 0.5}})
    role = open_role(cfg.assistant, llama_server.url, cfg, slot=1)
    assert role.slot == kept and "id_slot" not in role.params
    # the run log's header records the slot with the sampler settings, as it always has
    expected = {"temperature": 0.5} if kept is None else {"temperature": 0.5, "id_slot": 1}
    assert role.describe()["sampler"] == expected
    assert open_role(cfg.assistant, llama_server.url, cfg).slot is None
