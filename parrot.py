#!/usr/bin/env python3
"""parrot.py: one conversation between two models.

    python parrot.py [config.json] [--out DIR] [--name STEM] [--human] [--quiet]

The command line is broken_record/cli/parrot.py; the conversation is broken_record/conversation/.
"""

import sys

from broken_record.cli.parrot import main

if __name__ == "__main__":
    sys.exit(main())
