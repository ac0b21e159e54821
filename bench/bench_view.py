"""Benchmark: the first full render of the dashboard for ten runs of 100 conversations.

Writes ten synthetic analysis.json files (the real schema, plausible values;
the reader's chosen conversation is a real log copied into each folder),
then times AppTest runs of the page: the first (cold: empty caches, every
analysis.json read and reshaped) and a second (warm: what a widget change
costs). Prints the figures and writes bench/results/view.json.

    .venv/bin/python bench/bench_view.py [--runs 10] [--conversations 100] [--turns 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES
from broken_record.view.frames import BOUNDED

ROOT = Path(__file__).resolve().parent.parent

REAL_LOG = ROOT / "tests" / "fixtures" / "runs" / "run_b" / "parrot_hot_1.log"
WORDS = ["the", "a", "I", "you", "so", "glad", "thanks", "really", "love", "volleyball", "coffee", "weather", "sport", "smile", "mansion"]


def synthetic_conversation(rng: random.Random, index: int, turns: int, temperature: float) -> dict:
    lengths = [rng.randint(0, 900) for _ in range(turns)]
    chars = sum(lengths)
    score = rng.randint(0, 4 * chars + 1)
    onset = rng.choice([None, rng.randint(0, turns - 1)])

    def entry() -> dict:
        present = rng.random() < 0.3
        involved = sorted(rng.sample(range(turns), k=min(turns, rng.randint(1, 8)))) if present else []
        return {
            "present": present,
            "turns": involved,
            "severity": round(rng.random(), 3) if present else 0.0,
            "onset": involved[0] if involved else None,
            "pairs": [[i, max(0, i - 1), round(rng.random(), 3)] for i in involved],
        }

    def segment() -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(5, 40)))

    return {
        "file": "conversation_000.log" if index == 0 else f"conversation_{index:03d}.log",
        "complete": rng.random() > 0.05,
        "turns": 2 * turns, "assistant_turns": turns,
        "character_count": chars,
        "avg_response_length": chars / turns,
        "response_lengths": lengths,
        "loop_score": score,
        "loop_density": score / chars if chars else 0.0,
        BOUNDED: rng.random(),
        "top_segments": [[segment(), rng.randint(2, 50)] for _ in range(20)],
        "segment_extensions": [[[segment(), rng.randint(2, 9)] for _ in range(2)] for _ in range(20)],
        "loops": {name: entry() for name in LOOP_TYPES},
        "breaks": {name: entry() for name in BREAK_TYPES},
        "loop_onset_turn": onset,
        "metrics": {"distinct_2": rng.random(), "compression_ratio": 1 + rng.random() * 5,
                    "seq_rep_4_per_turn": [round(rng.random(), 6) for _ in range(turns)]},
        "settings": {
            "assistant": {"model": "smollm2-135m", "engine": "llama-server"},
            "user": {"model": "smollm2-135m", "engine": "llama-server"},
            "sampler": {"temperature": temperature, "top_p": 0.8, "min_p": 0.1, "repeat_penalty": 1.1},
        },
    }


def make_runs(base: Path, runs: int, conversations: int, turns: int) -> list[str]:
    rng = random.Random(1234)
    folders = []
    for r in range(runs):
        folder = base / f"results-run{r:02d}"
        folder.mkdir()
        convs = [synthetic_conversation(rng, i, turns, round(0.2 + 0.15 * r, 2)) for i in range(conversations)]
        analysis = {"version": 1, "folder": folder.name, "conversations": convs, "summary": {}}
        (folder / "analysis.json").write_text(json.dumps(analysis))
        shutil.copy(REAL_LOG, folder / "conversation_000.log")
        folders.append(str(folder))
    return folders


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "view.json"))
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        folders = make_runs(Path(tmp), args.runs, args.conversations, args.turns)
        size = sum((Path(f) / "analysis.json").stat().st_size for f in folders)
        script = f"from broken_record.view.app import main\nmain({folders!r})\n"
        at = AppTest.from_string(script, default_timeout=120)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception[0].value}")
        start = time.perf_counter()
        at.radio(key="y_measure").set_value(BOUNDED).run()
        second = time.perf_counter() - start
        errors = [e.value for e in at.error]

    result = {
        "benchmark": "view first full render (AppTest)",
        "runs": args.runs,
        "conversations_per_run": args.conversations,
        "assistant_turns_per_conversation": args.turns,
        "analysis_json_bytes_total": size,
        "first_render_seconds": round(first, 3),
        "rerun_after_widget_change_seconds": round(second, 3),
        "errors_on_page": errors,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
