"""The one streaming interface every engine adapter implements.

    stream = engine.stream(prompt, params, max_tokens=256, stop=["\\n"])
    for piece in stream:          # text pieces as they arrive
        print(piece, end="")
    stream.result                 # Completion: text, tokens, stop reason, timings

Adapters keep wire details to themselves; callers see only `Completion`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from sseclient import SSEClient

from broken_record.errors import ParrotError, ServerError

STOP_REASONS = ("eos", "limit", "word", "error")


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
    settings: dict | None = None       # what the server says it applied
    malformed: int = 0                 # stream lines that did not parse
    error: str | None = None

    def as_record(self) -> dict:
        return asdict(self)


@dataclass
class ServerInfo:
    engine: str
    url: str
    model: str | None = None
    n_ctx: int | None = None           # context budget per request (per slot)
    chat_template: str | None = None
    settings: dict | None = None
    extra: dict = field(default_factory=dict)


class Stream:
    """Iterate for text pieces; `result` holds the Completion once drained."""

    def __init__(self, pieces: Iterator[str], result: Completion):
        self._pieces = pieces
        self.result = result

    def __iter__(self):
        return self._pieces

    def text(self) -> str:
        for _ in self:
            pass
        return self.result.text


def error_message(resp: requests.Response) -> tuple[str, str | None, dict]:
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
    """Base adapter: HTTP plumbing shared by the three wire formats."""

    kind = "base"
    # canonical (llama-server) sampler name -> this engine's name; None: unsupported
    sampler_names: dict[str, str | None] = {}

    def __init__(self, url: str, timeout: float = 300.0, api_model: str | None = None,
                 role: str = "assistant"):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.api_model = api_model
        self.role = role
        self.session = requests.Session()
        self.info: ServerInfo | None = None
        self._active: requests.Response | None = None   # the stream being read, for abort()

    # -- plumbing ---------------------------------------------------------
    def _request(self, method: str, path: str, timeout: float | None = None, **kw) -> requests.Response:
        try:
            return self.session.request(method, self.url + path,
                                        timeout=timeout or self.timeout, **kw)
        except requests.RequestException as err:
            raise ConnectionLost(f"{self.role} server {self.url} unreachable "
                                 f"({type(err).__name__}): start it or fix the URL")

    def _json(self, method: str, path: str, **kw) -> Any:
        resp = self._request(method, path, **kw)
        if resp.status_code != 200:
            msg, _, _ = error_message(resp)
            raise EngineError(f"{self.role} server {self.url}{path}: HTTP {resp.status_code}: {msg}")
        try:
            return resp.json()
        except ValueError:
            raise EngineError(f"{self.role} server {self.url}{path}: answer is not JSON")

    def _post_stream(self, path: str, body: dict) -> requests.Response:
        resp = self._request("POST", path, json=body, stream=True)
        if resp.status_code != 200:
            msg, etype, err = error_message(resp)
            resp.close()
            if etype == "exceed_context_size_error":
                raise ContextOverflow(
                    f"{self.role} prompt of {err.get('n_prompt_tokens', '?')} tokens exceeds the "
                    f"context of {err.get('n_ctx', '?')} tokens at {self.url}")
            exc = EngineError(f"{self.role} server {self.url}{path}: HTTP {resp.status_code}: {msg}")
            exc.retryable = resp.status_code >= 500
            raise exc
        return resp

    def events(self, resp: requests.Response):
        """SSE events from a streamed response; a dropped connection -> ConnectionLost."""
        client = SSEClient(resp.iter_content(chunk_size=None))
        self._active = resp
        try:
            yield from client.events()
        except (requests.RequestException, ConnectionError, AttributeError, ValueError) as err:
            # AttributeError/ValueError: the response was closed under us by abort()
            raise ConnectionLost(f"stream dropped ({type(err).__name__})")
        finally:
            self._active = None
            resp.close()

    def abort(self) -> None:
        """Close the stream in flight (from another thread): its reader stops at once."""
        resp = self._active
        if resp is not None:
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

    def translate(self, sampler: dict) -> tuple[dict, list[str]]:
        """Sampler settings in this engine's names, and the names it cannot honour."""
        params, dropped = {}, []
        for name, value in sampler.items():
            target = self.sampler_names.get(name, name if name in self.sampler_names else None)
            if target is None:
                dropped.append(name)
            else:
                params[target] = value
        return params, dropped

    def count_tokens(self, text: str) -> int | None:
        raise NotImplementedError

    def stream_error(self, obj: dict, result: Completion) -> EngineError | None:
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

    def stream(self, prompt: str, params: dict, max_tokens: int, stop: list[str]) -> Stream:
        result = Completion()
        return Stream(self._generate(prompt, params, max_tokens, stop, result), result)

    def _generate(self, prompt, params, max_tokens, stop, result: Completion) -> Iterator[str]:
        raise NotImplementedError
        yield  # pragma: no cover


def parse_data(data: str, result: Completion) -> dict | None:
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


def strip_stop(text: str, stop: list[str]) -> tuple[str, str | None]:
    """Remove a trailing stop string: ("Hi\\n", ["\\n"]) -> ("Hi", "\\n")."""
    for s in stop:
        if s and text.endswith(s):
            return text[: -len(s)], s
    return text, None


def unreachable(role: str, url: str) -> ServerError:
    return ServerError(f"{role} server {url} is unreachable: start it, fix api_url/user_api_url, "
                       f"or remove the key to use the embedded llama-server")
