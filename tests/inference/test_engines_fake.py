"""The adapters against fakes, for what no real server here can show.

Detection, streaming and the word / EOS / limit endings of the real engines
are tested against them (tests/inference/test_conformance.py: llama-server,
vLLM, koboldcpp replayed from its recorded traffic). Here: an unidentified
OpenAI-compatible server (vLLM's wire format under another name), and
servers that misbehave at a chosen point (die mid-stream, send a line that
does not parse, refuse a prompt), in their servers' transports.
"""

import pytest
from fakes import FakeServer

from broken_record.inference import ConnectionLost, ContextOverflow, EngineError, connect, detect

STOP = ["\n"]


@pytest.mark.parametrize("kind", ["openai"])
def test_detects_engine(kind):
    with FakeServer(kind, ["x\n"]) as fake:
        assert detect(fake.url) == kind


@pytest.mark.parametrize("kind", ["openai"])
def test_word_stop_strips_stop_string_and_counts_tokens(kind):
    with FakeServer(kind, ["Hello there, shy one.\nNEVER SENT"]) as fake:
        engine = connect(fake.url, "auto")
        stream = engine.stream("<prompt words>", {}, 64, STOP)
        pieces = list(stream)
        res = stream.result
    assert "".join(pieces) == "Hello there, shy one."
    assert res.text == "Hello there, shy one."
    assert res.stop == "word" and res.stopping_word == "\n"
    # the fake counts 4 words + the newline as 5 tokens, as servers count the stop
    # token; for koboldcpp the adapter counts text + stop string (BOS removed)
    assert res.tokens == 5
    assert res.prompt_tokens == (2 if kind == "openai" else 3)
    assert res.ttft_ms is not None and res.wall_ms >= res.ttft_ms


@pytest.mark.parametrize("kind", ["openai"])
def test_limit_stop(kind):
    with FakeServer(kind, ["one two three four five six seven eight"]) as fake:
        engine = connect(fake.url, kind)
        res = engine.stream("p", {}, 4, STOP)
        text = res.text()
    assert text == "one two three four"
    assert res.result.stop == "limit"


@pytest.mark.parametrize("kind", ["openai"])
def test_eos_stop(kind):
    with FakeServer(kind, ["short answer"], eos=True) as fake:
        res = connect(fake.url, kind).stream("p", {}, 50, STOP)
        assert res.text() == "short answer"
    assert res.result.stop == "eos"


def test_kobold_accepts_json_null_as_not_finished():
    with FakeServer("koboldcpp", ["a b c d e\n"], kobold_null_string=False) as fake:
        res = connect(fake.url).stream("p", {}, 50, STOP)
        assert res.text() == "a b c d e"
    assert res.result.stop == "word"


def test_kobold_holds_back_a_split_stop_string():
    # "END" as stop string arriving in pieces must never be shown
    with FakeServer("koboldcpp", ["go on EN D"]) as fake:
        res = connect(fake.url).stream("p", {}, 50, ["END", "\n"])
        shown = "".join(res)
    assert shown == res.result.text


def test_openai_sends_max_tokens_model_and_translated_samplers():
    with FakeServer("openai", ["ok\n"]) as fake:
        engine = connect(fake.url)
        params, dropped = engine.translate({"temperature": 0.5, "repeat_penalty": 1.1,
                                            "repeat_last_n": 64, "seed": 7, "grammar": "root ::= \"a\"",
                                            "xtc_probability": 0.5, "mirostat": 2, "n_cache_reuse": 16})
        engine.stream("p", params, 32, STOP).text()
        sent = fake.requests[0]
    assert sent["max_tokens"] == 32 and sent["model"] == "fake/vllm-model"
    assert sent["repetition_penalty"] == 1.1 and "repeat_penalty" not in sent
    assert sent["guided_grammar"] == "root ::= \"a\"" and sent["seed"] == 7
    assert sent["xtc_probability"] == 0.5
    assert sent["stream_options"] == {"include_usage": True}
    assert sorted(dropped) == ["mirostat", "n_cache_reuse", "repeat_last_n"]


def test_kobold_translates_sampler_names():
    with FakeServer("koboldcpp", ["ok\n"]) as fake:
        engine = connect(fake.url)
        params, dropped = engine.translate({"repeat_penalty": 1.2, "repeat_last_n": 128,
                                            "typical_p": 0.9, "seed": 3, "frequency_penalty": 0.2,
                                            "dry_multiplier": 0.8, "json_schema": {"type": "object"},
                                            "n_cache_reuse": 16})
        engine.stream("p", params, 16, STOP).text()
        sent = fake.requests[0]
    assert sent["rep_pen"] == 1.2 and sent["rep_pen_range"] == 128
    assert sent["typical"] == 0.9 and sent["sampler_seed"] == 3 and sent["dry_multiplier"] == 0.8
    assert sent["max_length"] == 16 and sent["stop_sequence"] == ["\n"]
    assert sorted(dropped) == ["frequency_penalty", "json_schema", "n_cache_reuse"]


@pytest.mark.parametrize("kind", ["openai", "koboldcpp"])
def test_malformed_stream_lines_are_skipped_and_counted(kind):
    with FakeServer(kind, ["fine words here\n"], malformed=True) as fake:
        res = connect(fake.url).stream("p", {}, 50, STOP)
        assert res.text() == "fine words here"
    assert res.result.malformed == 1


@pytest.mark.parametrize("kind", ["openai", "koboldcpp"])
def test_dropped_stream_raises_connection_lost(kind):
    with FakeServer(kind, ["one two three four five six\n"], die_after={0: 2}) as fake:
        engine = connect(fake.url)
        with pytest.raises(ConnectionLost):
            engine.stream("p", {}, 50, STOP).text()
        # the next request is served normally
        assert engine.stream("p", {}, 50, STOP).text() == "one two three four five six"


def test_openai_context_overflow_is_recognised_by_type():
    with FakeServer("openai", ["x\n"], overflow=True) as fake:
        engine = connect(fake.url)
        with pytest.raises(ContextOverflow, match="5001 tokens"):
            engine.stream("p", {}, 50, STOP).text()


def test_unreachable_server_names_url_and_role():
    with pytest.raises(EngineError.__mro__[1]) as err:     # ParrotError
        connect("http://127.0.0.1:9", "auto", role="user")
    msg = str(err.value)
    assert "user server http://127.0.0.1:9" in msg and "\n" not in msg


@pytest.mark.parametrize("kind", ["openai", "koboldcpp"])
def test_a_slot_is_not_sent_where_the_engine_cannot_pin_one(kind):
    with FakeServer(kind, ["ok\n"]) as fake:
        engine = connect(fake.url, kind)
        assert not engine.pins_slots
        assert engine.stream("p", {"temperature": 0.5}, 8, STOP, slot=3).text() == "ok"
        assert engine.stream("p", {"temperature": 0.5}, 8, STOP).text() == "ok"
        pinned, free = fake.requests
    assert "id_slot" not in pinned
    pinned.pop("genkey", None)
    free.pop("genkey", None)
    assert pinned == free and list(pinned) == list(free)


def test_nothing_is_sent_until_the_stream_is_read():
    with FakeServer("openai", ["ok\n"]) as fake:
        stream = connect(fake.url).stream("p", {}, 8, STOP)
        assert fake.requests == []
        assert stream.text() == "ok" and len(fake.requests) == 1


def test_a_chunked_stream_cut_midway_is_lost_and_names_the_server():
    # vLLM's transport is chunked: the connection dropping inside the body is a broken framing
    with FakeServer("openai", ["one two three\n"], die_after={0: 1}) as fake, \
            pytest.raises(ConnectionLost, match=r"assistant server http://127\.0\.0\.1:\d+ dropped the stream"):
        connect(fake.url).stream("p", {}, 50, STOP).text()


def test_a_close_delimited_stream_without_a_finish_is_lost():
    # koboldcpp's transport ends the body at the close: a cut looks like a clean end without a finish
    with FakeServer("koboldcpp", ["one two three four five six\n"], die_after={0: 1}) as fake, \
            pytest.raises(ConnectionLost, match=r"closed the stream without a finish_reason$"):
        connect(fake.url).stream("p", {}, 50, STOP).text()
