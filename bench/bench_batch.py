#!/usr/bin/env python3
"""Aggregate throughput of parrot.sh's parallel conversations vs the server's ceiling.

For K = 1, 2, 4: (a) the ceiling: one embedded llama-server with K slots
answering K concurrent plain /completion requests (EOS ignored, same length);
(b) parrot: K conversations of the shipped config at once (`-j K`), servers
started with K slots. Both report generated tokens per second of wall time.

    python bench/bench_batch.py [--ks 1 2 4] [--tokens 1024] [--user-cache-reuse N] [--out bench/results/batch.json]

With --user-cache-reuse N, parrot also runs with the user's n_cache_reuse at N
(CONFIG.md), and both ratios are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
from rich.console import Console

from broken_record.conversation.batch import Batch
from broken_record.conversation.config import load_config, parse_config
from broken_record.conversation.pool import ServerPool
from broken_record.conversation.roles import embedded_servers
from broken_record.inference.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

PROMPT = ("<|im_start|>system\nJuno and Theo are on a first date at a night market.<|im_end|>\n"
          "<|im_start|>user\nTheo: Tell me a long story about the river.<|im_end|>\n"
          "<|im_start|>assistant\nJuno:")


def ceiling(k: int, n_predict: int, rounds: int = 2) -> float:
    with EmbeddedServer(ctx=2048, slots=k, name=f"ceiling{k}") as srv:
        requests.post(srv.url + "/completion", json={"prompt": PROMPT, "n_predict": 8})  # warm-up
        total, t0 = 0, time.perf_counter()
        lock = threading.Lock()

        def one(seed):
            nonlocal total
            r = requests.post(srv.url + "/completion", json={
                "prompt": PROMPT, "n_predict": n_predict, "ignore_eos": True, "seed": seed,
                "temperature": 0.87, "cache_prompt": True}, timeout=600).json()
            with lock:
                total += r["tokens_predicted"]
        for rnd in range(rounds):
            threads = [threading.Thread(target=one, args=(rnd * k + i,)) for i in range(k)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return total / (time.perf_counter() - t0)


def parrot(k: int, tokens: int, user_cache_reuse: int = 0) -> dict:
    raw = load_config(ROOT / "config.json").raw
    raw = {**raw, "total_tokens": tokens}
    if user_cache_reuse:
        user_sampler = raw.get("user_sampler") or raw.get("sampler") or {}
        raw["user_sampler"] = {**user_sampler, "n_cache_reuse": user_cache_reuse}
    config = parse_config(raw, "bench")
    console = Console(file=open(os.devnull, "w"))
    with tempfile.TemporaryDirectory() as tmp, embedded_servers(config, slots=k) as urls:
        batch = Batch(config, Path(tmp), k, k, console, display_text=False)
        pools = ServerPool.for_roles(urls, batch.warn)
        t0 = time.perf_counter()
        code = batch.generate(pools)
        wall = time.perf_counter() - t0
        convs = batch.manifest.conversations
        split = time_split(Path(tmp))
    return {"exit_code": code, "tokens": batch.tokens, "wall_s": round(wall, 2),
            "tokens_per_second": round(batch.tokens / wall, 2),
            "complete": sum(c["outcome"] == "complete" for c in convs), **split}


def time_split(folder: Path) -> dict:
    """Where the servers' time went, per role: prompt processing vs generation."""
    out = {}
    for role in ("assistant", "user"):
        turns = [t for p in folder.glob("*.jsonl") for t in map(json.loads, p.open())
                 if t.get("source") == "model" and t["role"] == role]
        prompt = sum(t["prompt_tokens"] or 0 for t in turns)
        out[role] = {"server_prompt_s": round(sum(t["server_prompt_ms"] or 0 for t in turns) / 1000, 2),
                     "server_generation_s": round(sum(t["server_gen_ms"] or 0 for t in turns) / 1000, 2),
                     "prompt_tokens": prompt,
                     "prompt_cached_share": round(sum(t["cached_tokens"] or 0 for t in turns) / prompt, 3)
                     if prompt else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--tokens", type=int, default=1024, help="total_tokens per conversation")
    ap.add_argument("--n-predict", type=int, default=256)
    ap.add_argument("--user-cache-reuse", type=int, default=0, metavar="N",
                    help="also run parrot with user_sampler n_cache_reuse N, and report both")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.json"))
    args = ap.parse_args()
    rows = []
    for k in args.ks:
        c = ceiling(k, args.n_predict)
        p = parrot(k, args.tokens)
        rows.append({"k": k, "ceiling_tokens_per_second": round(c, 2), "parrot": p,
                     "ratio": round(p["tokens_per_second"] / c, 3)})
        if args.user_cache_reuse:
            r = parrot(k, args.tokens, args.user_cache_reuse)
            rows[-1]["parrot_user_cache_reuse"] = r
            rows[-1]["ratio_user_cache_reuse"] = round(r["tokens_per_second"] / c, 3)
        print(json.dumps(rows[-1]), flush=True)
    out = {"what": "aggregate generated tokens/s, SmolLM2-135M on the embedded llama-server",
           "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
           "per_conversation_total_tokens": args.tokens, "ceiling_n_predict": args.n_predict,
           "user_cache_reuse": args.user_cache_reuse,
           "rows": rows, "target": "parrot >= 0.90 x ceiling at every K"}
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
