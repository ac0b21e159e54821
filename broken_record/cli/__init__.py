"""The four command lines: parse, check, call the library, report.

The top-level ``parrot.py``, ``analyze.py``, ``view.py`` and ``parrot.sh`` only
call ``main()`` of parrot.py, analyze.py, view.py and batch.py here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from broken_record.errors import ParrotError

INTERRUPTED = 130  # the shell's code for a program stopped by Ctrl-C


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body: a user's mistake is one line on stderr and its exit code, Ctrl-C is 130.

    ``guarded("parrot.py", lambda: 0)`` -> ``0``; a ``ConfigError`` raised by the
    body prints ``parrot.py: config.json: ...`` and returns 2.
    """
    try:
        return body()
    except ParrotError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
