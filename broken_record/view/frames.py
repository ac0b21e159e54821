"""Several runs' analysis.json side by side, as compact long-format frames.

Each function takes a list of ``Run`` (a label and its analysis dict) and
returns a small pandas frame with one row per (run, thing) that an Altair
chart or a table can use as it is: scatter points, the summary table,
pre-binned histograms, loop/break type shares, the survival curve of loop
onset, and the settings that differ between runs.

The edges that touch the disk are ``open_run`` (a run folder's
analysis.json, written first by analysis/outputs.py when missing) and
``read_turns`` (one conversation for the reader, read by runs/reader.py).

One turn numbering everywhere: a turn is named by its message number m,
the ``index`` of the message in the log (0-based, the system prompt is
message 0), shown as ``#m`` with its speaker and its speaker turn k (the
0-based index among that speaker's messages, which analysis.json's
``turns`` and ``loop_onset_turn`` count). A new analysis.json carries the
message numbers (``messages``, ``onset_message``, ``loop_onset_message``);
for an older one they are found from the roles of the log's messages
(``Run.roles``, read by ``open_run``).
Nothing here draws or prints: charts.py draws the frames, sections.py says
which frame each section of the comparison shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES
from broken_record.runs.layout import ANALYSIS_FILE
from broken_record.runs.reader import LogError, find_logs, read_log

MAX_RUNS = 10
RESULTS_PREFIX = "results-"

# The y measures the scatter offers: the classic density (unbounded: it
# counts overlapping windows) and analysis/metrics.py's bounded companion, the share
# of the assistant text that the classic mining removed as repeated.
BOUNDED = "repeated_share"
MEASURES = {
    "loop_density": "loop density (classic)",
    BOUNDED: "repeated share (0-1)",
}


@dataclass
class Run:
    """One run folder as the comparison sees it."""

    label: str
    folder: str
    analysis: dict | None = None
    error: str | None = None  # one line that says what to do
    analysed_now: bool = False  # analysis.json was missing and was made
    # file -> the role of each of its messages, read from the log for an
    # analysis.json that names turns only by speaker turn (no message numbers)
    roles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.analysis is not None and self.error is None


# --- labels and loading (the one edge with I/O) -----------------------------


def run_label(folder: str | Path) -> str:
    """The folder's name without a ``results-`` prefix.

    ``"out/results-hot_sampler/"`` -> ``"hot_sampler"``.
    """
    name = Path(str(folder).rstrip("/\\") or ".").resolve().name
    if name.startswith(RESULTS_PREFIX) and len(name) > len(RESULTS_PREFIX):
        name = name[len(RESULTS_PREFIX):]
    return name


def unique_labels(folders: list[str]) -> list[str]:
    """Labels for the folders, numbered where two would be equal.

    ``["a/run", "b/run", "c"]`` -> ``["run", "run (2)", "c"]``.
    """
    labels: list[str] = []
    seen: dict[str, int] = {}
    for folder in folders:
        base = run_label(folder)
        seen[base] = seen.get(base, 0) + 1
        labels.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    return labels


def too_many_runs(folders: list[str]) -> str | None:
    """The one-line error for more than MAX_RUNS folders, else None."""
    if len(folders) > MAX_RUNS:
        return (
            f"{len(folders)} run folders given; view.py compares at most "
            f"{MAX_RUNS}: leave some out"
        )
    return None


def open_run(folder: str | Path, label: str | None = None, workers: int | None = None) -> Run:
    """Read ``folder/analysis.json``; analyse the folder first if it has none.

    Never raises for a user's mistake: a missing or empty folder, or an
    unreadable analysis.json, comes back as ``Run.error``.
    """
    path = Path(folder)
    label = label or run_label(folder)
    run = Run(label=label, folder=str(folder))
    if path.exists() and not path.is_dir():
        run.error = f"'{folder}' is a file, not a run folder: give the folder parrot.sh wrote"
        return run
    if not path.is_dir():
        run.error = (
            f"run folder '{folder}' does not exist: check the path "
            "(a run folder is what ./parrot.sh writes, e.g. parrot_20261122_101500)"
        )
        return run
    target = path / ANALYSIS_FILE
    if not target.is_file():
        if not find_logs(path):
            run.error = (
                f"run folder '{folder}' has no conversation logs (*.log, *.jsonl) "
                "and no analysis.json: point view.py at a folder written by ./parrot.sh"
            )
            return run
        try:
            run.analysis = _analyse(path, workers)
        except Exception as exc:  # the analysis is another module's: report it, keep others
            run.error = f"could not analyse '{folder}': {exc}; try python analyze.py {folder}"
            return run
        run.analysed_now = True
        run.roles = log_roles(run)
        return run
    try:
        run.analysis = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        run.error = (
            f"'{target}' could not be read ({exc}): delete it and run "
            f"python analyze.py {folder} again"
        )
        return run
    if not isinstance(run.analysis, dict) or not isinstance(run.analysis.get("conversations"), list):
        run.analysis = None
        run.error = f"'{target}' is not an analysis.json: run python analyze.py {folder} again"
        return run
    run.roles = log_roles(run)
    return run


def log_roles(run: Run) -> dict[str, list[str]]:
    """``{file: [role of message 0, 1, ...]}`` for the conversations without message numbers.

    Only an analysis.json written before message numbers needs it (one
    whose entries have no ``loop_onset_message``); a log that cannot be
    read is left out, and its turns then have no message number.
    """
    roles: dict[str, list[str]] = {}
    for conv in conversations(run):
        file = str(conv.get("file", ""))
        if "loop_onset_message" in conv or not file:
            continue
        try:
            roles[file] = [t.role for t in read_log(Path(run.folder) / file).turns]
        except (OSError, ValueError, LogError):
            continue
    return roles


def _analyse(path: Path, workers: int | None) -> dict:
    """Analyse a run folder and write its analysis.json (analysis/outputs.py).

    A read-only folder is analysed in memory only (analysis/folder.py, which
    writes nothing). ``workers``: processes for the analysis (None: every core).
    """
    # The analysis is heavy: imported only when a folder needs it.
    from broken_record.analysis.outputs import write_analysis

    try:
        return write_analysis(path, workers=workers)
    except OSError:
        from broken_record.analysis.folder import analyze_folder

        return analyze_folder(path, workers=workers)


# --- small accessors ----------------------------------------------------------


def conversations(run: Run) -> list[dict]:
    """The run's conversation entries of analysis.json (none for a run that failed)."""
    return list((run.analysis or {}).get("conversations") or [])


def as_float(value: Any) -> float:
    """A figure from analysis.json as a float; missing or null -> NaN."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def bounded_share(conv: dict) -> float:
    """The bounded repeated-share measure of one conversation (0..1)."""
    value = conv.get(BOUNDED)
    if value is None:
        value = (conv.get("metrics") or {}).get(BOUNDED)
    return as_float(value)


def detections(conv: dict) -> dict[str, dict]:
    """``{type: {present, turns, severity}}`` for the loop and break types."""
    found: dict[str, dict] = {}
    for family in ("loops", "breaks"):
        for name, entry in (conv.get(family) or {}).items():
            if isinstance(entry, dict):
                found[name] = entry
    return found


def type_names(runs: list[Run]) -> list[tuple[str, str]]:
    """``[(family, type), ...]``: the fixed ten first, then any extra ones seen."""
    names = [("loop", t) for t in LOOP_TYPES] + [("break", t) for t in BREAK_TYPES]
    known = {t for _, t in names}
    for run in runs:
        for conv in conversations(run):
            for family, key in (("loop", "loops"), ("break", "breaks")):
                for name in conv.get(key) or {}:
                    if name not in known:
                        known.add(name)
                        names.append((family, name))
    return names


# --- frames ---------------------------------------------------------------------


def points(runs: list[Run]) -> pd.DataFrame:
    """One row per conversation: run, conversation and its headline figures.

    Columns: run, conversation, avg_response_length, loop_density,
    repeated share (BOUNDED), loop_score, turns, complete.
    """
    rows = [
        {
            "run": run.label,
            "conversation": str(conv.get("file", "")),
            "avg_response_length": as_float(conv.get("avg_response_length")),
            "loop_density": as_float(conv.get("loop_density")),
            BOUNDED: bounded_share(conv),
            "loop_score": as_float(conv.get("loop_score")),
            "turns": as_float(conv.get("turns")),
            "complete": bool(conv.get("complete", True)),
        }
        for run in runs
        for conv in conversations(run)
    ]
    return pd.DataFrame(
        rows,
        columns=["run", "conversation", "avg_response_length", "loop_density", BOUNDED,
                 "loop_score", "turns", "complete"],
    )


SUMMARY_FIGURES = ["run", "conversations", "avg_response_length", "avg_loop_density", f"avg_{BOUNDED}"]


def summary(runs: list[Run]) -> pd.DataFrame:
    """The summary table: one row per run.

    Averages are plain means over the run's conversations of the per-
    conversation figures in analysis.json; each type column is the share
    of conversations where that type is present.
    """
    names = type_names(runs)
    rows = []
    for run in runs:
        convs = conversations(run)
        n = len(convs)
        row = {
            "run": run.label,
            "conversations": n,
            "avg_response_length": _mean(c.get("avg_response_length") for c in convs),
            "avg_loop_density": _mean(c.get("loop_density") for c in convs),
            f"avg_{BOUNDED}": _mean(bounded_share(c) for c in convs),
        }
        for _, name in names:
            present = sum(1 for c in convs if detections(c).get(name, {}).get("present"))
            row[name] = present / n if n else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_FIGURES + [name for _, name in names])


def _mean(values: Iterable[Any]) -> float:
    numbers = [v for v in (as_float(x) for x in values) if not math.isnan(v)]
    return float(np.mean(numbers)) if numbers else math.nan


def histograms(runs: list[Run], bins: int = 20) -> pd.DataFrame:
    """Pre-binned histograms of response lengths and loop densities.

    Bin edges are shared by all runs so bars line up; ``share`` is the
    count over the run's total so runs of different sizes compare.
    Columns: run, quantity, bin_start, bin_end, count, share.
    """
    values: dict[str, dict[str, list[float]]] = {"response_length": {}, "loop_density": {}}
    for run in runs:
        lengths: list[float] = []
        densities: list[float] = []
        for conv in conversations(run):
            lengths.extend(float(x) for x in conv.get("response_lengths") or [])
            d = as_float(conv.get("loop_density"))
            if not math.isnan(d):
                densities.append(d)
        values["response_length"][run.label] = lengths
        values["loop_density"][run.label] = densities
    rows = []
    for quantity, per_run in values.items():
        everything = [v for vs in per_run.values() for v in vs]
        if not everything:
            continue
        low, high = 0.0, max(everything)
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, bins + 1)
        for label, vs in per_run.items():
            counts, _ = np.histogram(vs, bins=edges)
            total = len(vs)
            for i, count in enumerate(counts):
                rows.append({
                    "run": label,
                    "quantity": quantity,
                    "bin_start": float(edges[i]),
                    "bin_end": float(edges[i + 1]),
                    "count": int(count),
                    "share": count / total if total else 0.0,
                })
    return pd.DataFrame(rows, columns=["run", "quantity", "bin_start", "bin_end", "count", "share"])


def type_shares(runs: list[Run]) -> pd.DataFrame:
    """Share of each run's conversations that show each loop and break type.

    Columns: run, family (loop/break), type, present, conversations, share.
    """
    names = type_names(runs)
    rows = []
    for run in runs:
        convs = conversations(run)
        n = len(convs)
        for family, name in names:
            present = sum(1 for c in convs if detections(c).get(name, {}).get("present"))
            rows.append({
                "run": run.label,
                "family": family,
                "type": name,
                "present": present,
                "conversations": n,
                "share": present / n if n else 0.0,
            })
    return pd.DataFrame(rows, columns=["run", "family", "type", "present", "conversations", "share"])


SPEAKERS = ("assistant", "user")


def speaker_entry(conv: dict, speaker: str) -> dict:
    """The part of a conversation entry about one speaker: the entry itself for
    the assistant, its ``user`` dict for the user (empty in an older analysis.json)."""
    if speaker == "assistant":
        return conv
    entry = conv.get("user")
    return entry if isinstance(entry, dict) else {}


def speaker_messages(roles: list[str], speaker: str) -> list[int]:
    """The message numbers of one speaker's turns, in order: speaker turn k is item k.

    ``(["system", "assistant", "user", "assistant"], "assistant")`` -> ``[1, 3]``.
    """
    return [m for m, role in enumerate(roles) if role == speaker]


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _message_of(k: Any, positions: list[int] | None) -> int | None:
    """Speaker turn k as a message number, from the speaker's message numbers."""
    k = _index(k)
    if k is None or positions is None or k >= len(positions):
        return None
    return positions[k]


def type_messages(entry: dict, positions: list[int] | None) -> list[int]:
    """The message numbers of one type's turns: ``messages``, or its ``turns`` mapped by ``positions``."""
    messages = entry.get("messages")
    if isinstance(messages, list):
        return [m for m in (_index(x) for x in messages) if m is not None]
    return [m for m in (_message_of(k, positions) for k in entry.get("turns") or []) if m is not None]


def onset_turn(conv: dict, speaker: str) -> int | None:
    """The speaker's loop onset as a speaker turn (``loop_onset_turn``), or None."""
    return _index(speaker_entry(conv, speaker).get("loop_onset_turn"))


def onset_message(conv: dict, speaker: str, positions: list[int] | None) -> int | None:
    """The message where the speaker's loop starts, or None (no loop, or not known).

    ``loop_onset_message`` when analysis.json has it, else ``loop_onset_turn``
    mapped by ``positions`` (the speaker's message numbers).
    """
    entry = speaker_entry(conv, speaker)
    if "loop_onset_message" in entry:
        return _index(entry.get("loop_onset_message"))
    return _message_of(entry.get("loop_onset_turn"), positions)


def last_message(conv: dict, roles: list[str] | None = None) -> int | None:
    """The number of a conversation's last message (its censoring time), or None."""
    turns = as_float(conv.get("turns"))
    if not math.isnan(turns) and turns >= 1:
        return int(turns) - 1
    return len(roles) - 1 if roles else None


def survival(runs: list[Run]) -> pd.DataFrame:
    """Share of each run's conversations whose loop has not started by message m.

    Time is the message number (the reader's ``#m``). A conversation whose
    loop starts at message ``m`` is loop-free up to message m-1 and looping
    from m; one that never loops is loop-free up to its last message and
    then leaves the count (censored), as in Kaplan-Meier, so a short
    conversation does not count as "never looped" forever. One curve per
    speaker: the assistant's, and the user's when analysis.json has one.
    ``onsets [5, None(9 messages)]`` -> m=0..4: 1.0, m=5..8: 0.5.
    A conversation whose onset has no known message number is left out.
    Columns: run, speaker, message, loop_free, at_risk.
    """
    rows = []
    for run in runs:
        convs = conversations(run)
        speakers = ["assistant"] + (["user"] if any(isinstance(c.get("user"), dict) for c in convs) else [])
        for speaker in speakers:
            events: list[tuple[int, bool]] = []  # (message, looped)
            for conv in convs:
                if speaker == "user" and not isinstance(conv.get("user"), dict):
                    continue
                roles = run.roles.get(str(conv.get("file", "")))
                positions = speaker_messages(roles, speaker) if roles is not None else None
                onset = onset_message(conv, speaker, positions)
                if onset is not None:
                    events.append((onset, True))
                elif onset_turn(conv, speaker) is None and speaker_entry(conv, speaker).get("loop_onset_message") is None:
                    end = last_message(conv, roles)
                    if end is not None:
                        events.append((end, False))
            if not events:
                continue
            horizon = max(t for t, _ in events)
            share = 1.0
            for t in range(horizon + 1):
                at_risk = sum(1 for time, _ in events if time >= t)
                looped = sum(1 for time, hit in events if hit and time == t)
                if at_risk:
                    share *= 1.0 - looped / at_risk
                rows.append({"run": run.label, "speaker": speaker, "message": t, "loop_free": share,
                             "at_risk": at_risk})
    return pd.DataFrame(rows, columns=["run", "speaker", "message", "loop_free", "at_risk"])


# --- settings -----------------------------------------------------------------------

# Settings always shown, whether they differ or not: what was compared.
ALWAYS_SHOWN = ("model", "engine")
# Settings that differ between any two runs without meaning anything
# (the embedded server's port is new every run).
IGNORED = ("url",)
# Long texts that would swamp the table; a difference is still reported.
MAX_VALUE_CHARS = 60
UNKNOWN = "—"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys.

    ``{"sampler": {"top_p": 0.8}, "model": "m"}`` -> ``{"sampler.top_p": 0.8, "model": "m"}``.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def run_settings(run: Run) -> dict[str, list[str]]:
    """Each setting of a run with its distinct known values, in first-seen order.

    A value a log does not record (a text log has no engine) is unknown,
    not a difference.
    """
    seen: dict[str, list[str]] = {}
    for conv in conversations(run):
        for key, value in flatten(conv.get("settings") or {}).items():
            if key.split(".")[-1] in IGNORED:
                continue
            values = seen.setdefault(key, [])
            if value is None or value == {}:
                continue
            shown = _show(value)
            if shown not in values:
                values.append(shown)
    return seen


def settings_diff(runs: list[Run]) -> pd.DataFrame:
    """The runs' settings side by side: models, engines, and what differs.

    One row per setting, one column per run. A setting is kept when it is a
    model or engine, or when its known values are not the same everywhere
    (a run whose conversations disagree shows ``a | b``, and that counts too).
    """
    per_run = {run.label: run_settings(run) for run in runs}
    keys: list[str] = []
    for settings in per_run.values():
        keys.extend(key for key in settings if key not in keys)
    rows = []
    for key in keys:
        values = [per_run[label].get(key, []) for label in per_run]
        known = {tuple(v) for v in values if v}
        differs = len(known) > 1 or any(len(v) > 1 for v in values)
        if _is_always(key) or differs:
            rows.append({"setting": key, **{label: " | ".join(v) or UNKNOWN for label, v in zip(per_run, values)}})
    rows.sort(key=lambda r: (not _is_always(r["setting"]), r["setting"]))
    return pd.DataFrame(rows, columns=["setting", *per_run])


def _is_always(key: str) -> bool:
    """``"assistant.model"`` -> True."""
    return key.split(".")[-1] in ALWAYS_SHOWN


# --- one conversation, for the reader -------------------------------------------------


def read_turns(folder: str | Path, file: str) -> list[dict]:
    """The messages of one conversation: ``[{index, role, text, stop, tokens, source}]``.

    Reads the log analysis.json names, with runs/reader.py (``LogError`` if unreadable).
    """
    conversation = read_log(Path(folder) / file)
    return [
        {"index": t.index, "role": t.role, "text": t.text, "stop": t.stop,
         "tokens": t.tokens, "source": t.source}
        for t in conversation.turns
    ]


def segments(conv: dict) -> list[tuple[str, int]]:
    """The conversation's top repeated segments as (text, count)."""
    out = []
    for item in conv.get("top_segments") or []:
        if isinstance(item, (list, tuple)) and item:
            out.append((str(item[0]), int(item[1]) if len(item) > 1 else 0))
    return out


ONSET = "loop starts here"


def turn_flags(conv: dict, turns: list[dict]) -> dict[int, list[tuple[str, str]]]:
    """``{position in turns: [(kind, name), ...]}`` for the flagged turns of both speakers.

    ``kind`` is ``loop``, ``break``, ``echo`` (the turn copies the other
    speaker's turn before; ``name`` then says which message) or ``onset``
    (the speaker's loop starts at this turn). Turns are found by message
    number (``messages`` of analysis.json, or speaker turns mapped to the
    speaker's messages in ``turns``); a number that is not a message of
    that speaker in this log is ignored.
    """
    by_message = {int(t.get("index", i)): i for i, t in enumerate(turns)}
    roles = [str(t.get("role", "")) for t in sorted(turns, key=lambda t: int(t.get("index", 0)))]
    flags: dict[int, list[tuple[str, str]]] = {}

    def add(speaker: str, message: int, flag: tuple[str, str]) -> None:
        position = by_message.get(message)
        if position is not None and turns[position].get("role") == speaker and flag not in flags.get(position, []):
            flags.setdefault(position, []).append(flag)

    for speaker in SPEAKERS:
        entry = speaker_entry(conv, speaker)
        positions = speaker_messages(roles, speaker)
        onset = onset_message(conv, speaker, positions)
        if onset is not None:
            add(speaker, onset, ("onset", ONSET))
        for family, key in (("loop", "loops"), ("break", "breaks")):
            for name, found in (entry.get(key) or {}).items():
                if isinstance(found, dict) and found.get("present"):
                    for m in type_messages(found, positions):
                        add(speaker, m, (family, name))
        echoes = conv.get("echoes")
        other = "user" if speaker == "assistant" else "assistant"
        for value in (echoes.get(speaker) or []) if isinstance(echoes, dict) else []:
            echo = _index(value)
            if echo is not None:
                before = speaker_messages(roles[:echo], other)
                add(speaker, echo, ("echo", f"echoes #{before[-1]}" if before else "echo"))
    return flags
