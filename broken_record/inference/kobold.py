"""koboldcpp native streaming: `/api/extra/generate/stream`.

Events are `event: message` + `data: {"token": ..., "finish_reason": ...}`;
the connection closing ends the stream (no [DONE]). The not-finished value is
JSON null or, in 1.76, the string "null". A stop sequence is reported as
"length" and its text is included: strip it and call it a "word" stop.
The stream carries no token counts: they come from /api/extra/tokencount.
"""

from __future__ import annotations

import uuid

from broken_record.inference.base import (
    Completion,
    ConnectionLost,
    Engine,
    EngineError,
    ServerInfo,
    clock,
    parse_data,
    strip_stop,
)

KOBOLD_NAMES = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
    "typical_p": "typical", "repeat_penalty": "rep_pen", "repeat_last_n": "rep_pen_range",
    "presence_penalty": "presence_penalty", "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base", "dry_allowed_length": "dry_allowed_length",
    "dry_penalty_last_n": "dry_penalty_last_n", "dry_sequence_breakers": "dry_sequence_breakers",
    "xtc_threshold": "xtc_threshold", "xtc_probability": "xtc_probability",
    "seed": "sampler_seed", "grammar": "grammar", "guided_grammar": "grammar",
    "logit_bias": "logit_bias", "ignore_eos": "ban_eos_token", "top_a": "top_a", "tfs": "tfs",
    "mirostat": "mirostat", "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta",
    "frequency_penalty": None, "json_schema": None, "guided_json": None, "guided_regex": None,
    "samplers": None, "n_probs": None, "n_cache_reuse": None,
}


class KoboldCpp(Engine):
    kind = "koboldcpp"
    sampler_names = KOBOLD_NAMES
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

    def _generate(self, prompt, params, max_tokens, stop, result: Completion):
        body = {**params, "prompt": prompt, "max_length": max_tokens, "stop_sequence": stop,
                "genkey": f"parrot-{uuid.uuid4().hex[:12]}"}
        if self.info and self.info.n_ctx:
            body.setdefault("max_context_length", self.info.n_ctx)
        t0 = clock()
        resp = self._post_stream("/api/extra/generate/stream", body)
        pieces: list[str] = []
        finish = None
        held = ""  # text that may be the start of a stop string: shown once it is not
        for event in self.events(resp):
            obj = parse_data(event.data, result)
            if obj is None:
                continue
            error = self.stream_error(obj, result)
            if error:
                raise error
            piece = obj.get("token") or ""
            if piece:
                if result.ttft_ms is None:
                    result.ttft_ms = clock() - t0
                pieces.append(piece)
                held += piece
                shown, held = _split_held(held, stop)
                if shown:
                    yield shown
            reason = obj.get("finish_reason")
            if reason not in (None, "null", ""):
                finish = reason
        result.wall_ms = clock() - t0
        text, word = strip_stop("".join(pieces), stop)
        tail, _ = strip_stop(held, stop)
        if tail:
            yield tail
        result.text = text
        if finish is None:
            raise ConnectionLost(f"{self.role} server {self.url} closed the stream without a finish_reason")
        if word is not None:
            result.stop, result.stopping_word = "word", word
        else:
            result.stop = "eos" if finish == "stop" else "limit"
        result.tokens = self._generated_tokens(text)
        result.prompt_tokens = self.count_tokens(prompt)


def _split_held(held: str, stop: list[str]) -> tuple[str, str]:
    """Hold back a tail that could begin a stop string: ("Hi\\n", ["\\n"]) -> ("Hi", "\\n")."""
    keep = 0
    for s in stop:
        for k in range(min(len(s), len(held)), 0, -1):
            if held.endswith(s[:k]):
                keep = max(keep, k)
                break
    return held[: len(held) - keep], held[len(held) - keep:]
