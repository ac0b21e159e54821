"""koboldcpp native streaming: `/api/extra/generate/stream`.

koboldcpp answers over HTTP/1.0 and a stream's body ends when it closes the
connection (about 200 ms after the last event): the base loop reads what has
arrived (`body_as_it_arrives`) and stops at the event that finishes.
Events are `event: message` + `data: {"token": ..., "finish_reason": ...}`,
several tokens' text merged into one event between its ~20 ms polls. The
not-finished value is JSON null or, in 1.76, the string "null"; the last
event carries the last text and the reason: "stop" for EOS (empty text),
"length" for the token limit and for a stop sequence alike. A stop sequence's
text is included, maybe inside a longer token (" Month!\\n")
(`echoes_stop`: the base loop cuts the text where the first stop string
begins, a "word" stop, and holds back a tail that may begin one).

The stream carries no token counts. A turn's count is the server's own,
`/api/extra/perf` `last_token_count` (the stop token and EOS counted, as
llama-server and vLLM count them), taken when its `last_seed` shows the last
generation was ours; otherwise the turn's text is counted with
`/api/extra/tokencount` the same way (its text, plus the stop string that
fired, plus 1 for EOS; the count's own BOS taken off).
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
    echoes_stop: bool = True
    unfinished: ClassVar[str] = "closed the stream without a finish_reason"
    seed_name: ClassVar[str] = "sampler_seed"   # where a request carries its seed
    _bos: int | None = None

    def probe(self) -> ServerInfo:
        model = self._json("GET", "/api/v1/model", timeout=10).get("result")
        self.info = ServerInfo(engine=self.kind, url=self.url, model=model, n_ctx=self.context(),
                               extra={"version": self.version()})
        return self.info

    def context(self) -> int | None:
        try:
            return self._json("GET", "/api/extra/true_max_context_length", timeout=10).get("value")
        except EngineError:
            return None

    def version(self) -> str | None:
        try:
            return self._json("GET", "/api/extra/version", timeout=10).get("version")
        except EngineError:
            return None

    def count_tokens(self, text: str) -> int:
        # The count includes BOS; prompts are sent the same way, so keep it.
        return self._json("POST", "/api/extra/tokencount", json={"prompt": text}).get("value")

    def turn_tokens(self, result: Completion, seed: Any) -> int:
        """The tokens generated for the turn just finished, counted as the server counts them."""
        try:
            perf = self._json("GET", "/api/extra/perf", timeout=10)
        except EngineError:
            perf = {}
        count = perf.get("last_token_count")
        if isinstance(seed, int) and seed >= 0 and perf.get("last_seed") == seed and isinstance(count, int):
            return count
        if self._bos is None:
            self._bos = self.count_tokens("")
        text = result.text + (result.stopping_word or "")
        counted = max(0, self.count_tokens(text) - self._bos) if text else 0
        return counted + (1 if result.stop == "eos" else 0)

    def finish(self, reason: Any, body: dict[str, Any], result: Completion) -> None:
        """Stop reason and counts from a finish_reason ("stop" | "length") and the text's cut."""
        if result.stopping_word is None:   # no stop string in the text
            result.stop = "eos" if reason == "stop" else "limit"
        result.tokens = self.turn_tokens(result, body.get(self.seed_name))
        result.prompt_tokens = self.count_tokens(body["prompt"])

    def _completion_request(self, prompt: str, params: Mapping[str, Any], max_tokens: int,
                            stop: list[str], slot: int | None, fresh: bool) -> tuple[str, dict[str, Any]]:
        body = {**params, "prompt": prompt, "max_length": max_tokens, "stop_sequence": stop,
                "genkey": f"parrot-{uuid.uuid4().hex[:12]}"}
        if self.info and self.info.n_ctx:
            body.setdefault("max_context_length", self.info.n_ctx)
        return "/api/extra/generate/stream", body

    def _read(self, obj: dict[str, Any], result: Completion) -> Chunk:
        # the last event carries both the last text and the reason: nothing follows it
        finished = obj.get("finish_reason") not in NOT_FINISHED
        return Chunk(pieces=[obj.get("token") or ""], finish=obj if finished else None, last=finished)

    def _complete(self, finish: dict[str, Any], body: dict[str, Any], result: Completion) -> None:
        self.finish(finish["finish_reason"], body, result)
