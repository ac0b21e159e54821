#!/usr/bin/env python3
"""Find where the conversations of a run loop or break.

    python analyze.py <folder> [<folder> ...] [--json] [-j N]
                      [--judge URL|embedded [--judge-engine E] [--judge-lines N]]

For each folder: prints the report, and writes analysis.json,
response_length_vs_loop_density.json and .png into it. ``--json`` prints
analysis.json instead of the report (a JSON list when several folders are
given). The work is in broken_record/analysis.py.

``--judge`` asks an LLM (a server at URL, or the embedded llama-server) for a
summary, topics and themes of every chunk of about --judge-lines messages
(broken_record/judge.py). It runs after the pooled analysis, in this process.
A judge that cannot be reached is one warning line on stderr: the analysis is
still written and the exit code is still 0.
"""

import sys

from broken_record.cli.analyze import main

if __name__ == "__main__":
    sys.exit(main())
