"""Find where the conversations of a run loop or break.

    python analyze.py <folder> [<folder> ...] [--json] [-j N]
                      [--judge URL|embedded [--judge-engine E] [--judge-lines N]]

For each folder: prints the report, and writes analysis.json,
response_length_vs_loop_density.json and .png into it. ``--json`` prints
analysis.json instead of the report (a JSON list when several folders are
given). The work is in broken_record/analysis/: folder.py computes the
analysis, outputs.py writes the files, report.py prints the report.

``--judge`` asks an LLM (a server at URL, or the embedded llama-server) for a
summary, topics and themes of every chunk of about --judge-lines messages
(broken_record/analysis/judge/). It runs after the pooled analysis, in this
process. A judge that cannot be reached is one warning line on stderr: the
analysis is still written and the exit code is still 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from broken_record.cli import guarded

USAGE = ("usage: python analyze.py <folder> [<folder> ...] [--json] [-j N] "
         "[--judge URL|embedded [--judge-engine E] [--judge-lines N]]")
JUDGE_ENGINES = ("auto", "llama-server", "openai", "koboldcpp")


def main(argv: list[str] | None = None) -> int:
    return guarded("analyze.py", lambda: _analyze(argv))


def _analyze(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="analyze.py", usage=USAGE.removeprefix("usage: "),
                                     description="Loop score, loop and break types and metrics of parrot run folders.")
    parser.add_argument("folders", nargs="+", help="run folders written by parrot.sh (or any folder of logs)")
    parser.add_argument("--json", action="store_true", help="print analysis.json to stdout instead of the report")
    parser.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                        help="processes across files (default: all cores)")
    parser.add_argument("--judge", metavar="URL", default=None,
                        help="an LLM server that summarises every chunk of lines (summary, topics, themes); "
                             "'embedded' starts the bundled llama-server for it")
    parser.add_argument("--judge-engine", choices=JUDGE_ENGINES, default="auto",
                        help="the judge server's engine (default: detected)")
    parser.add_argument("--judge-lines", type=int, default=5, metavar="N",
                        help="messages per judged chunk (default: 5)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        print("analyze.py: -j needs a number of processes of at least 1", file=sys.stderr)
        return 2
    if args.judge_lines < 1:
        print("analyze.py: --judge-lines needs at least 1 line", file=sys.stderr)
        return 2
    if args.judge is not None and not args.judge.strip():
        print("analyze.py: --judge needs a server URL or 'embedded'", file=sys.stderr)
        return 2

    # after the argument checks: numpy is slow to import
    from broken_record.analysis import scatter_png
    from broken_record.analysis.folder import FolderProgress, NoLogsError, analyze_folder
    from broken_record.analysis.outputs import write_outputs
    from broken_record.analysis.report import print_report

    warm: list[Any] = []

    def warm_png() -> None:
        # The PNG renderer's engine starts while the workers analyse (not forked into them).
        if not warm:
            warm.append(scatter_png.warm_up())

    failed = 0
    results: list[dict[str, Any]] = []

    def finish(folder: str | Path, result: dict[str, Any]) -> None:
        nonlocal failed
        try:
            write_outputs(folder, result)
        except OSError as exc:
            print(f"analyze.py: cannot write into '{folder}': {exc.strerror or exc}", file=sys.stderr)
            failed += 1
        results.append(result)
        if args.json:
            for warning in result["warnings"]:
                print(f"analyze.py: warning: {warning}", file=sys.stderr)
        else:
            print_report(result)

    # With --judge: every folder's pooled analysis first, then the judge, then the outputs.
    judged: list[tuple[str | Path, dict[str, Any]]] = []
    for folder in args.folders:
        try:
            result = analyze_folder(folder, workers=args.jobs, progress=FolderProgress(Path(folder).name), before_wait=warm_png)
        except NoLogsError as exc:
            print(f"analyze.py: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.judge:
            judged.append((folder, result))
        else:
            finish(folder, result)
    if judged:
        from broken_record.analysis.judge import judge_folders

        if args.judge.strip() == "embedded":
            from broken_record.inference.embedded import install_signal_handlers

            install_signal_handlers()  # SIGTERM stops the embedded judge as Ctrl-C does
        for warning in judge_folders(judged, args.judge.strip(), kind=args.judge_engine, lines=args.judge_lines):
            print(f"analyze.py: warning: {warning}", file=sys.stderr)
        for judged_folder, judged_result in judged:
            finish(judged_folder, judged_result)
    if args.json and results:
        from broken_record.analysis.outputs import json_text

        print(json_text(results[0] if len(args.folders) == 1 else results, indent=1))
    for thread in warm:  # a warm-up left running (a folder with no readable log) ends before the process
        thread.join()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
