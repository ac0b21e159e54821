"""OpenAI-compatible `/v1/completions`: vLLM, aphrodite-engine, tabbyAPI, llama-server, koboldcpp.

Chunks carry `choices[0].text` and `finish_reason` ("stop" | "length"; JSON
null, or koboldcpp's string "null", until the end); vLLM adds `stop_reason`
(null = EOS, a string = the stop string that fired). Usage comes in a last
chunk with `choices: []` (stream_options.include_usage), then `data: [DONE]`.
vLLM's `max_tokens` defaults to 16: always sent.

An OpenAI-compatible server is not one dialect. `probe` finds out which
server is behind `/v1` (`backend`): koboldcpp answers `/api/extra/version`,
llama-server `/props`, vLLM lists `owned_by: "vllm"` in `/v1/models`; each
gets its own sampler names (samplers.py) and its own way to the facts the
stream leaves out:

- llama-server says "stop" for EOS and a stop string alike: the request asks
  for `logprobs: 1`, and the last token's text (empty for EOS) tells them apart.
- koboldcpp says "length" for the limit and a stop string alike, keeps the
  stop string in the text (`echoes_stop`), sends no usage (not even with
  include_usage) and no context length: its native endpoints count the
  tokens and give the context (kobold.py).
- Any other server: the "openai" names (aphrodite-engine's), and a turn's
  tokens from the usage chunk or `/tokenize`; without either the turn fails
  with an error rather than count 0.

The `slot` of `stream` is not sent, even to a llama-server backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from broken_record.inference import samplers
from broken_record.inference.base import Chunk, Completion, Engine, EngineError, ServerInfo
from broken_record.inference.kobold import NOT_FINISHED, KoboldCpp
from broken_record.inference.llamacpp import LlamaServer


class KoboldV1(KoboldCpp):
    """koboldcpp's native endpoints, for what its `/v1` does not say: a request there carries `seed`."""

    seed_name: ClassVar[str] = "seed"


class OpenAICompatible(Engine):
    kind: ClassVar[str] = "openai"
    sampler_names: Mapping[str, str | None] = samplers.spellings("openai")
    stream_end: ClassVar[str | None] = "[DONE]"
    unfinished: ClassVar[str] = "ended the stream without a finish_reason"
    backend: str | None = None            # which server is behind /v1: llama-server, vllm, koboldcpp; None: not known
    native: Engine | None = None          # its native adapter, for counts and context
    _last_token: dict[str, Any] | None = None   # the last logprobs entry of the stream being read

    def probe(self) -> ServerInfo:
        models = self._json("GET", "/v1/models", timeout=10)
        data = models.get("data") or []
        if not data and not self.api_model:
            raise EngineError(f"{self.role} server {self.url}/v1/models lists no model: "
                              f"set api_model in the config")
        first = data[0] if data else {}
        if not self.api_model:
            self.api_model = first.get("id")
        entry = next((m for m in data if m.get("id") == self.api_model), first)
        self.info = ServerInfo(engine=self.kind, url=self.url, model=self.api_model,
                               n_ctx=entry.get("max_model_len"))
        self._identify(entry)
        return self.info

    def _identify(self, entry: dict[str, Any]) -> None:
        """Find the server behind /v1 and take its dialect."""
        assert self.info is not None
        kind = self.native_kind()
        if kind == "koboldcpp":
            kobold = KoboldV1(self.url, timeout=10, role=self.role)
            self.backend, self.native, dialect = "koboldcpp", kobold, "koboldcpp-v1"
            self.echoes_stop = True   # this server's text keeps the stop string
            self.info.n_ctx = self.info.n_ctx or kobold.context()
            self.info.extra["version"] = kobold.version()
        elif kind == "llama-server":
            llama = LlamaServer(self.url, timeout=10, role=self.role)
            native = llama.probe()
            self.backend, self.native, dialect = "llama-server", llama, "llama-server"
            self.info.n_ctx = self.info.n_ctx or native.n_ctx
            self.info.chat_template = native.chat_template
        elif entry.get("owned_by") == "vllm":
            self.backend, dialect = "vllm", "vllm"
            self.info.extra["version"] = (self.probe_json("/version") or {}).get("version")
        else:
            self.backend, dialect = None, "openai"
        self.sampler_names = samplers.spellings(dialect)
        self.info.extra["backend"] = self.backend or "unidentified"

    def count_tokens(self, text: str) -> int | None:
        if self.native is not None:
            return self.native.count_tokens(text)
        # vLLM and aphrodite: /tokenize {model, prompt}
        try:
            body = self._json("POST", "/tokenize", json={"model": self.api_model, "prompt": text})
        except EngineError:
            return None
        if "count" in body:
            return body["count"]
        return len(body.get("tokens", [])) if "tokens" in body else None

    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        self._last_token = None
        body = {**params, "model": self.api_model, "prompt": prompt, "max_tokens": max_tokens,
                "stream": True, "stop": stop, "stream_options": {"include_usage": True}}
        if self.backend == "llama-server":
            # the last token's logprobs entry tells EOS (empty text) from a stop string
            body["logprobs"] = max(1, int(body.get("logprobs") or 1))
        return "/v1/completions", body

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        chunk = Chunk()
        for choice in obj.get("choices") or []:
            piece = choice.get("text")
            if piece is None:
                piece = (choice.get("delta") or {}).get("content") or ""
            chunk.pieces.append(piece)
            logprobs = choice.get("logprobs") or {}
            if isinstance(logprobs, dict) and logprobs.get("content"):
                self._last_token = logprobs["content"][-1]
            if choice.get("finish_reason") not in NOT_FINISHED:
                chunk.finish = choice
                # koboldcpp sends nothing that matters after it ([DONE], unterminated, at the close)
                chunk.last = self.backend == "koboldcpp"
        usage = obj.get("usage")
        if usage:
            result.tokens = usage.get("completion_tokens")
            result.prompt_tokens = usage.get("prompt_tokens")
            details = usage.get("prompt_tokens_details") or {}
            if details.get("cached_tokens") is not None:
                result.cached_tokens = details["cached_tokens"]
        timings = obj.get("timings")
        if timings:
            result.server_prompt_ms = timings.get("prompt_ms")
            result.server_gen_ms = timings.get("predicted_ms")
            result.tokens_per_second = timings.get("predicted_per_second")
            if result.cached_tokens is None and "cache_n" in timings:
                result.cached_tokens = timings["cache_n"]
        return chunk

    def _complete(self, finish: dict[str, Any], body: dict[str, Any], result: Completion) -> None:
        reason = finish["finish_reason"]
        stop_reason = finish.get("stop_reason")
        if isinstance(self.native, KoboldCpp):
            self.native.finish(reason, body, result)
            return
        if result.stopping_word is not None:
            pass
        elif reason == "length":
            result.stop = "limit"
        elif isinstance(stop_reason, str):
            result.stop, result.stopping_word = "word", stop_reason
        elif self.backend == "llama-server":
            result.stop, result.stopping_word = self._llama_stop(body.get("stop") or [])
        else:
            # finish_reason "stop" without stop_reason means EOS on vLLM; other servers
            # that omit stop_reason cannot tell EOS from a stop string.
            result.stop = "eos"
        if result.tokens is None:
            counted = self.count_tokens(result.text + (result.stopping_word or ""))
            if counted is None:
                raise EngineError(
                    f"{self.role} server {self.url} gives no token count for a turn (no usage in its "
                    f"stream, no /tokenize): set \"engine\" to its native API, or use another server")
            result.tokens = counted + (1 if result.stop == "eos" else 0)

    def _llama_stop(self, stop: list[str]) -> tuple[str, str | None]:
        """llama-server's /v1 "stop": the last token's text is empty for EOS, a stop string's end else.

        Observed: ``{"id": 198, "token": "", "bytes": [], "top_logprobs": [{"id": 198, "token": "\\n",
        "bytes": [10]}]}`` for a stop on "\\n"; ``{"id": 2, "token": "", "bytes": [], ...}`` (the same
        in top_logprobs) for EOS."""
        token = self._last_token or {}
        # the entry's own text is blanked for a stop string; its top_logprobs entry of the same id keeps it
        same = next((t for t in token.get("top_logprobs") or [] if t.get("id") == token.get("id")), token)
        text = bytes(same.get("bytes") or []).decode("utf-8", "replace") or same.get("token") or ""
        if not text:
            return "eos", None
        word = next((s for s in stop if s and (s.endswith(text) or text in s or s in text)), None)
        return "word", word or (stop[0] if stop else None)
