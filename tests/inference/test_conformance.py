"""One conformance table, run against every engine this machine has.

    engine                   how it is had here
    llama-server             the real one (the session's embedded server), native /completion
    llama-server /v1         the same server through the OpenAI-compatible adapter
    vLLM                     the real vLLM (CPU) of the vLLM tier (skipped, saying so, without it)
    koboldcpp                koboldcpp 1.76 replayed from its recorded traffic (tests/replay.py)
    koboldcpp /v1            the same recordings' /v1/completions

Each check is one test per engine: detection, incremental streaming, the
stop reason of a word / EOS / limit ending, the turn's token count against
the server's own other report of it, no stop string in the text, a sampler
setting taking effect, a setting the engine cannot honour named in a
warning, and an aborted stream not taken as finished. What each engine gave
is collected into one table, printed at the end of the session
(`conftest.pytest_terminal_summary`).

A replayed koboldcpp cannot generate: it answers any prompt with the
recording it is given, so its cases send the recorded requests, and "a
setting taking effect" there means the adapter sent the request the real
server was sent (and that request's recorded answer shows the effect).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from conftest import CONFORMANCE
from replay import KoboldReplay, load_recordings

from broken_record.inference import ConnectionLost, Engine, connect, detect
from broken_record.inference.templates import builtin

CHATML = builtin("chatml")
LIST = "Fruits:\n1. Apple\n2. Orange\n3."      # greedy: " Banana" then the newline
CAPITAL = CHATML.render([{"role": "user", "content": "What is the capital of France? Answer in one word."}])
JUNO = CHATML.render([
    {"role": "system", "content": "You are Juno, cheerful and talkative."},
    {"role": "user", "content": "Theo: Hi Juno, how was your day?"}]) + "Juno:"
LALA = "la la la la la la la la la la la la la la la la"
GREEDY = {"temperature": 0.0, "seed": 1}
STOP = ["\n"]


RECORDED = load_recordings()


def sent_body(name: str) -> dict[str, Any]:
    """The request body of a recorded exchange."""
    return RECORDED[name].body


def answer_body(name: str) -> bytes:
    """The body of a recorded answer (after the headers)."""
    return RECORDED[name].response.split(b"\r\n\r\n", 1)[1]


@dataclass
class Request:
    prompt: str
    sampler: dict[str, Any]
    max_tokens: int
    stop: list[str]
    recording: str | None = None     # the replay's answer to it


@dataclass
class Case:
    """How one engine is reached and asked."""

    name: str
    kind: str                        # what detect() must say
    adapter: str                     # the adapter connect() is given
    backend: str | None              # what the OpenAI adapter must find behind /v1
    endings: dict[str, Request]      # word / eos / limit
    unhonoured: str                  # a setting it cannot honour
    server_count: Callable[[Engine, Request], int]   # the server's own count of that turn's tokens


def recorded_request(name: str) -> Request:
    """A recorded koboldcpp request, as parrot would ask for it."""
    body = sent_body(name)
    sampler = {"temperature": body["temperature"], "top_p": body["top_p"], "min_p": body["min_p"],
               "repeat_penalty": body.get("rep_pen", body.get("repetition_penalty")),
               "seed": body.get("sampler_seed", body.get("seed"))}
    if "rep_pen_range" in body:
        sampler["repeat_last_n"] = body["rep_pen_range"]
    if "dry_multiplier" in body:
        sampler["dry_multiplier"] = body["dry_multiplier"]
    return Request(body["prompt"], {k: v for k, v in sampler.items() if v is not None},
                   body.get("max_length", body.get("max_tokens")), body.get("stop_sequence", body.get("stop")),
                   recording=name)


def llama_native_count(engine: Engine, req: Request) -> int:
    # the same request on the /v1 endpoint: its usage chunk
    body = {**engine.translate(req.sampler)[0], "prompt": req.prompt, "max_tokens": req.max_tokens,
            "stop": req.stop}
    return requests.post(engine.url + "/v1/completions", json=body, timeout=300).json()["usage"]["completion_tokens"]


def llama_v1_count(engine: Engine, req: Request) -> int:
    # the same request on the native endpoint: tokens_predicted
    body = {**req.sampler, "prompt": req.prompt, "n_predict": req.max_tokens, "stop": req.stop}
    return requests.post(engine.url + "/completion", json=body, timeout=300).json()["tokens_predicted"]


def vllm_count(engine: Engine, req: Request) -> int:
    body = {**engine.translate(req.sampler)[0], "model": engine.api_model, "prompt": req.prompt,
            "max_tokens": req.max_tokens, "stop": req.stop}
    return requests.post(engine.url + "/v1/completions", json=body, timeout=300).json()["usage"]["completion_tokens"]


PERF = {"stream-a-newline-stop": "perf-after-stream-a", "stream-b-eos": "perf-after-stream-b",
        "stream-c-limit16": "perf-after-stream-c", "oai-completions-stream-a": "perf-after-stream-a",
        "oai-completions-stream-c": "perf-after-stream-c"}


def kobold_count(engine: Engine, req: Request) -> int:
    # the real server's /api/extra/perf after that generation, as recorded
    import json
    return json.loads(answer_body(PERF[req.recording or ""]))["last_token_count"]


REAL = {"word": Request(LIST, GREEDY, 40, STOP), "eos": Request(CAPITAL, GREEDY, 200, []),
        "limit": Request(JUNO, GREEDY, 3, STOP)}
CASES = {
    "llama-server": Case("llama-server", "llama-server", "llama-server", None, REAL, "tfs", llama_native_count),
    "llama-server /v1": Case("llama-server /v1", "llama-server", "openai", "llama-server", REAL, "tfs",
                             llama_v1_count),
    "vLLM": Case("vLLM", "openai", "openai", "vllm", REAL, "dry_multiplier", vllm_count),
    "koboldcpp": Case("koboldcpp", "koboldcpp", "koboldcpp", None,
                      {"word": recorded_request("stream-a-newline-stop"), "eos": recorded_request("stream-b-eos"),
                       "limit": recorded_request("stream-c-limit16")}, "frequency_penalty", kobold_count),
    "koboldcpp /v1": Case("koboldcpp /v1", "koboldcpp", "openai", "koboldcpp",
                          {"word": recorded_request("oai-completions-stream-a"),
                           "limit": recorded_request("oai-completions-stream-c")}, "frequency_penalty",
                          kobold_count),
}


@contextmanager
def served(case: Case, request: pytest.FixtureRequest, script: list[str] | None = None) -> Iterator[str]:
    """The URL of the engine of `case`: a real server, or a replay with `script`."""
    if case.name.startswith("llama-server"):
        yield request.getfixturevalue("llama_server").url
    elif case.name == "vLLM":
        yield request.getfixturevalue("vllm_server")
    else:
        with KoboldReplay(script=script) as replay:
            yield replay.url


COLUMNS = ("detected", "streams", "word", "eos", "limit", "stop in a token", "setting", "warns", "abort")


def note(case: Case, check: str, result: str) -> None:
    row = CONFORMANCE.setdefault(case.name, dict.fromkeys(COLUMNS, "—"))
    row[check] = result


# the real engines are reached through served()'s getfixturevalue, which conftest's marking
# by fixture name cannot see: their cases carry the markers themselves
MARKS = {"llama-server": [pytest.mark.server], "llama-server /v1": [pytest.mark.server],
         "vLLM": [pytest.mark.server, pytest.mark.vllm]}
ENGINES = pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, [])) for n in CASES])


@ENGINES
def test_detection(name, request):
    case = CASES[name]
    with served(case, request) as url:
        assert detect(url) == case.kind
        engine = connect(url, case.adapter)
        assert getattr(engine, "backend", None) == case.backend
    note(case, "detected", case.kind + (f" → {case.backend}" if case.backend else ""))


@ENGINES
@pytest.mark.parametrize("ending", ["word", "eos", "limit"])
def test_endings(name, ending, request):
    case = CASES[name]
    req = case.endings.get(ending)
    if req is None:
        note(case, ending, "no recording")
        pytest.skip(f"{name}: no recording of a stream ending on {ending}")
    with served(case, request, [req.recording] if req.recording else None) as url:
        engine = connect(url, case.adapter)
        stream = engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop)
        stream.text()
        res = stream.result
        own = case.server_count(engine, req)
    assert res.stop == ending, res.text
    assert not any(s in res.text for s in req.stop if s)
    assert res.tokens == own
    note(case, ending, f"{res.stop}, {res.tokens} tok = server's {own}")


@ENGINES
def test_streaming_is_incremental(name, request):
    case = CASES[name]
    # a turn long enough to see it: 48 tokens, or koboldcpp's recorded stop-sequence stream
    req = case.endings["word"] if name.startswith("koboldcpp") else Request(JUNO, GREEDY, 48, [])
    with served(case, request, [req.recording] if req.recording else None) as url:
        engine = connect(url, case.adapter)
        stream = engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop)
        t0, arrivals = time.perf_counter(), []
        for _ in stream:
            arrivals.append(time.perf_counter() - t0)
    # the pieces arrive as they are generated, spread over the turn; a body read to
    # its close gives them all at its end, within a millisecond of each other
    spread = (arrivals[-1] - arrivals[0]) / arrivals[-1]
    assert len(arrivals) >= 5 and spread > 0.3, arrivals
    note(case, "streams", f"{len(arrivals)} pieces over {spread:.0%} of the turn, first at "
                          f"{stream.result.ttft_ms:.0f} of {stream.result.wall_ms:.0f} ms")


def test_a_stop_string_inside_a_longer_token_is_cut():
    # koboldcpp sent " Dessert of the Month!\n" as one event: text and stop string together
    req = recorded_request("stream-d-stop-in-multichar-token")
    with KoboldReplay(script=[req.recording]) as replay:
        engine = connect(replay.url)
        stream = engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop)
        shown = "".join(stream)
    assert shown == stream.result.text == " Dessert of the Month!"
    assert (stream.result.stop, stream.result.stopping_word, stream.result.tokens) == ("word", "\n", 7)
    note(CASES["koboldcpp"], "stop in a token", "cut: ' Dessert of the Month!'")


@ENGINES
def test_a_sampler_setting_takes_effect(name, request):
    case = CASES[name]
    if name.startswith("koboldcpp"):
        # the DRY case: what the adapter sends is what the real server was sent
        req = recorded_request("stream-e-dry")
        with KoboldReplay(script=[req.recording]) as replay:
            engine = connect(replay.url, case.adapter)
            engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop).text()
            sent = next(body for _, path, body in reversed(replay.requests)
                        if path in ("/api/extra/generate/stream", "/v1/completions"))
        recorded = sent_body("stream-e-dry")
        if case.adapter == "koboldcpp":
            assert {k: v for k, v in sent.items() if k != "genkey"} == {
                k: v for k, v in recorded.items() if k != "genkey"}
        else:
            assert sent["dry_multiplier"] == 0.8 and sent["seed"] == 42 and sent["rep_pen"] == 1.1
        note(case, "setting", "dry_multiplier sent as recorded")
        return
    with served(case, request) as url:
        engine = connect(url, case.adapter)
        plain = engine.stream(LALA, engine.translate({"temperature": 0.0})[0], 12, []).text()
        params, dropped = engine.translate({"temperature": 0.0, "repeat_penalty": 2.0})
        penalised = engine.stream(LALA, params, 12, []).text()
    assert not dropped and plain != penalised
    note(case, "setting", "repeat_penalty 2.0 changes the text")


@ENGINES
def test_a_setting_it_cannot_honour_is_named(name, request, tmp_path):
    import json

    from conftest import ROOT

    from broken_record.conversation.config import load_config
    from broken_record.conversation.roles import open_role
    case = CASES[name]
    with served(case, request) as url:
        raw = json.loads((ROOT / "config.json").read_text())
        raw.update({"api_url": url, "engine": case.adapter,
                    "sampler": {"temperature": 0.7, case.unhonoured: 0.5}})
        path = tmp_path / "config.json"
        path.write_text(json.dumps(raw))
        cfg = load_config(path)
        role = open_role(cfg.assistant, url, cfg)
    assert case.unhonoured not in role.params
    (warning,) = role.warnings()
    assert warning.endswith(f"cannot honour {case.unhonoured}: not sent") and url in warning
    note(case, "warns", case.unhonoured)


@ENGINES
def test_an_aborted_stream_is_not_finished(name, request):
    case = CASES[name]
    if name == "koboldcpp":
        # the recorded kill -9 mid-stream: the events stop on a boundary, then a clean EOF
        req = recorded_request("stream-killed-midway")
        with KoboldReplay(script=[req.recording]) as replay:
            engine = connect(replay.url, case.adapter)
            stream = engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop)
            got = []
            with pytest.raises(ConnectionLost, match="without a finish_reason"):
                for piece in stream:
                    got.append(piece)
        assert got and stream.result.stop == "error"
        note(case, "abort", "server killed: lost, not finished")
        return
    # the client aborts mid-stream (parrot's Ctrl-C)
    req = case.endings["word"] if name.startswith("koboldcpp") else Request(
        JUNO, {"temperature": 0.8, "ignore_eos": True}, 1500, [])
    with served(case, request, [req.recording] if req.recording else None) as url:
        engine = connect(url, case.adapter)
        stream = engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop)
        got = []
        with pytest.raises(ConnectionLost):
            for piece in stream:
                got.append(piece)
                if len(got) == 3:
                    threading.Thread(target=engine.abort).start()
        assert stream.result.stop == "error" and 3 <= len(got) < 1500
        assert engine.stream(req.prompt, engine.translate(req.sampler)[0], req.max_tokens, req.stop).text()
    note(case, "abort", "aborted: lost, not finished")
