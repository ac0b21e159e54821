#!/usr/bin/env python3
"""Find where the conversations of a run loop or break.

    python analyze.py <folder> [<folder> ...] [--json] [-j N]

For each folder: prints the report, and writes analysis.json,
response_length_vs_loop_density.json and .png into it. ``--json`` prints
analysis.json instead of the report (a JSON list when several folders are
given). The work is in broken_record/analysis.py.
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE = "usage: python analyze.py <folder> [<folder> ...] [--json] [-j N]"


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        print("analyze.py: -j needs a number of processes of at least 1", file=sys.stderr)
        return 2

    from broken_record import analysis as analysis_mod  # after argument checks: numpy is slow to import
    from broken_record.report import print_report

    failed = 0
    results = []
    for folder in args.folders:
        try:
            result = analysis_mod.analyze_folder(folder, workers=args.jobs)
        except analysis_mod.NoLogsError as exc:
            print(f"analyze.py: {exc}", file=sys.stderr)
            failed += 1
            continue
        try:
            analysis_mod.write_outputs(folder, result)
        except OSError as exc:
            print(f"analyze.py: cannot write into '{folder}': {exc.strerror or exc}", file=sys.stderr)
            failed += 1
        results.append(result)
        if args.json:
            for warning in result["warnings"]:
                print(f"analyze.py: warning: {warning}", file=sys.stderr)
        else:
            print_report(result)
    if args.json and results:
        print(json.dumps(results[0] if len(args.folders) == 1 else results, ensure_ascii=False, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("analyze.py: interrupted", file=sys.stderr)
        sys.exit(130)
