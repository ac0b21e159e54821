"""A koboldcpp 1.76 that answers from recorded wire traffic.

    with KoboldReplay(speed=0.2) as kobold:
        requests.post(kobold.url + "/api/extra/generate/stream", json=body, stream=True)
        kobold.requests, kobold.served   # what was asked, which recordings answered

What it reproduces: the bytes and the pacing of a real koboldcpp, from the
recordings in tests/fixtures/recordings/koboldcpp-1.76 (their README says how
they were made). koboldcpp answers HTTP/1.0 and closes every connection; a
stream has neither content-length nor transfer-encoding (yet says
`connection: keep-alive`), so its body ends only when the server closes, about
200 ms after the last event. A client has to cope with exactly that, so this is
a raw TCP server, not http.server (which would write its own status line and
headers): each recorded recv() piece is sent on its own (TCP_NODELAY) at its
recorded time after the request was read, and the connection is closed (FIN)
at the recorded close time. Status line, headers (the Date too) and body are
the recorded bytes, except two answers made here: a tokencount of an
unrecorded text (from a `tokenizer`, in the recorded format) and the 500 that
says a text is not recorded.

What it cannot do: generate. Any prompt gets the next recording of the script
for its path, whatever the prompt, sampler or max_length asked for; perf
follows the recording served, not the request. Only one request is read per
connection, as koboldcpp does.

`speed` scales the recorded delays: 1.0 is real time, 0.2 a fifth of it, 0 no
waiting at all (the pieces still go out one send each).
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

RECORDINGS = Path(__file__).resolve().parent / "fixtures" / "recordings" / "koboldcpp-1.76"
BOS = 1  # SmolLM2's BOS is <|im_start|>

STREAM = "/api/extra/generate/stream"
OAI = "/v1/completions"
OAI_STREAM = "/v1/completions (stream)"  # a route of its own: the body's stream flag picks it
GENERATE = "/api/v1/generate"
TOKENCOUNT = "/api/extra/tokencount"
PERF = "/api/extra/perf"

DEFAULT_SCRIPTS: dict[str, list[str]] = {
    STREAM: ["stream-a-newline-stop", "stream-b-eos", "stream-c-limit16", "stream-d-stop-in-multichar-token",
             "stream-e-dry"],
    OAI_STREAM: ["oai-completions-stream-a", "oai-completions-stream-c"],
    OAI: ["oai-completions-nonstream-a"],
    GENERATE: ["generate-nonstream-a"],
}
NOT_FOUND = "probe-get-props"  # koboldcpp's 404; its body does not name the path
TOKENCOUNT_TEMPLATE = "tokencount-hello-there"


@dataclass(frozen=True)
class Piece:
    t_ms: float
    data: bytes


@dataclass(frozen=True)
class Recording:
    name: str
    method: str
    path: str
    body: Any  # the request's JSON body, None for a GET
    pieces: tuple[Piece, ...]
    closed_at_ms: float
    closed_by: str

    @property
    def response(self) -> bytes:
        return b"".join(p.data for p in self.pieces)


def recording(name: str, folder: Path = RECORDINGS) -> dict[str, Any]:
    """One recording's file as it is: {"name", "what", "request": {...}, "response": {...}}."""
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def body(name: str, folder: Path = RECORDINGS) -> bytes:
    """The body of a recorded answer, after its headers: body("get-api-v1-model") -> b'{"result": ...}'."""
    return load_recordings(folder)[name].response.split(b"\r\n\r\n", 1)[1]


def load_recordings(folder: Path = RECORDINGS) -> dict[str, Recording]:
    """Every recording of the folder by name: {"stream-b-eos": Recording(...), ...}."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        req, resp = raw["request"], raw["response"]
        pieces = tuple(Piece(p["t_ms"], base64.b64decode(p["bytes_b64"])) for p in resp["pieces"])
        out[raw["name"]] = Recording(raw["name"], req["method"], req["path"], req["body"], pieces,
                                     resp["closed_at_ms"], resp["closed_by"])
    return out


def generation_route(rec: Recording) -> str | None:
    """The script a recording belongs to: STREAM, OAI_STREAM, OAI, GENERATE; None if not a generation."""
    if rec.method != "POST":
        return None
    if rec.path == OAI:
        return OAI_STREAM if isinstance(rec.body, dict) and rec.body.get("stream") else OAI
    return rec.path if rec.path in (STREAM, GENERATE) else None


def perf_after(name: str) -> str | None:
    """The perf recording taken after a generation, None if there is none (the killed stream):
    "stream-b-eos" -> "perf-after-stream-b", "oai-completions-stream-c" -> "perf-after-stream-c"."""
    if name.startswith("generate-"):
        return f"perf-after-{name}"
    # oai-completions-*-a had the prompt and seed of native stream case a
    case = name.rsplit("-", 1)[1] if name.startswith("oai-completions-") else name.split("-")[1]
    return None if case == "killed" else f"perf-after-stream-{case}"


def kobold_ids(tokens: list[int]) -> list[int]:
    """koboldcpp's tokencount ids for a text's tokens: BOS first, unless the text already starts
    with it (TokenizeString in its gpttype_adapter.cpp): [28120, 665] -> [1, 28120, 665], [1, 9690] -> [1, 9690]."""
    return tokens if tokens[:1] == [BOS] else [BOS, *tokens]


@dataclass
class Exchange:
    """One connection: the request, what answered it, and when each piece went out (time.monotonic())."""
    method: str = ""
    path: str = ""
    body: Any = None
    name: str = ""  # the recording served, or "tokencount (synthesised)" / "tokencount (not recorded)"
    pieces: int = 0  # how many the answer has
    read_at: float = 0.0  # when the request's last byte was read: the recordings' t_ms 0
    sent_at: list[float] = field(default_factory=list)
    closed_at: float | None = None
    error: str | None = None


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False  # server_close() joins only non-daemon connection threads
    block_on_close = True
    replay: KoboldReplay


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.replay._serve(self.request)

    def finish(self) -> None:
        pass  # _serve closes the socket itself, at the recorded time


class KoboldReplay:
    """A koboldcpp on 127.0.0.1 (a port of its own) answering from the recordings.

    script: recording names of generations, served in turn per path and cycled
    (each name belongs to the path it was recorded on; a path the script does
    not name keeps DEFAULT_SCRIPTS). tokenizer: text -> token ids without BOS,
    for tokencounts of texts not recorded. speed: the scale of the recorded
    delays (1.0 real time, 0 none). cut_after: end every generation's answer
    after that many pieces (the status line and headers are the first), with
    the clean close a killed koboldcpp gave.
    """

    def __init__(self, script: Sequence[str] | None = None, tokenizer: Callable[[str], list[int]] | None = None,
                 speed: float = 1.0, cut_after: int | None = None, folder: Path = RECORDINGS):
        if speed < 0:
            raise ValueError(f"speed must be >= 0, not {speed}")
        self.recordings = load_recordings(folder)
        self.tokenizer = tokenizer
        self.speed = speed
        self.cut_after = cut_after
        self.scripts = {route: list(names) for route, names in DEFAULT_SCRIPTS.items()}
        if script is not None:
            self.scripts.update(self._split(script))
        self.requests: list[tuple[str, str, Any]] = []
        self.served: list[str] = []  # generations only, in the order served
        self.unmatched: list[str] = []  # tokencount texts neither recorded nor tokenized
        self.connections: list[Exchange] = []
        self._turn = dict.fromkeys(self.scripts, 0)
        self._perf = "perf-after-stream-a"
        self._by_prompt = {r.body["prompt"]: r for r in self.recordings.values()
                           if r.method == "POST" and r.path == TOKENCOUNT}
        self._fixed = {(r.method, r.path): r for r in self.recordings.values()
                       if generation_route(r) is None and r.path not in (TOKENCOUNT, PERF)}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def _split(self, script: Sequence[str]) -> dict[str, list[str]]:
        routes: dict[str, list[str]] = {}
        for name in script:
            rec = self.recordings.get(name)
            route = generation_route(rec) if rec else None
            if route is None:
                gens = sorted(n for n, r in self.recordings.items() if generation_route(r))
                raise ValueError(f"{name!r} is not a recorded generation; the generations are: {', '.join(gens)}")
            routes.setdefault(route, []).append(name)
        return routes

    def __enter__(self) -> KoboldReplay:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.replay = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kobold-replay", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()  # wakes every connection waiting for its next piece
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            for sock in self._open:  # wakes a recv() waiting for a request that never comes
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()  # joins the connection threads
        if self._thread is not None:
            self._thread.join(timeout=5)

    # One connection: one request, one recorded answer, then close.

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(30)
        ex = Exchange()
        with self._lock:
            self._open.add(sock)
            self.connections.append(ex)
            stopping = self._stopping.is_set()  # else __exit__ has it in _open, to wake its recv()
        try:
            if stopping:
                ex.error = "the replay was stopping"
                return
            request = self._read_request(sock)
            if request is None:
                ex.error = "no whole request arrived"
                return
            ex.method, ex.path, raw = request
            ex.read_at = time.monotonic()
            try:
                ex.body = json.loads(raw) if raw else None
            except ValueError:
                ex.body = None
            with self._lock:
                self.requests.append((ex.method, ex.path, ex.body))
                ex.name, pieces, closed_at_ms = self._answer(ex.method, ex.path.split("?", 1)[0], ex.body, raw)
            ex.pieces = len(pieces)
            self._send(sock, ex, pieces, closed_at_ms)
        except (OSError, ValueError) as e:  # ValueError: not an HTTP request
            ex.error = f"{type(e).__name__}: {e}"
        finally:
            self._close(sock, ex)

    @staticmethod
    def _read_request(sock: socket.socket) -> tuple[str, str, bytes] | None:
        """(method, path, body) of one HTTP request; its body by Content-Length."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        for line in lines[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
        return method, path, body[:length]

    def _send(self, sock: socket.socket, ex: Exchange, pieces: Sequence[Piece], closed_at_ms: float) -> None:
        for piece in pieces:
            if self._wait(ex.read_at + piece.t_ms * self.speed / 1000):
                ex.error = "the replay was stopped mid-answer"
                return
            sock.sendall(piece.data)
            ex.sent_at.append(time.monotonic())
        self._wait(ex.read_at + closed_at_ms * self.speed / 1000)

    def _wait(self, deadline: float) -> bool:
        """Sleep until `deadline` (time.monotonic()); True if the replay is stopping."""
        left = deadline - time.monotonic()
        return self._stopping.wait(left) if left > 0 else self._stopping.is_set()

    def _close(self, sock: socket.socket, ex: Exchange) -> None:
        # A FIN, like koboldcpp's http.server (shutdown_request); whatever the client sent beyond
        # the request is read first, else close() would answer it with a reset.
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            while sock.recv(65536):
                pass
        except OSError:
            pass
        with self._lock:
            self._open.discard(sock)
        sock.close()
        ex.closed_at = time.monotonic()

    # Routing: (name, pieces, closed_at_ms) for a request; called with the lock held.

    def _answer(self, method: str, path: str, payload: Any, raw: bytes) -> tuple[str, Sequence[Piece], float]:
        if method == "POST" and path == TOKENCOUNT:
            return self._tokencount(payload, raw)
        route = OAI_STREAM if path == OAI and isinstance(payload, dict) and payload.get("stream") else path
        if method == "POST" and route in self.scripts:
            script = self.scripts[route]
            name = script[self._turn[route] % len(script)]
            self._turn[route] += 1
            self.served.append(name)
            self._perf = perf_after(name) or self._perf  # a killed koboldcpp never wrote a perf
            name, pieces, closed_at_ms = self._recorded(name)
            if self.cut_after is not None and self.cut_after < len(pieces):
                pieces = pieces[:self.cut_after]
                closed_at_ms = pieces[-1].t_ms if pieces else 0.0
            return name, pieces, closed_at_ms
        if method == "GET" and path == PERF:
            return self._recorded(self._perf)
        rec = self._fixed.get((method, path)) or self.recordings[NOT_FOUND]
        return self._recorded(rec.name)

    def _recorded(self, name: str) -> tuple[str, Sequence[Piece], float]:
        rec = self.recordings[name]
        return name, rec.pieces, rec.closed_at_ms

    def _tokencount(self, payload: Any, raw: bytes) -> tuple[str, Sequence[Piece], float]:
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt", ""), str):
            return self._error(f"tokencount: the body is not JSON with a prompt string: {raw[:200]!r}")
        text = payload.get("prompt", "")  # koboldcpp reads a missing prompt as ""
        if text in self._by_prompt:
            return self._recorded(self._by_prompt[text].name)
        if self.tokenizer is None:
            self.unmatched.append(text)
            return self._error(f"tokencount: this text is not in the koboldcpp-1.76 recordings and the replay "
                               f"has no tokenizer: {text[:200]!r}", name="tokencount (not recorded)")
        ids = kobold_ids(list(self.tokenizer(text)))
        return "tokencount (synthesised)", [Piece(0.0, synthesised_tokencount(self.recordings, ids))], 0.0

    @staticmethod
    def _error(message: str, name: str = "error (not recorded)") -> tuple[str, Sequence[Piece], float]:
        body = json.dumps({"error": message}).encode()
        head = ("HTTP/1.0 500 Internal Server Error\r\nServer: KoboldReplay (not a recording)\r\n"
                f"content-length: {len(body)}\r\ncontent-type: application/json\r\n\r\n")
        return name, [Piece(0.0, head.encode() + body)], 0.0


def synthesised_tokencount(recordings: dict[str, Recording], ids: list[int]) -> bytes:
    """A tokencount answer for `ids`, with the header lines of a recorded one and its length recomputed."""
    head, _ = recordings[TOKENCOUNT_TEMPLATE].response.split(b"\r\n\r\n", 1)
    body = json.dumps({"value": len(ids), "ids": ids}).encode()
    lines = [f"content-length: {len(body)}".encode() if line.lower().startswith(b"content-length:") else line
             for line in head.split(b"\r\n")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
