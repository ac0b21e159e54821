"""The koboldcpp replay (tests/replay.py) against its own recordings, with a raw
socket client: the bytes, their pacing, the routing. The last tests ground the
tokencount substitution in the bundled model's tokenizer (server tier)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from replay import (
    BOS,
    NOT_FOUND,
    TOKENCOUNT_TEMPLATE,
    KoboldReplay,
    Recording,
    body,
    kobold_ids,
    load_recordings,
    perf_after,
    recording,
)

RECS = load_recordings()
TOKENCOUNTS = sorted(n for n in RECS if n.startswith("tokencount-"))
GENERATION_OF = {perf_after(n): n for n in sorted(RECS, reverse=True)
                 if n.startswith(("stream-", "generate-"))}  # perf-after-stream-a -> stream-a-newline-stop


def request_bytes(method: str, path: str, payload: object = None, headers: dict[str, str] | None = None) -> bytes:
    """An HTTP request as the recordings' client sent it (python-requests' headers, json.dumps body)."""
    data = b"" if payload is None else json.dumps(payload).encode()
    headers = dict(headers or {"Host": "127.0.0.1", "Accept": "*/*", "Connection": "keep-alive"})
    if payload is not None:
        headers.update({"Content-Length": str(len(data)), "Content-Type": "application/json"})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + data


def exchange(url: str, raw: bytes, on_recv=None) -> list[bytes]:
    """Send `raw`; every recv() until the server's FIN (a reset would raise). on_recv(data) per recv."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(raw)
        got = []
        while data := sock.recv(65536):
            got.append(data)
            if on_recv:
                on_recv(data)
    return got


def ask(url: str, method: str, path: str, payload: object = None) -> bytes:
    return b"".join(exchange(url, request_bytes(method, path, payload)))


def recorded_request(rec: Recording) -> bytes:
    headers = {**recording_headers(rec), "Host": "127.0.0.1"}
    return request_bytes(rec.method, rec.path, rec.body, headers)


def recording_headers(rec: Recording) -> dict[str, str]:
    return recording(rec.name)["request"]["headers"]


def split(response: bytes) -> tuple[list[bytes], bytes]:
    head, rest = response.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), rest


def test_the_recorded_requests_are_what_the_client_sends():
    # the byte test below re-sends them with request_bytes(): same length, so the same bodies
    for rec in RECS.values():
        if rec.body is not None:
            assert recording_headers(rec)["Content-Length"] == str(len(json.dumps(rec.body).encode())), rec.name


@pytest.mark.parametrize("name", sorted(RECS))
def test_every_recording_comes_back_byte_for_byte_then_the_server_closes(name):
    rec = RECS[name]
    script = [name] if name.startswith(("stream-", "oai-", "generate-")) else None
    before = GENERATION_OF.get(name) if name.startswith("perf-after-") else None
    with KoboldReplay(script=[before] if before else script, speed=0.1) as replay:
        if before:
            ask(replay.url, "POST", RECS[before].path, RECS[before].body)
        got = exchange(replay.url, recorded_request(rec))
        ex = replay.connections[-1]
    assert b"".join(got) == rec.response
    assert ex.name == name and ex.error is None
    assert len(ex.sent_at) == len(rec.pieces)  # one send per recorded piece
    assert ex.closed_at is not None and ex.closed_at >= ex.sent_at[-1]
    assert got[0].startswith(b"HTTP/1.0 ")


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/api/v1/nope"),
                                              ("GET", "/api/extra/tokencount"), ("GET", "/v1/completions")])
def test_any_other_path_gets_koboldcpps_404(method, path):
    with KoboldReplay(speed=0.1) as replay:
        got = ask(replay.url, method, path, {"prompt": "x"} if method == "POST" else None)
        assert replay.connections[-1].name == NOT_FOUND
    assert got == RECS[NOT_FOUND].response
    assert got.startswith(b"HTTP/1.0 404 Not Found\r\n") and path.encode() not in got


def test_http_client_reads_a_close_delimited_stream():
    rec = RECS["stream-d-stop-in-multichar-token"]
    with KoboldReplay(script=[rec.name], speed=0.2) as replay:
        conn = http.client.HTTPConnection(urlsplit(replay.url).netloc, timeout=30)
        conn.request("POST", rec.path, json.dumps(rec.body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert (resp.version, resp.status) == (10, 200)
        assert resp.getheader("content-length") is None and resp.getheader("transfer-encoding") is None
        assert resp.getheader("connection") == "keep-alive"  # said, and not meant
        assert resp.read() == split(rec.response)[1]
        conn.close()


@pytest.mark.parametrize(("name", "speed"), [("stream-e-dry", 0.2), ("stream-a-newline-stop", 1.0)])
def test_a_stream_arrives_piece_by_piece_at_its_recorded_pace(name, speed):
    rec = RECS[name]
    seen: dict[str, float | int] = {}

    with KoboldReplay(script=[name], speed=speed) as replay:
        def on_recv(data: bytes) -> None:
            if b"data: " in data and "at" not in seen:
                seen["at"] = time.monotonic()
                seen["sent"] = len(replay.connections[-1].sent_at)
        got = exchange(replay.url, recorded_request(rec), on_recv)
        ex = replay.connections[-1]

    assert b"".join(got) == rec.response
    # the client had its first event while the replay had not yet sent the last pieces
    assert seen["sent"] < len(rec.pieces) and seen["at"] < ex.sent_at[-1]
    assert len(got) > 2
    # never early: each piece went out no sooner than its recorded time, the close too
    for piece, sent in zip(rec.pieces, ex.sent_at):
        assert sent - ex.read_at >= piece.t_ms * speed / 1000
    assert ex.closed_at is not None and ex.closed_at - ex.read_at >= rec.closed_at_ms * speed / 1000


def test_cut_after_ends_a_generation_early_with_a_clean_close():
    rec = RECS["oai-completions-stream-a"]
    with KoboldReplay(script=[rec.name], speed=0.05, cut_after=4) as replay:
        got = exchange(replay.url, recorded_request(rec))
        assert ask(replay.url, "GET", "/api/v1/model") == RECS["get-api-v1-model"].response  # not cut
    assert b"".join(got) == b"".join(p.data for p in rec.pieces[:4])


def test_a_recorded_text_gets_its_recorded_count_even_with_a_tokenizer():
    rec = RECS["tokencount-prompt-short"]
    with KoboldReplay(tokenizer=lambda text: [], speed=0.1) as replay:
        assert ask(replay.url, "POST", "/api/extra/tokencount", {"prompt": rec.body["prompt"]}) == rec.response
        assert ask(replay.url, "POST", "/api/extra/tokencount", {}) == RECS["tokencount-empty"].response
        assert replay.unmatched == []


def test_an_unrecorded_text_without_a_tokenizer_is_a_500_and_listed():
    text = "hello there!"
    with KoboldReplay(speed=0.1) as replay:
        got = ask(replay.url, "POST", "/api/extra/tokencount", {"prompt": text})
        assert replay.unmatched == [text]
        assert replay.requests == [("POST", "/api/extra/tokencount", {"prompt": text})]
    head, rest = split(got)
    assert head[0] == b"HTTP/1.0 500 Internal Server Error"
    assert "not in the koboldcpp-1.76 recordings" in json.loads(rest)["error"]


def test_an_unrecorded_text_with_a_tokenizer_gets_a_count_in_the_recorded_format():
    def tokenizer(text: str) -> list[int]:
        return [100 + len(w) for w in text.split()]
    with KoboldReplay(tokenizer=tokenizer, speed=0.1) as replay:
        got = ask(replay.url, "POST", "/api/extra/tokencount", {"prompt": "one two three"})
        assert replay.unmatched == []
    head, rest = split(got)
    recorded, _ = split(RECS[TOKENCOUNT_TEMPLATE].response)
    length = [h for h in head if h.startswith(b"content-length: ")]
    assert [h for h in head if h not in length] == [h for h in recorded if not h.startswith(b"content-length: ")]
    assert head.index(length[0]) == 3 and length == [b"content-length: %d" % len(rest)]  # where koboldcpp puts it
    assert rest == b'{"value": 4, "ids": [1, 103, 103, 105]}'


def test_a_text_that_starts_with_bos_gets_no_second_one():
    # koboldcpp adds BOS only when the text does not already begin with it (<|im_start|> is BOS)
    with KoboldReplay(tokenizer=lambda text: [BOS, 9690], speed=0.1) as replay:
        got = ask(replay.url, "POST", "/api/extra/tokencount", {"prompt": "<|im_start|>system"})
    assert split(got)[1] == b'{"value": 2, "ids": [1, 9690]}'
    assert (kobold_ids([]), kobold_ids([5]), kobold_ids([1, 5])) == ([1], [1, 5], [1, 5])


@pytest.mark.parametrize("name", TOKENCOUNTS)
def test_the_recorded_counts_follow_that_bos_rule(name):
    text = RECS[name].body["prompt"]
    answer = json.loads(body(name))
    assert answer["value"] == len(answer["ids"]) and answer["ids"][0] == BOS
    # the only 1s are the text's own <|im_start|>s, plus one BOS when it does not start with one
    assert answer["ids"].count(BOS) == text.count("<|im_start|>") + (not text.startswith("<|im_start|>"))


def test_perf_follows_the_last_generation_served():
    def perf(replay: KoboldReplay) -> bytes:
        return ask(replay.url, "GET", "/api/extra/perf")

    oai = RECS["oai-completions-stream-c"]
    with KoboldReplay(script=["stream-b-eos", "stream-killed-midway", "oai-completions-stream-c"],
                      speed=0.05) as replay:
        assert perf(replay) == RECS["perf-after-stream-a"].response  # before any generation
        ask(replay.url, "POST", "/api/extra/generate/stream", {"prompt": "any"})
        assert perf(replay) == RECS["perf-after-stream-b"].response
        ask(replay.url, "POST", "/api/extra/generate/stream", {"prompt": "any"})  # killed: no perf of its own
        assert perf(replay) == RECS["perf-after-stream-b"].response
        ask(replay.url, "POST", "/api/v1/generate", {"prompt": "any"})
        assert perf(replay) == RECS["perf-after-generate-nonstream-a"].response
        ask(replay.url, "POST", "/v1/completions", oai.body)
        assert perf(replay) == RECS["perf-after-stream-c"].response
        ask(replay.url, "POST", "/v1/completions", {"prompt": "any"})
        assert perf(replay) == RECS["perf-after-stream-a"].response
        assert replay.served == ["stream-b-eos", "stream-killed-midway", "generate-nonstream-a",
                                 "oai-completions-stream-c", "oai-completions-nonstream-a"]


def test_the_script_cycles_per_path():
    stream = {"prompt": "any", "stream": True}
    with KoboldReplay(script=["stream-c-limit16", "stream-d-stop-in-multichar-token"], speed=0.05) as replay:
        for _ in range(3):
            ask(replay.url, "POST", "/api/extra/generate/stream", {"prompt": "any"})
        for _ in range(3):
            ask(replay.url, "POST", "/v1/completions", stream)  # the default /v1 script, its own turn
        ask(replay.url, "POST", "/v1/completions", {"prompt": "any"})
        assert replay.served == ["stream-c-limit16", "stream-d-stop-in-multichar-token", "stream-c-limit16",
                                 "oai-completions-stream-a", "oai-completions-stream-c", "oai-completions-stream-a",
                                 "oai-completions-nonstream-a"]
        assert replay.requests[0] == ("POST", "/api/extra/generate/stream", {"prompt": "any"})
        assert [c.name for c in replay.connections] == replay.served


@pytest.mark.parametrize("name", ["nope", "tokencount-empty", "perf-after-stream-a"])
def test_a_script_names_only_recorded_generations(name):
    with pytest.raises(ValueError, match="not a recorded generation"):
        KoboldReplay(script=[name])


def test_exit_mid_stream_leaves_no_thread_behind():
    before = threading.active_count()
    rec = RECS["stream-e-dry"]
    with KoboldReplay(script=[rec.name], speed=1.0) as replay:
        u = urlsplit(replay.url)
        idle = socket.create_connection((u.hostname, u.port))  # connected, never asks anything
        streaming = socket.create_connection((u.hostname, u.port))
        streaming.sendall(recorded_request(rec))
        assert streaming.recv(65536).startswith(b"HTTP/1.0 200 OK")
        t0 = time.monotonic()
    assert time.monotonic() - t0 < rec.closed_at_ms / 1000  # did not wait for the stream to finish
    assert threading.active_count() == before
    errors = {c.name: c.error for c in replay.connections}
    assert errors == {rec.name: "the replay was stopped mid-answer", "": "no whole request arrived"}
    idle.close()
    streaming.close()


def test_a_client_that_hangs_up_mid_stream_does_not_stop_the_replay():
    rec = RECS["stream-b-eos"]
    with KoboldReplay(script=[rec.name], speed=0.2) as replay:
        u = urlsplit(replay.url)
        with socket.create_connection((u.hostname, u.port)) as sock:
            sock.sendall(recorded_request(rec))
            while b"data: " not in sock.recv(65536):
                pass
        hung_up = replay.connections[0]
        deadline = time.monotonic() + 30
        while hung_up.closed_at is None and time.monotonic() < deadline:  # its next sends fail
            time.sleep(0.01)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(b"garbage\r\n\r\n")
        assert sock.recv(10) == b""  # closed without an answer
        sock.close()
        assert ask(replay.url, "GET", "/api/v1/model") == RECS["get-api-v1-model"].response
        _, garbage, model = replay.connections
    assert hung_up.error and hung_up.error.startswith(("BrokenPipeError", "ConnectionResetError"))
    assert 0 < len(hung_up.sent_at) < len(rec.pieces)
    assert garbage.error and garbage.error.startswith("ValueError") and model.error is None


# Server tier: the bundled model's tokenizer gives koboldcpp's ids (grounds the substitution).

@pytest.mark.parametrize("name", TOKENCOUNTS)
def test_the_bundled_tokenizer_gives_every_recorded_tokencount(name, kobold_tokenizer):
    text = RECS[name].body["prompt"]
    recorded = json.loads(body(name))["ids"]
    tokens = kobold_tokenizer(text)
    if text.startswith("<|im_start|>"):
        assert tokens == recorded  # the text's own <|im_start|> is the BOS
    else:
        assert [BOS, *tokens] == recorded
    assert kobold_ids(tokens) == recorded
