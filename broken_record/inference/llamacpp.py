"""llama.cpp's llama-server, native `/completion` endpoint.

The final stream chunk carries `stop:true`, `stop_type` (eos/limit/word),
the token counts and the settings the server applied; there is no [DONE].
A request can be pinned to one of the server's slots (`id_slot`), so that
its cached prompt is not evicted by another conversation's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from broken_record.inference import samplers
from broken_record.inference.base import Chunk, Completion, Engine, ServerInfo

STOP_TYPES = ("eos", "limit", "word")


class LlamaServer(Engine):
    kind: ClassVar[str] = "llama-server"
    sampler_names: Mapping[str, str | None] = samplers.spellings("llama-server")
    pins_slots: ClassVar[bool] = True

    def probe(self) -> ServerInfo:
        props = self._json("GET", "/props", timeout=10)
        dgs = props.get("default_generation_settings") or {}
        self.info = ServerInfo(
            engine=self.kind, url=self.url,
            model=props.get("model_alias") or props.get("model_path"),
            n_ctx=dgs.get("n_ctx"), chat_template=props.get("chat_template"),
            settings=dgs.get("params", dgs),
            extra={"build_info": props.get("build_info"), "total_slots": props.get("total_slots")})
        return self.info

    def count_tokens(self, text: str) -> int:
        body = self._json("POST", "/tokenize", json={"content": text, "add_special": True,
                                                     "parse_special": True})
        return len(body.get("tokens", []))

    def apply_template(self, messages: list[dict[str, str]]) -> str:
        return self._json("POST", "/apply-template", json={"messages": messages})["prompt"]

    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        pinned = {} if slot is None else {"id_slot": slot}
        return "/completion", {**params, **pinned, "prompt": prompt, "n_predict": max_tokens,
                               "stream": True, "cache_prompt": not fresh, "stop": stop}

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        final = bool(obj.get("stop"))
        return Chunk(pieces=[obj.get("content") or ""], finish=obj if final else None, last=final)

    def _complete(self, finish: dict[str, Any], body: dict[str, Any], result: Completion) -> None:
        stop_type = finish.get("stop_type")
        if stop_type in STOP_TYPES:
            result.stop = str(stop_type)
        else:
            result.stop = "word" if finish.get("stopping_word") else "eos"
        result.stopping_word = finish.get("stopping_word") or None
        result.tokens = finish.get("tokens_predicted")
        # tokens_evaluated is the whole prompt; timings.cache_n the part of it
        # reused from the slot's cache (tokens_cached counts the generated text too)
        result.prompt_tokens = finish.get("tokens_evaluated")
        timings = finish.get("timings") or {}
        result.cached_tokens = timings.get("cache_n")
        result.server_prompt_ms = timings.get("prompt_ms")
        result.server_gen_ms = timings.get("predicted_ms")
        result.tokens_per_second = timings.get("predicted_per_second")
        result.settings = finish.get("generation_settings")
