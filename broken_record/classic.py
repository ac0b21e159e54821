"""The original analyze.py's loop score, to the last digit, in two implementations.

The algorithm (DESIGN.md, "The classic loop score"): for n = 64 down to 5,
split the assistant text on single spaces, find the most frequent repeated
window of n words (ties: first occurrence first), delete every occurrence of
it with ``str.replace`` (even inside words), and repeat until no n-window
repeats; then go on to n - 1 with the reduced text.

``mine_reference`` is that algorithm written out plainly; it is the
specification. ``mine_fast`` gives identical results much faster:

- words become 64-bit keys and windows get polynomial hashes mod 2**64,
  computed for all positions at once with numpy;
- window sizes that cannot repeat are skipped by a binary search for the
  longest repeated window (a repeated n-window implies a repeated
  (n-1)-window, and the text does not change while nothing is removed);
- the chosen window is checked against the real words, so a hash collision
  can cost time (a fallback to the reference step) but never change a result.

What this module leaves out: reading logs (logs.py) and the bounded share
and other metrics (metrics.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

N_MAX = 64
N_MIN = 5
EMPTY_PLACEHOLDER = "[empty]"
DONE_MARKER = "--- DONE ---"


@dataclass(frozen=True)
class ClassicResult:
    """The classic figures of one conversation."""

    character_count: int
    loop_score: int
    loop_density: float
    avg_response_length: float
    response_lengths: list[int]
    segments: list[tuple[str, int]]  # every mined segment, most frequent first
    text_length: int = 0  # length of the joined assistant text
    remaining_length: int = 0  # what is left of it after mining

    def top_segments(self, k: int = 20) -> list[tuple[str, int]]:
        return self.segments[:k]


# --- assistant text -------------------------------------------------------


def assistant_lines(lines: list[str], agent_prefix: str) -> tuple[str, list[int]]:
    """The original's assistant text and response lengths from raw lines.

    ``lines`` are the log lines after the ``--- DONE ---`` marker (or any
    lines in the same shape). ``["Skye: Hi", "Mark: x", "Skye:"]`` ->
    ``("Hi [empty]", [2, 0])``.
    """
    cleaned: list[str] = []
    lengths: list[int] = []
    for line in lines:
        if not line.startswith(agent_prefix):
            continue
        line = line.strip()
        # The original strips first and only then removes the prefix, so a
        # prefix with trailing spaces may survive on a bare line; keep that.
        if line.startswith(agent_prefix):
            line = line[len(agent_prefix):]
        line = line.strip()
        lengths.append(len(line))
        cleaned.append(line if line else EMPTY_PLACEHOLDER)
    return " ".join(cleaned).strip(), lengths


def lines_after_done(text: str) -> list[str] | None:
    """Lines after the first line containing ``--- DONE ---``; None without one."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if DONE_MARKER in line:
            return lines[i + 1:]
    return None


# --- the reference implementation ----------------------------------------


def _reference_step(text: str, n: int) -> tuple[str, int] | None:
    """The most frequent repeated n-window of ``text``, or None.

    ``("a b a b", 2)`` -> ``("a b", 2)``.
    """
    words = text.split(" ")
    counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    best: tuple[str, int] | None = None
    for window, count in counts.items():  # insertion order = first occurrence
        if count > 1 and (best is None or count > best[1]):
            best = (window, count)
    return best


def mine_reference(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Mined segments (mining order, counts merged per n) and the reduced text."""
    mined: list[tuple[str, int]] = []
    for n in range(n_max, n_min - 1, -1):
        per_n: Counter[str] = Counter()
        while (found := _reference_step(text, n)) is not None:
            window, count = found
            text = text.replace(window, "")
            per_n[window] += count
        mined.extend(per_n.items())
    return mined, text


# --- the fast implementation ---------------------------------------------

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2**64


def _inverse_mod_2_64(a: int) -> int:
    # Newton's iteration doubles the correct low bits each round.
    x = a
    for _ in range(6):
        x = (x * (2 - a * x)) % (1 << 64)
    return x


_INV_BASE = np.uint64(_inverse_mod_2_64(int(_BASE)))


class _Windows:
    """Window hashes over one word list: any window length in O(words)."""

    def __init__(self, words: list[str]):
        self.words = words
        count = len(words)
        keys = np.fromiter(map(hash, words), dtype=np.int64, count=count).view(np.uint64)
        with np.errstate(over="ignore"):
            powers = np.empty(count, dtype=np.uint64)
            inverse = np.empty(count, dtype=np.uint64)
            if count:
                powers[0] = inverse[0] = 1
                powers[1:] = _BASE
                inverse[1:] = _INV_BASE
                powers = np.cumprod(powers, dtype=np.uint64)
                inverse = np.cumprod(inverse, dtype=np.uint64)
            prefix = np.zeros(count + 1, dtype=np.uint64)
            np.cumsum(keys * powers, dtype=np.uint64, out=prefix[1:])
        self.prefix = prefix
        self.inverse = inverse

    def hashes(self, n: int) -> np.ndarray:
        """Hash of every n-window, normalised so equal windows hash alike."""
        m = len(self.words) - n + 1
        if m <= 0:
            return np.empty(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (self.prefix[n:n + m] - self.prefix[:m]) * self.inverse[:m]

    def has_repeat(self, n: int) -> bool:
        """False means no n-window repeats; True may rarely be a collision."""
        h = self.hashes(n)
        if len(h) < 2:
            return False
        h = np.sort(h)
        return bool(np.any(h[1:] == h[:-1]))

    def longest_repeat(self, upper: int, lower: int) -> int:
        """Largest n in [lower, upper] with a repeated window, or lower - 1."""
        if upper < lower or not self.has_repeat(lower):
            return lower - 1
        lo, hi = lower, upper  # invariant: has_repeat(lo)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.has_repeat(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def winner(self, n: int) -> tuple[str, int] | None:
        """The reference step's answer for this word list, via hashes."""
        h = self.hashes(n)
        if len(h) < 2:
            return None
        order = np.argsort(h, kind="stable")  # stable: group starts are first occurrences
        sorted_h = h[order]
        starts = np.flatnonzero(np.r_[True, sorted_h[1:] != sorted_h[:-1]])
        counts = np.diff(np.r_[starts, len(sorted_h)])
        best = counts.max()
        if best < 2:
            return None
        candidates = starts[counts == best]
        first_positions = order[candidates]
        pick = int(np.argmin(first_positions))
        start = int(candidates[pick])
        positions = order[start:start + int(best)]
        first = int(first_positions[pick])
        window = self.words[first:first + n]
        words = self.words
        if all(words[p:p + n] == window for p in positions.tolist()):
            return " ".join(window), int(best)
        # A hash collision: let the plain algorithm decide this step.
        return _reference_step(" ".join(words), n)


def mine_fast(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Same result as ``mine_reference``, much faster."""
    mined: list[tuple[str, int]] = []
    windows = _Windows(text.split(" "))
    n = n_max
    while n >= n_min:
        # Nothing changes while no window repeats, so jump straight to the
        # longest window length that does.
        n = windows.longest_repeat(n, n_min)
        if n < n_min:
            break
        per_n: dict[str, int] = {}
        while (found := windows.winner(n)) is not None:
            window, count = found
            text = text.replace(window, "")
            per_n[window] = per_n.get(window, 0) + count
            windows = _Windows(text.split(" "))
        mined.extend(per_n.items())
        n -= 1
    return mined, text


# --- the figures ------------------------------------------------------------


def classic_figures(text: str, response_lengths: list[int], miner=mine_fast) -> ClassicResult:
    """Loop score, density and segments of an assistant text.

    ``miner`` is ``mine_fast`` or ``mine_reference``; both give the same result.
    """
    mined, remaining = miner(text)
    # Most frequent first; sorted() is stable, so ties keep mining order.
    segments = sorted(mined, key=lambda item: item[1], reverse=True)
    loop_score = sum(len(segment) * count for segment, count in segments)
    character_count = sum(response_lengths)
    return ClassicResult(
        character_count=character_count,
        loop_score=loop_score,
        loop_density=loop_score / character_count if character_count > 0 else 0.0,
        avg_response_length=(sum(response_lengths) / len(response_lengths) if response_lengths else 0.0),
        response_lengths=list(response_lengths),
        segments=segments,
        text_length=len(text),
        remaining_length=len(remaining),
    )


def classic_from_lines(lines: list[str], agent_prefix: str, miner=mine_fast) -> ClassicResult:
    """The classic figures from log lines after ``--- DONE ---``."""
    text, lengths = assistant_lines(lines, agent_prefix)
    return classic_figures(text, lengths, miner=miner)


def extensions(segments: list[tuple[str, int]], k: int = 20) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """The top ``k`` segments, each with the longer segments that start with it.

    ``[("a b", 3), ("a b c", 2)]`` -> ``[("a b", 3, [("a b c", 2)]), ("a b c", 2, [])]``.
    """
    return [
        (segment, count, [(other, c) for other, c in segments if other != segment and other.startswith(segment)])
        for segment, count in segments[:k]
    ]
