"""Compare up to ten parrot runs in the browser, or write them to results.html.

    python view.py <run0> [<run1> ... <run9>]          Streamlit app in the browser
    python view.py --html results.html <run0> ...      one static file, no server

A run folder without analysis.json is analysed first. The page is
view/app.py's, drawn when Streamlit runs the top-level view.py (``serve``
hands over to ``streamlit run view.py -- <run folder> ...``); results.html
is view/static.py's. Both show the sections of view/sections.py.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.view import frames

USAGE = ("usage: python view.py [--html results.html] [--port N] [--server.headless true ...] "
         "<run folder> [<run folder> ...] (at most 10)")


def parse(argv: list[str]) -> argparse.Namespace:
    """view.py's command line: run folders, ``--html FILE`` or ``--port N``, and Streamlit's own options.

    Streamlit's options (``--server.headless true``, ``--server.port 8600``,
    ``--theme.base=dark``: a section, a dot, a name) are passed on to
    ``streamlit run`` in ``args.streamlit``, each with its value.
    """
    options, rest = _streamlit_options(argv)
    parser = argparse.ArgumentParser(prog="view.py", usage=USAGE.removeprefix("usage: "),
                                     description="Compare up to ten analysed parrot runs. Streamlit's own options "
                                                 "(--server.headless true, --server.port N, ...) are passed on to it.")
    parser.add_argument("runs", nargs="*", help="run folders written by parrot.sh")
    parser.add_argument("--html", metavar="FILE", help="write a static results.html instead of starting the app")
    parser.add_argument("--port", type=int, help="port for the Streamlit server (default: Streamlit's)")
    args = parser.parse_args(rest)
    args.streamlit = options
    return args


_STREAMLIT_OPTION = re.compile(r"--[a-zA-Z]+\.[a-zA-Z][\w.]*(=.*)?$")


def _streamlit_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(Streamlit's options with their values, the rest)``: ``--section.name value`` or ``--section.name=value``."""
    options: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        match = _STREAMLIT_OPTION.match(arg)
        if match and match.group(1) is None and i + 1 < len(argv):
            options += [arg, argv[i + 1]]
            i += 2
            continue
        if match:
            options.append(arg)
        else:
            rest.append(arg)
        i += 1
    return options, rest


def write_report(target: str, folders: list[str]) -> int:
    """Write results.html for the folders; 0 when every run could be shown, else 1."""
    from broken_record.view.static import write_html

    if not Path(target).resolve().parent.is_dir():
        print(f"view.py: cannot write {target}: its folder does not exist", file=sys.stderr)
        return 1
    runs = []
    for folder, label in zip(folders, frames.unique_labels(folders)):
        if Path(folder).is_dir() and not (Path(folder) / ANALYSIS_FILE).is_file():
            print(f"view.py: {folder} has no {ANALYSIS_FILE} yet: analysing it now", file=sys.stderr)
        run = frames.open_run(folder, label)
        if run.error:
            print(f"view.py: {run.label}: {run.error}", file=sys.stderr)
        runs.append(run)
    if not any(r.ok for r in runs):
        print("view.py: no run could be shown; nothing written", file=sys.stderr)
        return 1
    try:
        path = write_html(target, runs)
    except OSError as exc:
        print(f"view.py: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"view.py: wrote {path} (open it in a browser: it needs no server or network)")
    return 0 if all(r.ok for r in runs) else 1


def streamlit_command(page: str, folders: list[str], port: int | None, options: Sequence[str] = ()) -> list[str]:
    """The ``streamlit run`` command line; the user's Streamlit options come after (and so win over) ours."""
    command = [sys.executable, "-m", "streamlit", "run", page,
               # Loopback only: the page shows model text and local paths.
               "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    if port:
        command += ["--server.port", str(port)]
    return command + list(options) + ["--", *folders]


def serve(page: str, folders: list[str], port: int | None, options: Sequence[str] = ()) -> int:
    """Hand over to `streamlit run PAGE` (view.py itself), which opens the browser."""
    command = streamlit_command(page, folders, port, options)
    if os.name == "posix":
        # Become the server, so Ctrl-C and kill reach it directly and no child is left behind.
        os.execv(sys.executable, command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None, page: str | None = None) -> int:
    """``page``: the script Streamlit runs (view.py, which draws the page when Streamlit runs it)."""
    args = parse(sys.argv[1:] if argv is None else argv)
    if not args.runs:
        print(USAGE, file=sys.stderr)
        return 2
    problem = frames.too_many_runs(args.runs)
    if problem:
        print(f"view.py: {problem}", file=sys.stderr)
        return 2
    if args.html:
        return write_report(args.html, args.runs)
    return serve(page or str(Path(sys.argv[0]).resolve()), args.runs, args.port, args.streamlit)


if __name__ == "__main__":
    sys.exit(main())
