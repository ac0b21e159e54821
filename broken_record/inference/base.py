"""The one streaming interface every engine adapter implements, and its streaming loop.

    stream = engine.stream(prompt, params, max_tokens=256, stop=["\\n"], slot=None)
    for piece in stream:          # text pieces as they arrive
        print(piece, end="")
    stream.result                 # Completion: text, tokens, stop reason, timings

The loop that reads a stream is written once, here (`Engine._generate`): it
times the request, posts it, parses each `data:` payload, raises the errors a
server reports inside the stream, notes the time to the first text, collects
the pieces, and raises ConnectionLost when the stream ends before the server
said how generation finished. An adapter (llamacpp.py, openai.py, kobold.py)
supplies only its wire format:

- `_completion_request`: the path and JSON body of one request;
- `_read`: one parsed event as a `Chunk` (its text pieces, and whether and
  how it finishes generation);
- `_complete`: the final Completion's stop reason, token counts and timings;

and the class attributes `stream_end` (a `data:` line that ends the stream,
OpenAI's `[DONE]`), `echoes_stop` (the streamed text includes the stop string
that fired, maybe inside a longer token: the text is cut where the first stop
string begins, and a tail that may begin one is held back; koboldcpp),
`pins_slots` (`slot` is honoured) and `unfinished` (the ConnectionLost text).
Sampler names come from samplers.py. Callers see only `Completion`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import requests
import urllib3
from sseclient import Event, SSEClient

from broken_record.errors import ParrotError, ServerError


class EngineError(ParrotError):
    """The server answered with an error for this request."""

    retryable = False


class ConnectionLost(EngineError):
    """The server could not be reached or dropped the stream: worth a retry."""

    retryable = True


class ContextOverflow(EngineError):
    """HTTP 400 exceed_context_size_error: the prompt does not fit."""


@dataclass
class Completion:
    text: str = ""
    tokens: int | None = None          # the server's count of generated tokens
    stop: str = "error"                # eos | limit | word | error
    stopping_word: str | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    ttft_ms: float | None = None       # client-side: request sent -> first text
    wall_ms: float | None = None       # client-side: request sent -> stream end
    server_prompt_ms: float | None = None
    server_gen_ms: float | None = None
    tokens_per_second: float | None = None
    settings: dict[str, Any] | None = None  # what the server says it applied
    malformed: int = 0                 # stream lines that did not parse
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServerInfo:
    engine: str
    url: str
    model: str | None = None
    n_ctx: int | None = None           # context budget per request (per slot)
    chat_template: str | None = None
    settings: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """What one parsed stream event says, as an adapter's `_read` finds it."""

    pieces: list[str] = field(default_factory=list)  # its text, in order ("" pieces are skipped)
    finish: dict[str, Any] | None = None  # the part of the event that says how generation ended
    last: bool = False                 # nothing after this event matters: stop reading


class Stream:
    """Iterate for text pieces; `result` holds the Completion once drained."""

    def __init__(self, pieces: Iterator[str], result: Completion):
        self._pieces = pieces
        self.result = result

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def text(self) -> str:
        for _ in self:
            pass
        return self.result.text


def error_message(resp: requests.Response) -> tuple[str, str | None, dict[str, Any]]:
    """(message, type, body) from an error response of any of the engines."""
    try:
        body = resp.json()
    except ValueError:
        return (resp.text.strip()[:300] or resp.reason), None, {}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", err)), err.get("type"), err
    if isinstance(err, str):
        return err, None, body
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return str(detail.get("msg", detail)), detail.get("type"), detail
    return json.dumps(body)[:300], None, body if isinstance(body, dict) else {}


class Engine:
    """Base adapter: HTTP plumbing and the streaming loop shared by the three wire formats."""

    kind: ClassVar[str] = "base"
    # canonical (llama-server) sampler name -> this engine's name, None: unsupported
    # (samplers.spellings); OpenAICompatible.probe replaces it for a llama-server backend
    sampler_names: Mapping[str, str | None] = MappingProxyType({})
    pins_slots: ClassVar[bool] = False        # stream(slot=...) runs the request in that slot
    stream_end: ClassVar[str | None] = None   # a data line that ends the stream: "[DONE]"
    echoes_stop: bool = False                 # the streamed text includes the stop string that fired
    unfinished: ClassVar[str] = "ended the stream before its final chunk"

    def __init__(self, url: str, timeout: float = 300.0, api_model: str | None = None,
                 role: str = "assistant"):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.api_model = api_model
        self.role = role
        self.session = requests.Session()
        self.info: ServerInfo | None = None
        self._active: requests.Response | None = None   # the stream being read, for abort()
        self._stale = False   # abort() closed a connection under the session: start a fresh one

    # -- plumbing ---------------------------------------------------------
    def _request(self, method: str, path: str, timeout: float | None = None, **kw: Any) -> requests.Response:
        if self._stale:
            # The aborted stream's socket may have gone back to the pool half shut: a request
            # on it fails (ResponseNotReady). A new session has no such connection.
            self._stale = False
            old, self.session = self.session, requests.Session()
            old.close()
        try:
            return self.session.request(method, self.url + path,
                                        timeout=timeout or self.timeout, **kw)
        except requests.RequestException as err:
            raise ConnectionLost(f"{self.role} server {self.url} unreachable "
                                 f"({type(err).__name__}): start it or fix the URL")

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._request(method, path, **kw)
        if resp.status_code != 200:
            msg, _, _ = error_message(resp)
            raise EngineError(f"{self.role} server {self.url}{path}: HTTP {resp.status_code}: {msg}")
        try:
            return resp.json()
        except ValueError:
            raise EngineError(f"{self.role} server {self.url}{path}: answer is not JSON")

    def probe_json(self, path: str, timeout: float = 10.0) -> dict[str, Any] | None:
        """The JSON object a probe's GET `path` answers with HTTP 200, None for any other
        answer; ConnectionLost when nothing answers."""
        resp = self._request("GET", path, timeout=timeout)
        try:
            body = resp.json() if resp.status_code == 200 else None
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def native_kind(self, timeout: float = 10.0) -> str | None:
        """"koboldcpp" or "llama-server" when this URL serves that server's own API, else None:
        koboldcpp answers /api/extra/version with "KoboldCpp", llama-server /props with its
        default_generation_settings."""
        if "KoboldCpp" in str((self.probe_json("/api/extra/version", timeout) or {}).get("result", "")):
            return "koboldcpp"
        if "default_generation_settings" in (self.probe_json("/props", timeout) or {}):
            return "llama-server"
        return None

    def _post_stream(self, path: str, body: dict[str, Any]) -> requests.Response:
        resp = self._request("POST", path, json=body, stream=True)
        if resp.status_code != 200:
            msg, etype, err = error_message(resp)
            resp.close()
            if etype == "exceed_context_size_error":
                raise ContextOverflow(
                    f"{self.role} prompt of {err.get('n_prompt_tokens', '?')} tokens exceeds the "
                    f"context of {err.get('n_ctx', '?')} tokens at {self.url}")
            if err.get("param") == "input_tokens" and "context length" in msg:
                # vLLM: HTTP 400 BadRequestError before any stream, "This model's maximum context length..."
                raise ContextOverflow(f"{self.role} prompt exceeds the context at {self.url}: {msg}")
            exc = EngineError(f"{self.role} server {self.url}{path}: HTTP {resp.status_code}: {msg}")
            exc.retryable = resp.status_code >= 500
            raise exc
        return resp

    def events(self, resp: requests.Response) -> Iterator[Event]:
        """SSE events from a streamed response; a dropped connection -> ConnectionLost."""
        client = SSEClient(body_as_it_arrives(resp))
        self._active = resp
        try:
            yield from client.events()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                AttributeError, ValueError) as err:
            # AttributeError/ValueError: the response was closed under us by abort()
            raise ConnectionLost(f"{self.role} server {self.url} dropped the stream before its end "
                                 f"({type(err).__name__})")
        finally:
            self._active = None
            resp.close()

    def abort(self) -> None:
        """Close the stream in flight (from another thread): its reader stops at once."""
        resp = self._active
        if resp is not None:
            self._stale = True   # before the shutdown, so the reader's next request already sees it
            conn = getattr(resp.raw, "connection", None)
            sock = getattr(conn, "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)   # wakes a read blocked in another thread
            except OSError:
                pass
            resp.close()

    # -- the interface ----------------------------------------------------
    def probe(self) -> ServerInfo:
        raise NotImplementedError

    def translate(self, sampler: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Sampler settings in this engine's names, and the names it cannot honour."""
        params: dict[str, Any] = {}
        dropped: list[str] = []
        for name, value in sampler.items():
            target = self.sampler_names.get(name)
            if target is None:
                dropped.append(name)
                continue
            *outer, leaf = target.split(".")   # "structured_outputs.regex" nests
            into = params
            for key in outer:
                into = into.setdefault(key, {})
            into[leaf] = value
        return params, dropped

    def count_tokens(self, text: str) -> int | None:
        raise NotImplementedError

    def stream_error(self, obj: dict[str, Any], result: Completion) -> EngineError | None:
        """The error an in-stream `data: {"error": ...}` chunk reports, if it is one.

        llama-server and vLLM send {"error": {...}} (vLLM also {"object": "error", ...}),
        koboldcpp {"detail": {"msg": ...}}.
        """
        if "error" in obj:
            err = obj["error"]
        elif "detail" in obj:
            err = obj["detail"]
        elif obj.get("object") == "error":
            err = obj
        else:
            return None
        if isinstance(err, dict):
            msg = err.get("message", err.get("msg", err))
            etype = err.get("type")
        else:
            msg, etype = err, None
        result.error = str(msg)
        cls = ContextOverflow if etype == "exceed_context_size_error" else EngineError
        return cls(f"{self.role} server {self.url}: {msg}")

    def stream(self, prompt: str, params: Mapping[str, Any], max_tokens: int, stop: list[str],
               slot: int | None = None, fresh: bool = False) -> Stream:
        """Generate from `prompt` with `params` (this engine's names: `translate`).

        Nothing is sent until the stream is iterated. `slot`: the server slot to
        run the request in, so that its cached prompt stays there; only engines
        with `pins_slots` (llama-server) honour it, the others ignore it.
        `fresh`: compute the whole prompt, reusing nothing a slot has cached
        (llama-server), as a server that just started would: a conversation's
        first turn then comes out the same whatever the slot held before.
        """
        result = Completion()
        return Stream(self._generate(prompt, params, max_tokens, stop, slot, fresh, result), result)

    # -- what each adapter supplies -------------------------------------------
    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        """The path and JSON body of one streamed completion request."""
        raise NotImplementedError

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        """One parsed event: its text, and whether and how it ends generation.

        Counts that arrive mid-stream (OpenAI's usage chunk) may go into `result`.
        """
        raise NotImplementedError

    def _complete(self, finish: dict[str, Any], body: dict[str, Any], result: Completion) -> None:
        """Fill in the stop reason, token counts and timings once the stream has ended.

        `finish`: the last `Chunk.finish`; `body`: the request sent; `result.text` is set (and, with
        `echoes_stop`, the text is cut where the first stop string begins, and
        that string is in `result.stopping_word`, with `result.stop` = "word").
        """
        raise NotImplementedError

    # -- the streaming loop ---------------------------------------------------
    def _generate(self, prompt: str, params: Mapping[str, Any], max_tokens: int, stop: list[str],
                  slot: int | None, fresh: bool, result: Completion) -> Iterator[str]:
        path, body = self._completion_request(prompt, params, max_tokens, stop, slot, fresh)
        t0 = clock()
        resp = self._post_stream(path, body)
        received = ""   # all the text the server sent
        shown = 0       # how much of it has been yielded
        cut: tuple[int, str] | None = None   # echoes_stop: where the first stop string begins, and it
        finish: dict[str, Any] | None = None
        ended = False   # the stream_end line came
        for event in self.events(resp):
            if self.stream_end is not None and event.data.strip() == self.stream_end:
                ended = True
                break
            obj = parse_data(event.data, result)
            if obj is None:
                continue
            error = self.stream_error(obj, result)
            if error:
                raise error
            chunk = self._read(obj, result)
            for piece in chunk.pieces:
                if not piece:
                    continue
                if result.ttft_ms is None:
                    result.ttft_ms = clock() - t0
                received += piece
                if cut is not None:
                    continue
                safe = len(received)
                if self.echoes_stop:
                    # a stop string may arrive inside a piece ("!\n" or "\n\n" in one token)
                    # or across pieces: show only what is before it, and hold back
                    # a tail that may begin one until the next piece says
                    cut = first_stop(received, stop, since=max(0, shown - longest(stop)))
                    safe = cut[0] if cut else len(received) - held_tail(received, stop)
                if safe > shown:
                    yield received[shown:safe]
                    shown = safe
            if chunk.finish is not None:
                finish = chunk.finish
            if chunk.last:
                break
        result.wall_ms = clock() - t0
        text, word = received, None
        if cut is not None:
            text, word = received[: cut[0]], cut[1]
        elif len(received) > shown:
            yield received[shown:]   # a held tail that did not become a stop string
        result.text = text
        if finish is None:
            missing = "" if ended or self.stream_end is None else f" or {self.stream_end}"
            raise ConnectionLost(f"{self.role} server {self.url} {self.unfinished}{missing}")
        if word is not None:
            result.stop, result.stopping_word = "word", word
        self._complete(finish, body, result)


def body_as_it_arrives(resp: requests.Response) -> Iterator[bytes]:
    """A streamed body's bytes as they arrive, whatever its framing.

    A chunked body (llama-server, vLLM) comes chunk by chunk. A body that
    ends when the server closes the connection (koboldcpp: HTTP/1.0, neither
    Content-Length nor chunked encoding) must be read with `read1`, which
    returns what has arrived: `iter_content(chunk_size=None)` reads such a
    body to its end before giving any of it, and a stream then arrives in one
    piece when generation is over.
    """
    raw = resp.raw
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(None, decode_content=True)
        return
    while True:
        data = raw.read1(65536)
        if not data:
            return
        yield data


def parse_data(data: str, result: Completion) -> dict[str, Any] | None:
    """One `data:` payload as JSON, or None (counted) when it does not parse."""
    try:
        obj = json.loads(data)
    except ValueError:
        result.malformed += 1
        return None
    if not isinstance(obj, dict):
        result.malformed += 1
        return None
    return obj


def clock() -> float:
    return time.perf_counter() * 1000.0


def longest(stop: list[str]) -> int:
    return max((len(s) for s in stop), default=0)


def first_stop(text: str, stop: list[str], since: int = 0) -> tuple[int, str] | None:
    """Where the first stop string in `text` (from `since` on) begins, and which:
    (" Hi!\n\nOh", ["\n"]) -> (4, "\n"). Of two starting at the same place, the longer."""
    best: tuple[int, str] | None = None
    for s in stop:
        if not s:
            continue
        at = text.find(s, since)
        if at >= 0 and (best is None or at < best[0] or (at == best[0] and len(s) > len(best[1]))):
            best = (at, s)
    return best


def held_tail(text: str, stop: list[str]) -> int:
    """How many characters at the end of `text` could begin a stop string: ("Hi\n", ["\n\n"]) -> 1."""
    keep = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return keep


def unreachable(role: str, url: str) -> ServerError:
    return ServerError(f"{role} server {url} is unreachable: start it, fix api_url/user_api_url, "
                       f"or remove the key to use the embedded llama-server")
