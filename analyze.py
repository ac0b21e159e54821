#!/usr/bin/env python3
"""Find where the conversations of a run folder loop or break.

    python analyze.py <folder> [<folder> ...] [--json] [-j N]
                      [--judge URL|embedded [--judge-engine E] [--judge-lines N]]

The command line is broken_record/cli/analyze.py; the analysis is broken_record/analysis/.
"""

import sys

from broken_record.cli.analyze import main

if __name__ == "__main__":
    sys.exit(main())
