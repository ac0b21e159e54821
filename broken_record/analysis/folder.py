"""A run folder's conversations analysed into the ``analysis.json`` dict; nothing is written here.

``analyze_folder`` reads every conversation log of a folder (runs/reader.py),
runs the classic score (classic.py), the loop and break detectors
(detectors.py) and the standard metrics (metrics.py) on each, in a process
pool across files, and adds a per-folder summary with the original tool's
histograms. outputs.py writes the result (``write_analysis`` computes with
``analyze_folder`` and writes); the judge package adds its entries to it.

The dict::

    {"version": 1, "folder": name, "conversations": [entry, ...],
     "summary": {counts, means, shares of each loop and break type,
                 "histograms": {"loop_density": ..., "response_length": ...}},
     "warnings": [...]}

(with ``"judge"`` entries in it and in each conversation once the judge
package has judged it). Each conversation entry has the original's figures
(``character_count``, ``avg_response_length``, ``response_lengths``,
``loop_score``, ``loop_density``, ``top_segments``) and beside them
``complete``, ``end_reason``, ``stop_reasons`` (counts over the generated
turns of both roles, from a .jsonl; null for a text log), ``settings``
(models, engines, samplers as the log states them), ``repeated_share`` (the
bounded companion of ``loop_density``), ``segment_extensions`` (the longer
segments that extend each top segment), the ``loops`` and ``breaks`` of
README.md's "Loops and breaks" with ``loop_onset_turn``, and ``metrics``.
The classic figures read every assistant line, as the original did;
detectors and ``metrics`` skip the config's opening lines where the log
tells them apart. A file that cannot be read, or is not a conversation log
(random bytes, a binary file, text without the log's markers), is skipped
with a warning naming it, and left out of the summary.

Worker processes and Ctrl-C: the files go to a pool of forked processes that
ignore SIGINT; on Ctrl-C (KeyboardInterrupt here) the pool is terminated at
once, whatever its processes are doing (the compiled classic kernel does not
look at signals), and the KeyboardInterrupt goes on up. In this process
(``workers=1``) the classic kernel returns to Python between its steps, so
Ctrl-C is handled there too. ``progress`` (``FolderProgress``) is told about
each file done and shows it on a terminal.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from broken_record.analysis import classic
from broken_record.analysis.conversation import (  # noqa: F401  (re-exported)
    DENSITY_EDGES,
    TOP_SEGMENTS,
    analyze_conversation,
    density_histogram,
    length_histogram,
    summarize,
)
from broken_record.runs import reader as logs

VERSION = 1


class NoLogsError(Exception):
    """The folder has no conversation log that could be read."""


class Progress(Protocol):
    """What ``analyze_folder`` tells about its work."""

    def start(self, total: int) -> None: ...

    def advance(self) -> None: ...

    def stop(self) -> None: ...


class FolderProgress:
    """A rich progress line on stderr: files done / total, elapsed time and a spinner.

    Shown only when stderr is a terminal, and only once the work has taken
    ``delay`` seconds (short runs print nothing); transient: it is gone when
    the work ends. The spinner turns while one long file is being analysed.
    """

    def __init__(self, folder: str = "", delay: float = 1.0, enabled: bool | None = None):
        self.delay = delay
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._task: Any = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._folder = folder

    def start(self, total: int) -> None:
        self._done, self._total = 0, total
        if self.enabled:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with self._lock:
            if self._timer is None:  # stopped meanwhile
                return
            self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("files"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=True,
                                     redirect_stdout=False, redirect_stderr=False)
            self._task = self._bar.add_task(f"analysing {self._folder}", total=self._total,
                                            completed=self._done)
            self._bar.start()

    def advance(self) -> None:
        with self._lock:
            self._done += 1
            if self._bar is not None:
                self._bar.update(self._task, completed=self._done)

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


_interrupted = threading.Event()  # set by Ctrl-C in this process (see _sigint)


def _sigint(signum: int, frame: Any) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def analyze_file(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(entry, None)`` or ``(None, "file: why it was skipped")``; never raises for a bad file."""
    name = Path(path).name
    try:
        conv = logs.read_log(path)
    except logs.LogError as exc:
        return None, f"{name}: {exc}; skipped"
    try:
        return analyze_conversation(conv), None
    except Exception as exc:  # one bad file never stops the folder
        if _interrupted.is_set():  # a Ctrl-C that a library turned into another error (numba compiling)
            raise KeyboardInterrupt from None
        return None, f"{name}: could not be analysed ({type(exc).__name__}: {exc}); skipped"


# --- a folder ---------------------------------------------------------------------


def analyze_folder(path: str | Path, workers: int | None = None, progress: Progress | None = None,
                   before_wait: Any = None) -> dict[str, Any]:
    """The analysis.json dict of a run folder, computed; writes nothing (``outputs.write_analysis`` does).

    ``workers``: processes to use across files (default: every core, in
    worker processes even for one file, so that Ctrl-C stops it at once; 1
    runs in this process). ``before_wait()``, if given, is called once the
    worker processes are started (what it starts is not forked into them).
    Raises ``NoLogsError`` when no log could be read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise NoLogsError(f"'{folder}' is not a folder")
    files = [str(p) for p in logs.find_logs(folder)]
    if not files:
        raise NoLogsError(f"no conversation logs (.log or .jsonl) in '{folder}'")
    in_process = workers == 1
    workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    try:
        if in_process:
            _begin(progress, len(files), before_wait)
            results = _in_this_process(files, progress)
        else:
            results = _in_workers(files, workers, progress, before_wait)
    finally:
        if progress is not None:
            progress.stop()
    conversations = [entry for entry, _ in results if entry is not None]
    warnings = [warning for _, warning in results if warning is not None]
    if not conversations:
        raise NoLogsError(f"none of the {len(files)} log(s) in '{folder}' could be read: " + "; ".join(warnings))
    return {
        "version": VERSION,
        "folder": folder.resolve().name,
        "conversations": conversations,
        "summary": summarize(conversations, skipped=len(warnings)),
        "warnings": warnings,
    }


def _in_this_process(files: list[str], progress: Progress | None) -> list[tuple[dict[str, Any] | None, str | None]]:
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _sigint) if main else None
    _interrupted.clear()
    try:
        results = []
        for f in files:
            results.append(analyze_file(f))
            if progress is not None:
                progress.advance()
        return results
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _ignore_sigint() -> None:
    # The parent handles Ctrl-C by terminating the pool; a worker must not
    # print its own KeyboardInterrupt traceback meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _in_workers(files: list[str], workers: int, progress: Progress | None,
                before_wait: Any) -> list[tuple[dict[str, Any] | None, str | None]]:
    """``analyze_file`` of each file in forked worker processes, in the files' order."""
    # Load the classic kernel once here: the forked workers inherit it
    # instead of each loading (or compiling) their own.
    classic.fast_miner()
    results: list[Any] = [None] * len(files)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_ignore_sigint)
    try:
        # Largest first: both cores stay busy when sizes differ a lot.
        order = sorted(range(len(files)), key=lambda i: -_size(files[i]))
        futures = {pool.submit(analyze_file, files[i]): i for i in order}
        _begin(progress, len(files), before_wait)  # after the fork: no thread of ours in the workers
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                try:
                    results[index] = future.result()
                except BrokenProcessPool:  # a worker was killed (out of memory?): its files are lost, not the rest
                    results[index] = (None, f"{Path(files[index]).name}: could not be analysed "
                                            "(its worker process died); skipped")
                if progress is not None:
                    progress.advance()
    except BaseException:  # Ctrl-C above all: stop the workers now, mid-file
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _begin(progress: Progress | None, total: int, before_wait: Any) -> None:
    if before_wait is not None:
        before_wait()
    if progress is not None:
        progress.start(total)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
