"""OpenAI-compatible `/v1/completions`: vLLM, aphrodite-engine, tabbyAPI, llama-server.

Chunks carry `choices[0].text` and `finish_reason` ("stop" | "length");
vLLM adds `stop_reason` (null = EOS, a string = the stop string that fired).
Usage comes in a last chunk with `choices: []` (stream_options.include_usage),
then `data: [DONE]`. vLLM's `max_tokens` defaults to 16: always sent.
"""

from __future__ import annotations

from broken_record.inference.base import Completion, ConnectionLost, Engine, EngineError, ServerInfo, clock, parse_data
from broken_record.inference.llamacpp import LlamaServer

OPENAI_NAMES = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
    "typical_p": "typical_p", "repeat_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "seed": "seed", "ignore_eos": "ignore_eos", "logit_bias": "logit_bias",
    "xtc_threshold": "xtc_threshold", "xtc_probability": "xtc_probability",
    "top_a": "top_a", "tfs": "tfs",
    "dry_multiplier": "dry_multiplier", "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length", "dry_sequence_breakers": "dry_sequence_breakers",
    "guided_regex": "guided_regex", "guided_grammar": "guided_grammar", "guided_json": "guided_json",
    "grammar": "guided_grammar", "json_schema": "guided_json",
    "repeat_last_n": None, "dry_penalty_last_n": "dry_range", "mirostat": None,
    "mirostat_tau": None, "mirostat_eta": None, "samplers": None, "n_probs": "logprobs",
    "n_cache_reuse": None,
}


class OpenAICompatible(Engine):
    kind = "openai"
    sampler_names = OPENAI_NAMES

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
            self.sampler_names = {**OPENAI_NAMES, **LlamaServer.sampler_names}
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

    def _generate(self, prompt, params, max_tokens, stop, result: Completion):
        body = {**params, "model": self.api_model, "prompt": prompt, "max_tokens": max_tokens,
                "stream": True, "stop": stop, "stream_options": {"include_usage": True}}
        t0 = clock()
        resp = self._post_stream("/v1/completions", body)
        pieces: list[str] = []
        finish = stop_reason = None
        done = False
        for event in self.events(resp):
            if event.data.strip() == "[DONE]":
                done = True
                break
            obj = parse_data(event.data, result)
            if obj is None:
                continue
            error = self.stream_error(obj, result)
            if error:
                raise error
            for choice in obj.get("choices") or []:
                piece = choice.get("text")
                if piece is None:
                    piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    if result.ttft_ms is None:
                        result.ttft_ms = clock() - t0
                    pieces.append(piece)
                    yield piece
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    stop_reason = choice.get("stop_reason")
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
        result.wall_ms = clock() - t0
        result.text = "".join(pieces)
        if finish is None:
            raise ConnectionLost(f"{self.role} server {self.url} ended the stream without a finish_reason"
                                 + ("" if done else " or [DONE]"))
        if finish == "length":
            result.stop = "limit"
        elif isinstance(stop_reason, str):
            result.stop, result.stopping_word = "word", stop_reason
        else:
            # finish_reason "stop" without stop_reason means EOS on vLLM; servers that
            # omit stop_reason cannot tell EOS from a stop string.
            result.stop = "eos"
