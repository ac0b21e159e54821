"""The OpenAI-compatible adapter against the real vLLM (CPU) serving the bundled model.

Every figure a test compares with is the server's own: its non-streamed
answer to the same request, its /tokenize, its /metrics.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from broken_record.conversation.config import load_config
from broken_record.conversation.roles import open_role
from broken_record.inference import ConnectionLost, ContextOverflow, EngineError, connect, detect
from broken_record.inference.templates import builtin

ROOT = Path(__file__).resolve().parents[2]
CHATML = builtin("chatml")
JUNO = CHATML.render([
    {"role": "system", "content": "You are Juno, cheerful and talkative."},
    {"role": "user", "content": "Theo: Hi Juno, how was your day?"}]) + "Juno:"
CAPITAL = CHATML.render([{"role": "user", "content": "What is the capital of France? Answer in one word."}])
LIST = "Fruits:\n1. Apple\n2. Orange\n3."      # greedy: " Banana" then the newline
LALA = "la la la la la la la la la la la la la la la la"
GREEDY = {"temperature": 0.0, "seed": 1}


@pytest.fixture
def engine(vllm_server):
    return connect(vllm_server, "auto")


def server_answer(url: str, engine, prompt: str, params: dict, max_tokens: int, stop: list[str]) -> dict:
    """vLLM's own non-streamed answer to the same request."""
    body = {**params, "model": engine.api_model, "prompt": prompt, "max_tokens": max_tokens, "stop": stop}
    resp = requests.post(url + "/v1/completions", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_vllm_is_found_behind_v1_with_its_context_and_version(vllm_server, engine):
    assert detect(vllm_server) == "openai"
    assert engine.backend == "vllm" and engine.info.extra == {"backend": "vllm", "version": "0.32.0"}
    assert engine.info.n_ctx == 4096
    assert engine.api_model.endswith("smollm2-hf")
    assert engine.count_tokens("Hello world") == 2     # /tokenize, no BOS added


def test_a_stream_arrives_piece_by_piece_with_the_servers_counts(vllm_server, engine):
    stream = engine.stream(JUNO, GREEDY, 40, ["\n"])
    pieces = list(stream)
    res = stream.result
    assert len(pieces) >= 5 and "".join(pieces) == res.text
    # the first piece well before the end: it was read while the server wrote
    assert res.ttft_ms < 0.5 * res.wall_ms
    own = server_answer(vllm_server, engine, JUNO, GREEDY, 40, ["\n"])
    assert res.text == own["choices"][0]["text"]
    assert res.tokens == own["usage"]["completion_tokens"]
    assert res.prompt_tokens == own["usage"]["prompt_tokens"] == engine.count_tokens(JUNO)


@pytest.mark.parametrize("case, prompt, max_tokens, stop", [
    ("word", LIST, 40, ["\n"]), ("eos", CAPITAL, 200, []), ("limit", JUNO, 3, ["\n"])])
def test_each_stop_reason(vllm_server, engine, case, prompt, max_tokens, stop):
    stream = engine.stream(prompt, GREEDY, max_tokens, stop)
    text = stream.text()
    res = stream.result
    own = server_answer(vllm_server, engine, prompt, GREEDY, max_tokens, stop)["choices"][0]
    assert res.stop == case, (text, own)
    assert (own["finish_reason"], own["stop_reason"]) == {
        "word": ("stop", "\n"), "eos": ("stop", None), "limit": ("length", None)}[case]
    assert res.stopping_word == ("\n" if case == "word" else None)
    assert "\n" not in text if stop else True
    if case == "limit":
        assert res.tokens == 3


def test_vllm_sampler_names_take_effect(engine):
    params, dropped = engine.translate({"temperature": 0.0, "repeat_penalty": 2.0, "min_p": 0.05, "top_k": 40})
    assert params == {"temperature": 0.0, "repetition_penalty": 2.0, "min_p": 0.05, "top_k": 40} and not dropped
    plain = engine.stream(LALA, {"temperature": 0.0}, 12, []).text()
    penalised = engine.stream(LALA, params, 12, []).text()
    assert plain != penalised
    # the same seed gives the same text at temperature 1; another seed another text
    a, b, c = (engine.stream(JUNO, {"temperature": 1.0, "seed": s}, 24, []).text() for s in (42, 42, 7))
    assert a == b and a != c


def test_settings_vllm_would_ignore_are_named_in_a_warning(tmp_path, vllm_server):
    raw = json.loads((ROOT / "config.json").read_text())
    raw.update({"api_url": vllm_server, "sampler": {"temperature": 0.7, "dry_multiplier": 0.8,
                                                    "typical_p": 0.9, "repeat_penalty": 1.1}})
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw))
    cfg = load_config(config)
    role = open_role(cfg.assistant, vllm_server, cfg)
    assert role.params == {"temperature": 0.7, "repetition_penalty": 1.1}
    assert role.warnings() == [f"assistant engine openai (vllm) at {vllm_server} cannot honour "
                               f"dry_multiplier, typical_p: not sent"]


def test_structured_output_is_sent_in_the_form_vllm_honours(engine):
    params, _ = engine.translate({"temperature": 0.0, "guided_regex": "[0-9]{3}-[0-9]{4}"})
    assert params["structured_outputs"] == {"regex": "[0-9]{3}-[0-9]{4}"}
    stream = engine.stream(JUNO, params, 20, ["\n"])
    assert re.fullmatch("[0-9]{3}-[0-9]{4}", stream.text())
    assert stream.result.stop == "eos"


def test_logprobs_are_asked_under_vllms_name_and_its_limit_is_reported(engine):
    params, _ = engine.translate({"temperature": 0.0, "n_probs": 2})
    assert params == {"temperature": 0.0, "logprobs": 2}
    assert engine.stream(JUNO, params, 4, []).text()
    with pytest.raises(EngineError, match="greater than max allowed: 20"):
        engine.stream(JUNO, engine.translate({"n_probs": 30})[0], 4, []).text()


def test_a_prompt_longer_than_the_context_is_an_overflow(engine):
    with pytest.raises(ContextOverflow, match="maximum context length is 4096"):
        engine.stream("hello " * 4200, GREEDY, 8, []).text()


def running(url: str) -> float:
    metrics = requests.get(url + "/metrics", timeout=10).text
    found = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)$", metrics, re.M)
    assert found, "no vllm:num_requests_running in /metrics"
    return float(found.group(1))


def test_an_aborted_stream_is_not_finished_and_the_server_stops_generating(vllm_server, engine):
    stream = engine.stream(JUNO, {"temperature": 0.8, "ignore_eos": True}, 2000, [])
    got: list[str] = []
    with pytest.raises(ConnectionLost):
        for piece in stream:
            got.append(piece)
            if len(got) == 5:
                threading.Thread(target=engine.abort).start()
    assert 5 <= len(got) < 2000 and stream.result.stop == "error"
    deadline = time.time() + 20
    while running(vllm_server) > 0 and time.time() < deadline:
        time.sleep(0.5)
    assert running(vllm_server) == 0
    assert engine.stream(JUNO, GREEDY, 4, []).text()     # and the server serves the next one
