#!/usr/bin/env python3
"""Client overhead and prompt-cache benchmark for parrot.py's turn loop.

Runs one conversation of the shipped config (SmolLM2-135M on the embedded
llama-server) and compares, turn by turn, the client's wall time with the
time the server says it spent (prompt processing + generation), and the
share of each assistant prompt served from the server's prompt cache.

    python bench/bench_parrot.py [--tokens 2048] [--out bench/results/parrot.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from broken_record.conversation.config import load_config, parse_config
from broken_record.conversation.dialogue import Dialogue
from broken_record.conversation.roles import embedded_servers, open_role
from broken_record.runs.writer import ConversationLog

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "parrot.json"))
    args = ap.parse_args()
    raw = load_config(ROOT / "config.json").raw
    config = parse_config({**raw, "total_tokens": args.tokens, "seed": 11}, "bench")
    with embedded_servers(config) as urls, tempfile.TemporaryDirectory() as tmp:
        a = open_role(config.assistant, urls["assistant"][0], config)
        u = open_role(config.user, urls["user"][0], config)
        log = ConversationLog(tmp, "bench")
        t0 = time.perf_counter()
        outcome = Dialogue(config, a, u, log).talk()
        wall_ms = (time.perf_counter() - t0) * 1000
        turns = [json.loads(line) for line in open(log.jsonl_path)]
    gen = [t for t in turns if t.get("type") == "message" and t.get("source") == "model"]
    server_ms = sum((t["server_prompt_ms"] or 0) + (t["server_gen_ms"] or 0) for t in gen)
    request_ms = sum(t["wall_ms"] for t in gen)
    assistant = [t for t in gen if t["role"] == "assistant"][1:]
    cache = [t["cached_tokens"] / t["prompt_tokens"] for t in assistant if t["prompt_tokens"]]
    # what could have come from the cache at best: the previous assistant prompt and
    # the turn generated after it (its stop token aside) are a prefix of the next prompt
    every = [t for t in gen if t["role"] == "assistant"]
    reusable = [prev["prompt_tokens"] + prev["tokens"] - 1 for prev in every[:-1]]
    reuse = [min(1.0, t["cached_tokens"] / r) for t, r in zip(every[1:], reusable) if r > 0]
    cached = sum(t["cached_tokens"] for t in assistant)
    prompt = sum(t["prompt_tokens"] for t in assistant)
    result = {
        "what": "one conversation of config.json on the embedded llama-server (SmolLM2-135M)",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "end_reason": outcome.end_reason, "total_tokens": outcome.total_tokens, "turns": len(gen),
        "conversation_wall_ms": round(wall_ms, 1),
        "sum_request_wall_ms": round(request_ms, 1),
        "sum_server_prompt_plus_generation_ms": round(server_ms, 1),
        "overhead_conversation": round(wall_ms / server_ms - 1, 4),
        "overhead_requests": round(request_ms / server_ms - 1, 4),
        "assistant_prompt_cache_share_overall": round(cached / prompt, 4) if prompt else None,
        "assistant_prompt_cache_share_min": round(min(cache), 4) if cache else None,
        "assistant_prompt_cache_share_per_turn": [round(c, 4) for c in cache],
        "assistant_cache_hits_of_reusable_prefix_min": round(min(reuse), 4) if reuse else None,
        "targets": {"overhead": "<= 0.03", "cache_share": ">= 0.90 from the second assistant turn"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "assistant_prompt_cache_share_per_turn"},
                     indent=1))


if __name__ == "__main__":
    main()
