"""llama.cpp's llama-server, native `/completion` endpoint.

The final stream chunk carries `stop:true`, `stop_type` (eos/limit/word),
the token counts and the settings the server applied; there is no [DONE].
"""

from __future__ import annotations

from broken_record.inference.base import Completion, ConnectionLost, Engine, ServerInfo, clock, parse_data

NATIVE = ["temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty",
          "repeat_last_n", "presence_penalty", "frequency_penalty", "dry_multiplier",
          "dry_base", "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers",
          "xtc_probability", "xtc_threshold", "mirostat", "mirostat_tau", "mirostat_eta",
          "seed", "ignore_eos", "samplers", "n_probs", "grammar", "json_schema", "logit_bias",
          "n_cache_reuse"]


class LlamaServer(Engine):
    kind = "llama-server"
    sampler_names = {**{n: n for n in NATIVE}, "guided_grammar": "grammar",
                     "guided_json": "json_schema", "guided_regex": None, "top_a": None,
                     "tfs": None}

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

    def apply_template(self, messages: list[dict]) -> str:
        return self._json("POST", "/apply-template", json={"messages": messages})["prompt"]

    def _generate(self, prompt, params, max_tokens, stop, result: Completion):
        body = {**params, "prompt": prompt, "n_predict": max_tokens, "stream": True,
                "cache_prompt": True, "stop": stop}
        t0 = clock()
        resp = self._post_stream("/completion", body)
        pieces: list[str] = []
        finished = False
        for event in self.events(resp):
            obj = parse_data(event.data, result)
            if obj is None:
                continue
            error = self.stream_error(obj, result)
            if error:
                raise error
            piece = obj.get("content") or ""
            if piece:
                if result.ttft_ms is None:
                    result.ttft_ms = clock() - t0
                pieces.append(piece)
                yield piece
            if obj.get("stop"):
                finished = True
                self._finish(obj, result)
                break
        result.wall_ms = clock() - t0
        result.text = "".join(pieces)
        if not finished:
            raise ConnectionLost(f"{self.role} server {self.url} ended the stream before its final chunk")

    @staticmethod
    def _finish(obj: dict, result: Completion) -> None:
        result.stop = obj.get("stop_type") if obj.get("stop_type") in ("eos", "limit", "word") else (
            "word" if obj.get("stopping_word") else "eos")
        result.stopping_word = obj.get("stopping_word") or None
        result.tokens = obj.get("tokens_predicted")
        # tokens_evaluated is the whole prompt; timings.cache_n the part of it
        # reused from the slot's cache (tokens_cached counts the generated text too)
        result.prompt_tokens = obj.get("tokens_evaluated")
        timings = obj.get("timings") or {}
        result.cached_tokens = timings.get("cache_n")
        result.server_prompt_ms = timings.get("prompt_ms")
        result.server_gen_ms = timings.get("predicted_ms")
        result.tokens_per_second = timings.get("predicted_per_second")
        result.settings = obj.get("generation_settings")
