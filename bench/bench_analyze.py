"""Benchmark: the classic loop score (straightforward vs fast) and the whole analysis of a run folder.

Builds a run folder of 100 conversations of about 16K tokens each from real
generated turns: the assistant and user turns of the SmolLM2-135M
conversations in tests/fixtures/testdata, recombined. Each conversation has
its own "loopiness": an assistant turn either repeats one of the last two
(a loop, as the model does at low temperature) or is new, made of real
sentences drawn from the real turns. Each is written as a .log/.jsonl pair by
the project's own ConversationLog (runs/writer.py), as parrot.sh would, with
config.json and manifest.json beside them.

Then it times:
- the classic mining, straightforward (``mine_reference``) and numpy
  (``mine_numpy``) on a subset, compiled (``mine_compiled``, what analyze.py
  uses) on the subset and on every conversation, checking that all agree;
- ``analyze_folder`` over the folder with 1 process and with every core;
- the whole process, ``python analyze.py FOLDER`` (default -j, wall clock,
  best of --repeats), against the straightforward miner alone over the same
  logs (the ratio the README quotes), checking that analysis.json has the
  straightforward miner's classic figures; and where that process spends
  its time (start-up and imports, the analysis, writing the files);
- size scaling: one log each of about 2, 5, 10 and 20 MB built from the same
  real turns, ``analyze.py`` on each (wall clock and peak memory of the
  process tree), and the classic kernels alone on its text: the one that
  does a pass per removal (``kernel="small"``, quadratic) and the linear one.

Prints the figures and writes bench/results/analyze.json. Not a test: no
figure is asserted.

    .venv/bin/python bench/bench_analyze.py [--conversations 100] [--tokens 16000] [--subset 100]
                                           [--sizes 2,5,10,20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from broken_record.analysis import classic, classic_kernel
from broken_record.analysis import folder as analysis
from broken_record.runs.layout import (
    ANALYSIS_FILE,
    CONFIG_FILE,
    JSONL_SUFFIX,
    LOG_SUFFIX,
    MANIFEST_FILE,
    run_folder_name,
)
from broken_record.runs.reader import read_log
from broken_record.runs.writer import ConversationLog, closing_text

ROOT = Path(__file__).resolve().parent.parent

TESTDATA = ROOT / "tests" / "fixtures" / "testdata"
REAL_LOGS = ["parrot_cold_1.log", "parrot_hot_1.log", "parrot_norep_1.log", "parrot_orig_1.log"]
TURN_MAX_TOKENS = 256
_SENTENCE = re.compile(r"(?<=[.!?*)\"])\s+")
RUN_NAME = run_folder_name(datetime(2026, 11, 22, 10, 15))  # parrot_20261122_101500


def real_turns() -> tuple[dict, float]:
    """The real generated turns by role, and the real characters-per-token ratio."""
    turns = {"assistant": [], "user": []}
    chars = tokens = 0
    config = None
    for name in REAL_LOGS:
        conv = read_log(TESTDATA / name)
        config = config or conv.config
        for t in conv.turns:
            if t.source == "model" and t.role in turns:
                turns[t.role].append(t.content)
                if t.tokens:
                    chars, tokens = chars + len(t.content), tokens + t.tokens
    for role in turns:
        turns[role] = sorted(set(turns[role]))
    return {"turns": turns, "config": config}, chars / tokens


def build_conversation(rng: random.Random, pool: dict, ratio: float, target: int, loopiness: float) -> list[dict]:
    """Messages (role, content, tokens, stop) of one ~target-token conversation."""
    sentences = {role: [s for t in texts for s in _SENTENCE.split(t) if s.strip()]
                 for role, texts in pool["turns"].items()}
    messages, total, said = [], 0, []
    role = "assistant"
    while total < target:
        if role == "assistant" and len(said) >= 2 and rng.random() < loopiness:
            text = rng.choice(said[-2:])  # the model repeats itself: period 1 or 2
        elif rng.random() < 0.3:
            text = rng.choice(pool["turns"][role])  # a whole real turn
        else:
            text = " ".join(rng.choice(sentences[role]) for _ in range(rng.randint(2, 7)))
        tokens = min(TURN_MAX_TOKENS, max(1, round(len(text) / ratio)))
        if tokens == TURN_MAX_TOKENS:
            text = text[: int(TURN_MAX_TOKENS * ratio)]
        if role == "assistant":
            said.append(text)
        messages.append({"role": role, "content": text, "tokens": tokens,
                         "stop": "limit" if tokens == TURN_MAX_TOKENS else "eos"})
        total += tokens
        role = "user" if role == "assistant" else "assistant"
    return messages


def write_run(folder: Path, conversations: list[list[dict]], config: dict) -> None:
    """The conversations as parrot.sh leaves them: .log/.jsonl pairs, config.json, manifest.json."""
    prefixes = {"assistant": config["agent_prefix"], "user": config["user_prefix"]}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    (folder / MANIFEST_FILE).write_text(json.dumps({"conversations": len(conversations)}))
    for number, messages in enumerate(conversations):
        log = ConversationLog(folder, stem=f"{RUN_NAME}_{number:09d}")
        role_info = {"engine": "llama-server", "model": "smollm2-135m"}
        log.header({"config": config, "agent_prefix": prefixes["assistant"], "user_prefix": prefixes["user"],
                    "assistant": role_info, "user": role_info})
        records, total = [], 0
        for index, m in enumerate(messages):
            prefix = prefixes[m["role"]]
            if m["role"] == "assistant":
                log.marker(total)
            record = {"index": index, "role": m["role"], "text": f"{prefix} {m['content']}", "prefix": prefix,
                      "generated": m["content"], "tokens_before": total, "source": "model",
                      "tokens": m["tokens"], "stop": m["stop"]}
            records.append(record)
            log.message(record)
            total += m["tokens"]
        log.close({"end_reason": "total_tokens", "complete": True, "total_tokens": total,
                   "turns": len(records), "malformed_stream_lines": 0},
                  closing_text(records, config, "smollm2-135m", "smollm2-135m", total))


def best_of(repeats: int, func, *args, clock=time.perf_counter):
    """The shortest of ``repeats`` runs (wall clock unless told), and the result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = clock()
        result = func(*args)
        best = min(best, clock() - start)
    return best, result


PYTHON = sys.executable
ANALYZE = str(ROOT / "analyze.py")
# Runs a command and prints its wall time and the peak RSS of its process tree (the
# largest of the process and its waited-for children), from a fresh process each time.
_MEASURE = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "t = time.perf_counter() - t\n"
            "assert done.returncode == 0, done.stderr.decode()\n"
            "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(*command: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of ``command``."""
    out = subprocess.run([PYTHON, "-c", _MEASURE, *command], capture_output=True, text=True, check=True).stdout
    seconds, kb = out.split()
    return float(seconds), int(kb) / 1024


def classic_of(entry: dict) -> dict:
    return {k: entry[k] for k in ("character_count", "loop_score", "loop_density", "avg_response_length",
                                  "response_lengths", "top_segments")}


def reference_classic(path: Path) -> dict:
    conv = read_log(path)
    figures = classic.classic_from_lines(conv.classic_lines, conv.agent_prefix, miner=classic.mine_reference)
    return {"character_count": figures.character_count, "loop_score": figures.loop_score,
            "loop_density": figures.loop_density, "avg_response_length": figures.avg_response_length,
            "response_lengths": figures.response_lengths,
            "top_segments": [[s, c] for s, c in figures.top_segments(analysis.TOP_SEGMENTS)]}


def whole_process(folder: Path, reference_s: float, repeats: int) -> dict:
    """``python analyze.py FOLDER`` as a user runs it, against the straightforward miner alone."""
    runs = [measure(PYTHON, ANALYZE, str(folder)) for _ in range(repeats)]
    best = min(t for t, _ in runs)
    written = json.loads((folder / ANALYSIS_FILE).read_text(encoding="utf-8"))
    expected = {p.name: reference_classic(p) for p in sorted(folder.glob("*" + JSONL_SUFFIX))}
    identical = {c["file"]: classic_of(c) for c in written["conversations"]} == expected
    one = min(measure(PYTHON, ANALYZE, str(folder), "-j", "1")[0] for _ in range(repeats))
    # Where the time goes: start-up and imports (the kernel loaded from numba's cache), then the rest.
    startup = min(measure(PYTHON, "-c", "from broken_record.cli import analyze; "
                          "from broken_record.analysis import folder, outputs, report, classic; "
                          "classic.fast_miner()")[0] for _ in range(repeats))
    python_only = min(measure(PYTHON, "-c", "pass")[0] for _ in range(repeats))
    start = time.perf_counter()
    result = analysis.analyze_folder(folder)
    analysis_s = time.perf_counter() - start
    from broken_record.analysis import outputs, report

    start = time.perf_counter()
    outputs.write_outputs(folder, result)
    outputs_s = time.perf_counter() - start
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        from rich.console import Console

        report.print_report(result, Console(file=sink, highlight=False, soft_wrap=True))
    report_s = time.perf_counter() - start
    figures = {
        "whole_process_s": round(best, 3), "whole_process_runs_s": [round(t, 3) for t, _ in runs],
        "whole_process_peak_rss_mb": round(max(m for _, m in runs), 1),
        "whole_process_j1_s": round(one, 3),
        "straightforward_classic_alone_s": round(reference_s, 3),
        "ratio": round(reference_s / best, 2),
        "identical_classic_figures": identical,
        "breakdown_s": {"python_start": round(python_only, 3), "start_and_imports_and_kernel_load": round(startup, 3),
                        "analyze_folder_in_this_process_default_j": round(analysis_s, 3),
                        "write_outputs_json_and_png": round(outputs_s, 3), "print_report": round(report_s, 3)},
        "timing": f"wall clock, best of {repeats} runs of `python analyze.py FOLDER` (default -j, stdout to "
                  "/dev/null); ratio = straightforward miner (mine_reference, best of 2 per log, summed over "
                  "the same logs) / whole process",
    }
    print(f"whole process: analyze.py {best:.2f} s (runs {', '.join(f'{t:.2f}' for t, _ in runs)}), -j 1 {one:.2f} s; "
          f"straightforward miner alone {reference_s:.2f} s: x{reference_s / best:.2f}; "
          f"identical classic figures: {identical}")
    print(f"  breakdown: python {python_only:.2f} s, start-up+imports+kernel {startup:.2f} s, "
          f"analyze_folder {analysis_s:.2f} s, outputs {outputs_s:.2f} s, report {report_s:.2f} s")
    return figures


def size_scaling(work: Path, pool: dict, ratio: float, config: dict, sizes: list[float], repeats: int) -> list[dict]:
    """analyze.py on one log of each size (MB), with time and peak memory; the kernels alone on its text."""
    rows = []
    for mb in sizes:
        rng = random.Random(int(mb * 10))
        # About 7.6 bytes of .log per token with these turns (both roles, streamed and closing copies).
        messages = build_conversation(rng, pool, ratio, int(mb * 1e6 / 7.6), 0.5)
        folder = work / f"size_{mb:g}MB"
        folder.mkdir()
        write_run(folder, [messages], dict(config, total_tokens=10**9))
        for path in folder.glob("*" + JSONL_SUFFIX):
            path.unlink()  # the text log alone: its size is the size
        log = next(folder.glob("*" + LOG_SUFFIX))
        runs = [measure(PYTHON, ANALYZE, str(folder), "--json") for _ in range(repeats)]
        conv = read_log(log)
        text = classic.assistant_lines(conv.classic_lines, conv.agent_prefix)[0]
        linear_s, linear = best_of(repeats, classic_kernel.mine, text, 64, 5, False, "linear")
        row = {"log_mb": round(log.stat().st_size / 1e6, 2), "turns": len(messages),
               "assistant_words": len(text.split(" ")),
               "analyze_s": round(min(t for t, _ in runs), 3),
               "analyze_peak_rss_mb": round(min(m for _, m in runs), 1),
               "classic_linear_kernel_s": round(linear_s, 3)}
        if mb <= 10:  # the quadratic kernel on 20 MB takes long; 2..10 show its growth
            small_s, small = best_of(1, classic_kernel.mine, text, 64, 5, False, "small")
            row["classic_small_kernel_s"] = round(small_s, 3)
            row["kernels_agree"] = small == linear
        rows.append(row)
        print(f"  {row['log_mb']:6.2f} MB, {row['turns']} turns: analyze.py {row['analyze_s']:.2f} s, "
              f"peak {row['analyze_peak_rss_mb']:.0f} MB; classic linear kernel {linear_s:.2f} s"
              + (f", pass-per-removal kernel {row['classic_small_kernel_s']:.2f} s" if "classic_small_kernel_s" in row
                 else ""))
        shutil.rmtree(folder)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=16000, help="tokens per conversation (estimated)")
    parser.add_argument("--subset", type=int, default=100, help="conversations timed with the straightforward and numpy miners")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "analyze.json"))
    parser.add_argument("--keep", help="build the folder here and keep it")
    parser.add_argument("--sizes", default="2,5,10,20", help="log sizes in MB for the size scaling ('' to skip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each whole-process measure (best is kept)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    pool, ratio = real_turns()
    config = dict(pool["config"], conversation=[], turn_max_tokens=TURN_MAX_TOKENS, total_tokens=args.tokens)
    loopiness = [0.9 * i / max(1, args.conversations - 1) for i in range(args.conversations)]
    conversations = [build_conversation(rng, pool, ratio, args.tokens, p) for p in loopiness]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    folder = work / RUN_NAME
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_run(folder, conversations, config)
    print(f"run folder: {folder} ({args.conversations} conversations, "
          f"{sum(m['tokens'] for c in conversations for m in c) / len(conversations):.0f} tokens each on average)")

    # The classic mining on the assistant text of each conversation.
    texts = []
    for path in sorted(folder.glob("*" + JSONL_SUFFIX)):
        conv = read_log(path)
        texts.append(classic.assistant_lines(conv.classic_lines, conv.agent_prefix)[0])
    words = [len(t.split(" ")) for t in texts]
    # First calls compile (numba) or pay numpy's first-call costs: not timed.
    classic.mine_numpy("warm up warm up warm up warm up warm up")
    compile_start = time.perf_counter()
    classic.mine_compiled("warm up warm up warm up warm up warm up")
    first_call_s = time.perf_counter() - compile_start
    step = max(1, len(texts) // args.subset)
    subset = list(range(0, len(texts), step))[: args.subset]
    reference_s, numpy_s, compiled_s, agree = [], [], [], True
    for i in subset:
        ref_time, ref = best_of(2, classic.mine_reference, texts[i])
        numpy_time, by_numpy = best_of(3, classic.mine_numpy, texts[i])
        compiled_time, by_compiled = best_of(5, classic.mine_compiled, texts[i])
        agree = agree and ref == by_numpy == by_compiled
        reference_s.append(ref_time)
        numpy_s.append(numpy_time)
        compiled_s.append(compiled_time)
        print(f"  conversation {i:3d}: {words[i]:5d} words, straightforward {ref_time * 1000:7.1f} ms, "
              f"numpy {numpy_time * 1000:6.2f} ms (x{ref_time / numpy_time:5.1f}), "
              f"compiled {compiled_time * 1000:6.3f} ms (x{ref_time / compiled_time:6.1f})")
    compiled_all_s = [best_of(3, classic.mine_compiled, t)[0] for t in texts]
    speedup = sum(reference_s) / sum(compiled_s)
    # CPU time as well: the machine may be shared, and CPU time is what contention inflates least.
    cpu_reference = sum(best_of(2, classic.mine_reference, texts[i], clock=time.process_time)[0] for i in subset)
    cpu_compiled = sum(best_of(5, classic.mine_compiled, texts[i], clock=time.process_time)[0] for i in subset)
    print(f"classic on the subset of {len(subset)}: straightforward {sum(reference_s):.3f} s, "
          f"numpy {sum(numpy_s):.4f} s (x{sum(reference_s) / sum(numpy_s):.1f}), "
          f"compiled {sum(compiled_s):.4f} s (x{speedup:.1f}), identical results: {agree}")
    ratios = [r / c for r, c in zip(reference_s, compiled_s)]
    print(f"per conversation: x{min(ratios):.1f} at least, x{float(np.median(ratios)):.1f} median")
    print(f"classic on the subset, CPU time: straightforward {cpu_reference:.3f} s, compiled {cpu_compiled:.4f} s: "
          f"x{cpu_reference / cpu_compiled:.1f}")
    print(f"classic compiled on all {len(texts)}: {sum(compiled_all_s):.3f} s "
          f"(straightforward extrapolated from the subset: {np.mean(reference_s) * len(texts):.1f} s); "
          f"first call (compile or cache load): {first_call_s:.2f} s")

    # The whole analysis of the folder: reading, classic, detectors, metrics.
    cores = os.cpu_count() or 1
    one_s, one = best_of(2, analysis.analyze_folder, folder, 1)
    all_s, many = best_of(2, analysis.analyze_folder, folder, cores)
    print(f"analyze_folder: 1 process {one_s:.2f} s, {cores} processes {all_s:.2f} s "
          f"(x{one_s / all_s:.2f}), same result: {one == many}")
    start = time.perf_counter()
    for path in sorted(folder.glob("*" + JSONL_SUFFIX))[:10]:
        analysis.analyze_conversation(read_log(path))
    per_conversation = (time.perf_counter() - start) / 10

    # The straightforward miner over every log, then analyze.py as a whole.
    if len(subset) == len(texts):
        reference_all = sum(reference_s)
    else:
        reference_all = sum(best_of(2, classic.mine_reference, t)[0] for t in texts)
    process = whole_process(folder, reference_all, args.repeats)
    sizes = [float(x) for x in args.sizes.split(",") if x.strip()]
    print("size scaling (one .log each):")
    scaling = size_scaling(work, pool, ratio, config, sizes, args.repeats) if sizes else []

    results = {
        "what": "classic loop mining, straightforward vs fast; analyze_folder with 1 vs all cores",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "cores": cores, "load_average_at_start": os.getloadavg()},
        "folder": {"conversations": len(texts), "tokens_per_conversation_mean":
                   round(sum(m["tokens"] for c in conversations for m in c) / len(conversations)),
                   "tokens_note": f"estimated at the real logs' {ratio:.2f} characters per token",
                   "assistant_words_mean": round(float(np.mean(words))), "source": "real SmolLM2-135M turns "
                   "from tests/fixtures/testdata, recombined (whole turns, real sentences, repeats)",
                   "loop_density_mean": round(float(np.mean([c["loop_density"] for c in one["conversations"]])), 4)},
        "classic": {
            "subset": len(subset),
            "straightforward_s_per_conversation": round(float(np.mean(reference_s)), 5),
            "numpy_s_per_conversation_on_subset": round(float(np.mean(numpy_s)), 6),
            "numpy_speedup_on_subset": round(sum(reference_s) / sum(numpy_s), 1),
            "compiled_s_per_conversation_on_subset": round(float(np.mean(compiled_s)), 6),
            "speedup_on_subset": round(speedup, 1),
            "speedup_per_conversation_min": round(min(r / c for r, c in zip(reference_s, compiled_s)), 1),
            "speedup_per_conversation_median": round(float(np.median([r / c for r, c in zip(reference_s, compiled_s)])), 1),
            "speedup_on_subset_cpu_time": round(cpu_reference / cpu_compiled, 1),
            "identical_results_on_subset": agree,
            "compiled_s_all": round(sum(compiled_all_s), 4),
            "compiled_s_per_conversation_all": round(float(np.mean(compiled_all_s)), 6),
            "straightforward_s_all_extrapolated": round(float(np.mean(reference_s)) * len(texts), 2),
            "compiled_first_call_s": round(first_call_s, 2),
            "timing": "best of 2 (straightforward) / 3 (numpy) / 5 and 3 (compiled) runs per conversation; "
                      "speedup = straightforward / compiled (mine_fast uses the compiled kernel)",
        },
        "analyze_folder": {
            "one_process_s": round(one_s, 3), "all_cores_s": round(all_s, 3), "cores": cores,
            "speedup": round(one_s / all_s, 2), "same_result": one == many,
            "per_conversation_s": round(per_conversation, 4), "timing": "best of 2 runs",
        },
        "whole_process": process,
        "size_scaling": {
            "logs": scaling,
            "how": "one conversation per size from the same real turns (half of the assistant turns repeat one "
                   "of the last two), as a .log alone; analyze.py FOLDER --json in a subprocess (default -j), "
                   f"best of {args.repeats} (time) / lowest peak RSS of the process tree; the classic kernels "
                   "alone on the assistant text in this process",
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
