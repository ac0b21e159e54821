"""koboldcpp native streaming: `/api/extra/generate/stream`.

Events are `event: message` + `data: {"token": ..., "finish_reason": ...}`;
the connection closing ends the stream (no [DONE]). The not-finished value is
JSON null or, in 1.76, the string "null". A stop sequence is reported as
"length" and its text is included (`echoes_stop`: the base loop holds back a
tail that may begin a stop string and strips it at the end, a "word" stop).
The stream carries no token counts: they come from /api/extra/tokencount.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from broken_record.inference import samplers
from broken_record.inference.base import Chunk, Completion, Engine, EngineError, ServerInfo

NOT_FINISHED = (None, "null", "")


class KoboldCpp(Engine):
    kind: ClassVar[str] = "koboldcpp"
    sampler_names: Mapping[str, str | None] = samplers.spellings("koboldcpp")
    echoes_stop: ClassVar[bool] = True
    unfinished: ClassVar[str] = "closed the stream without a finish_reason"
    _bos: int | None = None

    def probe(self) -> ServerInfo:
        model = self._json("GET", "/api/v1/model", timeout=10).get("result")
        try:
            n_ctx = self._json("GET", "/api/extra/true_max_context_length", timeout=10).get("value")
        except EngineError:
            n_ctx = None
        try:
            version = self._json("GET", "/api/extra/version", timeout=10)
        except EngineError:
            version = {}
        self.info = ServerInfo(engine=self.kind, url=self.url, model=model, n_ctx=n_ctx,
                               extra={"version": version.get("version")})
        return self.info

    def count_tokens(self, text: str) -> int:
        # The count includes BOS; prompts are sent the same way, so keep it.
        return self._json("POST", "/api/extra/tokencount", json={"prompt": text}).get("value")

    def _generated_tokens(self, text: str) -> int:
        if self._bos is None:
            self._bos = self.count_tokens("")
        return max(0, self.count_tokens(text) - self._bos) if text else 0

    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        body = {**params, "prompt": prompt, "max_length": max_tokens, "stop_sequence": stop,
                "genkey": f"parrot-{uuid.uuid4().hex[:12]}"}
        if self.info and self.info.n_ctx:
            body.setdefault("max_context_length", self.info.n_ctx)
        return "/api/extra/generate/stream", body

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        # the last event carries both the last text and the reason; read on until the close
        finished = obj.get("finish_reason") not in NOT_FINISHED
        return Chunk(pieces=[obj.get("token") or ""], finish=obj if finished else None)

    def _complete(self, finish: dict[str, Any], prompt: str, result: Completion) -> None:
        if result.stopping_word is None:   # no stop string at the end of the text
            result.stop = "eos" if finish["finish_reason"] == "stop" else "limit"
        result.tokens = self._generated_tokens(result.text)
        result.prompt_tokens = self.count_tokens(prompt)
