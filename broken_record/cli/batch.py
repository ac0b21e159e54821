"""parrot.sh: N complete conversations in a run folder, servers started once.

    ./parrot.sh 20 config.json            -> parrot_20261122_101500/
    ./parrot.sh 20 config.json -j 4       4 conversations at once
    ./parrot.sh 20 --resume parrot_20261122_101500

A new run folder (runs/layout.py) gets a copy of the config; ``--resume``
tops up a folder with the config it saved. Either way it is one session on
the folder (broken_record.conversation.batch), recorded in its manifest.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from broken_record.cli import guarded
from broken_record.conversation.batch import Batch, check_servers
from broken_record.conversation.config import load_config
from broken_record.conversation.pool import ServerPool
from broken_record.conversation.roles import embedded_servers
from broken_record.errors import ParrotError
from broken_record.inference.embedded import install_signal_handlers
from broken_record.runs import layout
from broken_record.runs.reader import complete_in

# argparse puts "usage: " before it
USAGE = "./parrot.sh <number_of_iterations> <path/config.json> [-j K] [--out DIR]\n" \
        "       ./parrot.sh <number_of_iterations> --resume <parrot_YYYYmmdd_HHMMSS> [-j K]"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="parrot.sh", usage=USAGE, description=(
        "Run N conversations into a new folder parrot_<YYYYmmdd_HHMMSS>/ (or top up an existing "
        "one with --resume), with the embedded llama-server started once for the batch."))
    ap.add_argument("iterations", type=int, help="number of complete conversations wanted")
    ap.add_argument("config", nargs="?", help="config file")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="conversations at once (default 1)")
    ap.add_argument("--resume", metavar="FOLDER", help="top up this run folder, with its saved config")
    ap.add_argument("--out", metavar="DIR", default=".", help="where the run folder is made (default .)")
    args = ap.parse_args(argv)
    if args.iterations < 1:
        ap.error("number_of_iterations must be at least 1")
    if args.jobs < 1:
        ap.error("-j must be at least 1")
    if not args.resume and not args.config:
        ap.error("a config file is needed (or --resume FOLDER)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    install_signal_handlers()
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def session() -> int:
        if args.resume:
            resumed = Path(args.resume)
            if not (resumed / layout.CONFIG_FILE).is_file():
                raise ParrotError(f"{resumed}: not a run folder (no config.json): give a folder "
                                  f"made by parrot.sh")
            config = load_config(resumed / layout.CONFIG_FILE)
            complete = len(complete_in(resumed))
            if complete >= args.iterations:
                console.print(f"[parrot.sh] {resumed} already holds {complete} complete conversations",
                              markup=False)
                return 0
            folder: Path | None = resumed
        else:
            config = load_config(args.config)
            parent = layout.output_folder(args.out)   # checked before any server starts
            folder = None

        def warn(text: str) -> None:
            console.print(f"[yellow]warning:[/] {escape(text)}", markup=True, highlight=False)

        # per-slot context must hold a whole conversation; one slot per parallel conversation
        with embedded_servers(config, slots=args.jobs) as urls:
            for w in urls.warnings:
                warn(w)
            pools = ServerPool.for_roles(urls, warn)
            check_servers(config, pools)     # before the run folder is made
            if folder is None:
                folder = layout.new_run_folder(parent)
                shutil.copyfile(args.config, folder / layout.CONFIG_FILE)
            batch = Batch(config, folder, args.iterations, args.jobs, console,
                          display_text=args.jobs == 1)
            batch.say(f"[parrot.sh] run folder {folder}")
            return batch.generate(pools)

    return guarded("parrot.sh", session)


if __name__ == "__main__":
    sys.exit(main())
