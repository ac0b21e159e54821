"""Small fake servers for what no real server here can show: servers that
misbehave at a chosen point (die mid-stream, send a line that does not
parse, refuse a prompt), and an unidentified OpenAI-compatible server.

The real engines are tested for real: llama-server and vLLM run here
(tests/conftest.py), koboldcpp is replayed from its recorded traffic
(tests/replay.py). These fakes follow that recorded behaviour, transport
included: "openai" answers as vLLM does (HTTP/1.1, `transfer-encoding:
chunked`, one event per chunk, usage chunk, `[DONE]`), "koboldcpp" as
koboldcpp 1.76 does (HTTP/1.0, no content-length, the body ends when the
server closes the connection; the string "null" until the last event,
which carries the last text and the reason; a stop sequence kept in the
text and reported as "length").

    with FakeServer("openai", replies=["Hello there.\\n"]) as fake:
        fake.url, fake.requests   # the bodies the client sent
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def words(text: str) -> list[str]:
    """Split into stream pieces the way servers do: "a b\\n" -> ["a", " b", "\\n"]."""
    out, cur = [], ""
    for ch in text:
        if ch in " \n" and cur:
            out.append(cur)
            cur = ""
        cur += ch
        if ch == "\n":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def ntokens(text: str) -> int:
    return len(words(text))


class FakeServer:
    """kind: "openai" (vLLM-style) or "koboldcpp". Replies are served in turn
    (cycled). Each reply is raw model output: text up to a "\\n" stops on the
    stop string, a reply without one runs to the limit (or EOS with `eos=True`).

    Faults: die_after={request_no: chunks} drops the connection after that many
    chunks; malformed=True inserts an unparseable data line in every stream;
    overflow=True answers HTTP 400 exceed_context_size_error.
    """

    def __init__(self, kind: str, replies: list[str], n_ctx: int = 2048, eos: bool = False,
                 die_after: dict[int, int] | None = None, malformed: bool = False,
                 overflow: bool = False, kobold_null_string: bool = True):
        self.kind = kind
        self.replies = replies
        self.n_ctx = n_ctx
        self.eos = eos
        self.die_after = die_after or {}
        self.malformed = malformed
        self.overflow = overflow
        self.kobold_null_string = kobold_null_string
        self.requests: list[dict] = []
        self.generations = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_reply(self) -> tuple[int, str]:
        n = self.generations
        self.generations += 1
        return n, self.replies[n % len(self.replies)]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, code: int, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def do_GET(self):
                routes = OPENAI_GET if fake.kind == "openai" else KOBOLD_GET
                if self.path in routes:
                    self._json(200, routes[self.path](fake))
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self):
                body = self._body()
                if fake.kind == "openai" and self.path == "/tokenize":
                    self._json(200, {"count": ntokens(body.get("prompt", "")),
                                     "max_model_len": fake.n_ctx, "tokens": []})
                elif fake.kind == "koboldcpp" and self.path == "/api/extra/tokencount":
                    n = ntokens(body.get("prompt", "")) + 1       # the count includes BOS
                    self._json(200, {"value": n, "ids": list(range(n))})
                elif (fake.kind, self.path) in (("openai", "/v1/completions"),
                                                ("koboldcpp", "/api/extra/generate/stream")):
                    fake.requests.append(body)
                    if fake.overflow:
                        self._json(400, {"error": {
                            "code": 400, "type": "exceed_context_size_error",
                            "message": "request (5001 tokens) exceeds the available context size "
                                       "(4096 tokens), try increasing it",
                            "n_prompt_tokens": 5001, "n_ctx": 4096}})
                        return
                    self._stream(body)
                else:
                    self._json(404, {"detail": "Not Found"})

            def _stream(self, body):
                n, reply = fake._next_reply()
                limit = body.get("max_tokens") or body.get("max_length") or 16
                pieces = words(reply)
                stopped = None
                out = []
                for p in pieces:
                    if len(out) >= limit:
                        break
                    out.append(p)
                    if p.endswith("\n"):
                        stopped = "\n"
                        break
                if stopped:
                    finish = "word"
                elif len(out) >= limit:
                    finish = "limit"
                else:
                    finish = "eos" if fake.eos or len(out) < limit else "limit"
                chunked = fake.kind == "openai"
                if chunked:       # vLLM (uvicorn): HTTP/1.1, chunked, one event per chunk
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream; charset=utf-8")
                    self.send_header("transfer-encoding", "chunked")
                else:             # koboldcpp 1.76: HTTP/1.0, the body ends at the close
                    self.protocol_version = "HTTP/1.0"
                    self.send_response(200)
                    self.send_header("cache-control", "no-cache")
                    self.send_header("connection", "keep-alive")
                    self.send_header("cache-control", "no-store")
                    self.send_header("content-type", "text/event-stream")
                self.end_headers()
                die = fake.die_after.get(n)
                events = (openai_events if fake.kind == "openai" else kobold_events)(
                    fake, out, finish, body)
                for i, ev in enumerate(events):
                    if die is not None and i >= die:
                        # drop the connection mid-stream, as a crashed server does
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                    data = ev.encode()
                    if chunked:
                        data = b"%x\r\n%s\r\n" % (len(data), data)
                    self.wfile.write(data)
                    self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

        return Handler


OPENAI_GET = {
    "/v1/models": lambda f: {"object": "list", "data": [
        {"id": "fake/vllm-model", "object": "model", "max_model_len": f.n_ctx}]},
}
KOBOLD_GET = {
    "/api/v1/model": lambda f: {"result": "koboldcpp/fake-model"},
    "/api/extra/version": lambda f: {"result": "KoboldCpp", "version": "1.76"},
    "/api/extra/true_max_context_length": lambda f: {"value": f.n_ctx},
}


def openai_events(fake, pieces, finish, body):
    """vLLM: text chunks, finish_reason + stop_reason, a usage chunk, [DONE]."""
    def chunk(text, finish_reason=None, stop_reason=None):
        return "data: " + json.dumps({
            "id": "cmpl-1", "object": "text_completion", "model": body.get("model"),
            "choices": [{"index": 0, "text": text, "logprobs": None,
                         "finish_reason": finish_reason, "stop_reason": stop_reason}]}) + "\n\n"
    if fake.malformed:
        yield "data: {this is not json\n\n"
    for p in pieces[:-1]:
        yield chunk(p)
    last = pieces[-1] if pieces else ""
    if finish == "word":
        # vLLM does not include the stop string in the text
        yield chunk(last[:-1], "stop", "\n")
    elif finish == "eos":
        yield chunk(last, "stop", None)
    else:
        yield chunk(last, "length", None)
    prompt_tokens = ntokens(body.get("prompt", ""))
    yield "data: " + json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [],
                                 "usage": {"prompt_tokens": prompt_tokens,
                                           "completion_tokens": len(pieces),
                                           "total_tokens": prompt_tokens + len(pieces)}}) + "\n\n"
    yield "data: [DONE]\n\n"


def kobold_events(fake, pieces, finish, body):
    """koboldcpp 1.76: `event: message`, finish_reason the string "null" until the
    last event, which carries the last text AND the reason; a stop sequence is
    included in the text and reported as "length"; no [DONE]."""
    null = "null" if fake.kobold_null_string else None

    def ev(token, reason):
        return "event: message\ndata: " + json.dumps({"token": token, "finish_reason": reason}) + "\n\n"
    if fake.malformed:
        yield "event: message\ndata: <garbage>\n\n"
    # several tokens' worth of text may come in one event
    merged = []
    for i, p in enumerate(pieces):
        if merged and i % 3 == 2:
            merged[-1] += p
        else:
            merged.append(p)
    for p in merged[:-1]:
        yield ev(p, null)
    yield ev(merged[-1] if merged else "", "stop" if finish == "eos" else "length")
