"""OpenAI-compatible `/v1/completions`: vLLM, aphrodite-engine, tabbyAPI, llama-server.

Chunks carry `choices[0].text` and `finish_reason` ("stop" | "length");
vLLM adds `stop_reason` (null = EOS, a string = the stop string that fired).
Usage comes in a last chunk with `choices: []` (stream_options.include_usage),
then `data: [DONE]`. vLLM's `max_tokens` defaults to 16: always sent.
The `slot` of `stream` is not sent, even to a llama-server backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from broken_record.inference import samplers
from broken_record.inference.base import Chunk, Completion, Engine, EngineError, ServerInfo
from broken_record.inference.llamacpp import LlamaServer


class OpenAICompatible(Engine):
    kind: ClassVar[str] = "openai"
    sampler_names: Mapping[str, str | None] = samplers.spellings("openai")
    stream_end: ClassVar[str | None] = "[DONE]"
    unfinished: ClassVar[str] = "ended the stream without a finish_reason"

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
        # llama-server behind its OpenAI endpoint: it takes native sampler names
        # and tells us its context and template.
        try:
            native = LlamaServer(self.url, timeout=10, role=self.role).probe()
        except EngineError:
            native = None
        if native:
            self.sampler_names = MappingProxyType({**samplers.spellings("openai"),
                                                   **samplers.spellings("llama-server")})
            self.info.n_ctx = self.info.n_ctx or native.n_ctx
            self.info.chat_template = native.chat_template
            self.info.extra["backend"] = "llama-server"
        return self.info

    def count_tokens(self, text: str) -> int | None:
        # vLLM and aphrodite: /tokenize {model, prompt}; llama-server: {content}
        try:
            body = self._json("POST", "/tokenize",
                              json={"model": self.api_model, "prompt": text, "content": text})
        except EngineError:
            return None
        if "count" in body:
            return body["count"]
        return len(body.get("tokens", [])) if "tokens" in body else None

    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        return "/v1/completions", {**params, "model": self.api_model, "prompt": prompt,
                                   "max_tokens": max_tokens, "stream": True, "stop": stop,
                                   "stream_options": {"include_usage": True}}

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        chunk = Chunk()
        for choice in obj.get("choices") or []:
            piece = choice.get("text")
            if piece is None:
                piece = (choice.get("delta") or {}).get("content") or ""
            chunk.pieces.append(piece)
            if choice.get("finish_reason"):
                chunk.finish = choice
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

    def _complete(self, finish: dict[str, Any], prompt: str, result: Completion) -> None:
        stop_reason = finish.get("stop_reason")
        if finish["finish_reason"] == "length":
            result.stop = "limit"
        elif isinstance(stop_reason, str):
            result.stop, result.stopping_word = "word", stop_reason
        else:
            # finish_reason "stop" without stop_reason means EOS on vLLM; servers that
            # omit stop_reason cannot tell EOS from a stop string.
            result.stop = "eos"
