"""parrot.py: one conversation between two models.

    python parrot.py [config.json] [--out DIR] [--name STEM] [--human]
"""

from __future__ import annotations

import argparse
import sys

from broken_record.cli import INTERRUPTED, guarded
from broken_record.conversation.config import load_config
from broken_record.conversation.display import Display
from broken_record.conversation.single import converse
from broken_record.inference.embedded import install_signal_handlers
from broken_record.runs import layout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="parrot.py",
        description="Make two models talk (an assistant character at full context and a user "
                    "character that remembers only the last few messages), stream the turns, and "
                    "write <name>.log (original text layout) and <name>.jsonl (one line per turn). "
                    "With no api_url in the config, llama-server is started with the bundled model.")
    ap.add_argument("config", nargs="?", default="config.json", help="config file (default: config.json)")
    ap.add_argument("--out", default=".", metavar="DIR", help="folder for the two logs (default: .)")
    ap.add_argument("--name", metavar="STEM", help="file name stem (default: parrot_<date_time_ns>); an existing log is never overwritten")
    ap.add_argument("--human", action="store_true",
                    help="type the user character's lines yourself; an empty line lets the user model speak")
    ap.add_argument("--quiet", action="store_true", help="do not stream the conversation to stdout (warnings and the outcome still go to stderr)")
    args = ap.parse_args(argv)
    install_signal_handlers()
    display = Display(quiet=args.quiet)

    def one_conversation() -> int:
        config = load_config(args.config)
        # where the logs go is checked before any server starts
        out = layout.output_folder(args.out)
        if args.name is not None:
            layout.check_stem(args.name, out)
        outcome, log = converse(config, out, args.name, display, human=args.human)
        display.note(f"{outcome.summary()}; logs: {log.log_path}, {log.jsonl_path}")
        if outcome.end_reason == "interrupted":
            return INTERRUPTED
        return 0 if outcome.complete else 1

    return guarded("parrot.py", one_conversation)


if __name__ == "__main__":
    sys.exit(main())
