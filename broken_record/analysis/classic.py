"""The original analyze.py's loop score, to the last digit: the plain algorithm and two fast ones.

The algorithm (README.md, "Loops and breaks"): for n = 64 down to 5,
split the assistant text on single spaces, find the most frequent repeated
window of n words (ties: first occurrence first), delete every occurrence of
it with ``str.replace`` (even inside words), and repeat until no n-window
repeats; then go on to n - 1 with the reduced text.

``mine_reference`` is that algorithm written out plainly; it is the
specification. Two faster miners give identical results:

- ``mine_compiled`` (classic_kernel.py): the mining compiled by numba, over
  UTF-8 bytes. It is what ``mine_fast`` uses. Two kernels: one that does a
  pass over the text per removal (the quickest on a conversation of ordinary
  length, but quadratic: a 20 MB log has thousands of removals), and one in
  time about linear in the text's length, which keeps an index of the
  windows and updates it around each removal; the first hands over to the
  second once its passes add up to a budget.
- ``mine_numpy`` (below): the same ideas with numpy calls, the fallback when
  numba cannot be imported.

``mine_numpy`` works like this:

- words become 64-bit keys and windows polynomial hashes mod 2**64, for
  all positions at once with numpy; a deletion edits the word arrays only
  around the deleted spans instead of splitting the text again;
- only windows whose hash shares a table bucket with another can repeat,
  and only those few are sorted into groups;
- window sizes that cannot repeat are skipped: the text does not change
  while nothing is removed, a repeated n-window implies a repeated
  (n-1)-window, and it needs a run of n - 4 positions whose 5-windows may
  repeat; the next size with a repeat is found by galloping down from there;
- the chosen window is checked against the real words, so a hash collision
  can cost time (a fallback to the reference step) but never change a result.

What this module leaves out: reading logs (runs/reader.py) and the bounded
share and other metrics (metrics.py).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from broken_record.runs.layout import DONE_MARKER

N_MAX = 64
N_MIN = 5
EMPTY_PLACEHOLDER = "[empty]"

Mined = tuple[list[tuple[str, int]], str]  # (segments with their counts in mining order, the text left)


class Miner(Protocol):
    """``mine_reference``, ``mine_numpy``, ``mine_compiled`` or ``mine_fast``: the same result from each."""

    def __call__(self, text: str, n_max: int = ..., n_min: int = ...) -> Mined: ...


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

_BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64


def _inverse_mod_2_64(a: int) -> int:
    # Newton's iteration doubles the number of correct low bits each round.
    x = a
    for _ in range(6):
        x = (x * (2 - a * x)) % (1 << 64)
    return x


class _Scratch:
    """Per-process arrays reused across calls, grown on demand."""

    # Only ever replaced by larger ones, never written: safe across threads.
    powers = np.ones(1, dtype=np.uint64)  # _BASE ** i mod 2**64
    inverses = np.ones(1, dtype=np.uint64)  # _BASE ** -i mod 2**64
    arange = np.arange(1, dtype=np.intp)

    @classmethod
    def ensure(cls, words: int) -> None:
        if len(cls.powers) <= words:
            size = max(words + 1, 2 * len(cls.powers), 4096)
            steps = np.full(size, _BASE, dtype=np.uint64)
            steps[0] = 1
            cls.powers = np.cumprod(steps, dtype=np.uint64)  # wraps mod 2**64, as intended
            steps[1:] = _inverse_mod_2_64(_BASE)
            cls.inverses = np.cumprod(steps, dtype=np.uint64)
            cls.arange = np.arange(size, dtype=np.intp)


def _word_keys(words: list[str]) -> np.ndarray:
    # str hashes are 64-bit and well mixed; a collision is caught by _Words.winner.
    return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


def _bucket_index(h: np.ndarray) -> tuple[np.ndarray, int]:
    """Top bits of each hash: a table about 8 times the number of hashes."""
    bits = max(10, (8 * len(h)).bit_length())
    return (h >> np.uint64(64 - bits)).astype(np.intp), 1 << bits


def _any_duplicate(h: np.ndarray) -> bool:
    """Do two of these hashes agree? Exact, and without sorting them all.

    Each hash goes to a bucket; each member of a bucket is compared with the
    one member the bucket kept. That settles every bucket of one or two;
    only buckets of three or more are sorted.
    """
    m = len(h)
    if m < 2:
        return False
    if m <= 256:  # a Python set is quicker than a dozen numpy calls
        return len(set(h.tolist())) < m
    idx, size = _bucket_index(h)
    counts = np.bincount(idx, minlength=size)
    top = counts.max()
    if top < 2:
        return False
    table = np.empty(size, dtype=np.intp)  # only slots written here are read
    positions = _Scratch.arange[:m]
    table[idx] = positions  # one member per bucket
    other = table[idx]
    if ((h[other] == h) & (other != positions)).any():
        return True
    if top == 2:
        return False
    crowded = h[(counts[idx] > 2).nonzero()[0]]
    crowded.sort()
    return bool((crowded[1:] == crowded[:-1]).any())


class _Words:
    """The text being mined, as word hashes, lengths and start offsets.

    Window hashes come from prefix sums: window(i, n) =
    (P[i+n] - P[i]) * B**-i with P[k] = sum of key[j] * B**j, all mod 2**64.
    A deletion edits the arrays around the deleted spans only.
    """

    def __init__(self, text: str):
        self.text = text
        self.keys = _word_keys(text.split(" "))
        # Offsets of the words: a str offset is a code point, as in UTF-32.
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        self.starts = np.concatenate(([0], np.flatnonzero(codes == 32) + 1))
        self.lens = np.diff(np.append(self.starts, len(text) + 1)) - 1
        self.candidates: tuple[int, np.ndarray] | None = None  # (n, positions that may start a repeated n-window), from next_level
        self._prefix()

    def _prefix(self) -> None:
        count = len(self.keys)
        _Scratch.ensure(count)
        self.prefix = np.empty(count + 1, dtype=np.uint64)
        self.prefix[0] = 0
        np.multiply(self.keys, _Scratch.powers[:count], out=self.prefix[1:])
        self.prefix[1:].cumsum(out=self.prefix[1:])

    def hashes(self, n: int) -> np.ndarray:
        """Hash of every window of n words; equal windows hash alike."""
        m = len(self.keys) - n + 1
        if m <= 0:
            return np.empty(0, dtype=np.uint64)
        return (self.prefix[n:n + m] - self.prefix[:m]) * _Scratch.inverses[:m]

    def next_level(self, upper: int, lower: int) -> int:
        """The largest n in [lower, upper] whose windows may repeat, else lower - 1.

        Every position inside a repeated n-window starts a repeated
        lower-window, so a repeated n-window needs a run of n - lower + 1
        such positions; only the starts of long enough runs are checked.
        """
        self.candidates = None
        short = self.hashes(lower)
        m = len(short)
        if m < 2:
            return lower - 1
        idx, size = _bucket_index(short)
        maybe = np.bincount(idx, minlength=size)[idx] > 1  # a superset of the repeated ones
        if not maybe.any():
            return lower - 1
        # For each position, how many positions from it on are in the run.
        positions = _Scratch.arange[:m]
        next_gap = np.where(maybe, m, positions)[::-1]
        run = np.minimum.accumulate(next_gap)[::-1] - positions
        upper = min(upper, int(run.max()) + lower - 1)

        def repeats(n: int) -> bool:
            starts = (run >= n - lower + 1).nonzero()[0]
            if len(starts) < 2:
                return False
            return _any_duplicate((self.prefix[starts + n] - self.prefix[starts]) * _Scratch.inverses[starts])

        if upper < lower:
            return lower - 1
        if repeats(upper):
            return self._found(upper, run, lower)
        # Gallop down, then bisect: the next level with a repeat is usually close.
        hi, step = upper - 1, 1  # no repeat above hi
        while True:
            probe = max(lower, hi - step + 1)
            if probe > hi:
                return lower - 1
            if repeats(probe):
                lo = probe
                break
            if probe == lower:
                return lower - 1
            hi, step = probe - 1, step * 2
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if repeats(mid):
                lo = mid
            else:
                hi = mid - 1
        return self._found(lo, run, lower)

    def _found(self, n: int, run: np.ndarray, lower: int) -> int:
        # Only these positions can start a repeated n-window: the first count
        # at this size needs to look at them alone, until the text changes.
        self.candidates = (n, (run >= n - lower + 1).nonzero()[0])
        return n

    def winner(self, n: int) -> tuple[str, int, bool] | None:
        """The reference step's choice: (window, count, it was the only repeated one), or None.

        Only windows whose table bucket is shared can repeat; those few are
        sorted by hash into groups.
        """
        m = len(self.keys) - n + 1
        if m < 2:
            return None
        if self.candidates is not None and self.candidates[0] == n:
            shared = self.candidates[1]
            sub = (self.prefix[shared + n] - self.prefix[shared]) * _Scratch.inverses[shared]
        else:
            h = self.hashes(n)
            idx, size = _bucket_index(h)
            shared = (np.bincount(idx, minlength=size)[idx] > 1).nonzero()[0]  # ascending positions
            sub = h[shared]
        if len(shared) < 2:
            return None
        order = sub.argsort(kind="stable")  # stable: each group's first member comes first
        ordered = shared[order]
        sorted_h = sub[order]
        bounds = np.empty(len(sorted_h) + 1, dtype=bool)
        bounds[0] = bounds[-1] = True
        np.not_equal(sorted_h[1:], sorted_h[:-1], out=bounds[1:-1])
        bounds = bounds.nonzero()[0]
        starts, sizes = bounds[:-1], bounds[1:] - bounds[:-1]
        top = int(sizes.max())
        if top < 2:
            return None
        tied = starts[sizes == top]
        first = int(tied[ordered[tied].argmin()])
        members = ordered[first:first + top]
        ends = members + (n - 1)
        left = self.starts[members].tolist()
        right = (self.starts[ends] + self.lens[ends]).tolist()
        text = self.text
        segment = text[left[0]:right[0]]
        if any(text[a:b] != segment for a, b in zip(left[1:], right[1:])):
            # Two different windows share a hash: let the plain algorithm decide.
            found = _reference_step(text, n)
            return None if found is None else (found[0], found[1], False)
        return segment, top, top == int(sizes[sizes > 1].sum())

    def delete(self, segment: str) -> None:
        """Remove every occurrence of ``segment``, as ``str.replace(segment, "")`` does."""
        self.candidates = None
        text, width = self.text, len(segment)
        spans = []
        at = text.find(segment)
        while at >= 0:
            spans.append(at)
            at = text.find(segment, at + width)
        if not spans:
            return
        starts, lens, keys = self.starts, self.lens, self.keys
        count = len(spans)
        # The word holding each span's first character and the one holding the
        # character just after it: everything between is re-split.
        words = starts.searchsorted(spans + [s + width for s in spans], side="right") - 1
        bounds = (starts[words] + np.concatenate((np.zeros(count, dtype=np.int64), lens[words[count:]]))).tolist()
        words = words.tolist()
        first_word, last_word = words[:count], words[count:]
        region_start, region_end = bounds[:count], bounds[count:]
        plan, new_words = [], []
        k = 0
        while k < count:
            a, b, low, high = first_word[k], last_word[k], region_start[k], region_end[k]
            first = k
            while k + 1 < count and first_word[k + 1] <= b:  # spans sharing a word: one region
                k += 1
                if last_word[k] > b:
                    b, high = last_word[k], region_end[k]
            parts, cursor = [], low
            for j in range(first, k + 1):
                parts.append(text[cursor:spans[j]])
                cursor = spans[j] + width
            parts.append(text[cursor:high])
            pieces = "".join(parts).split(" ")
            plan.append((a, b, len(pieces)))
            new_words.extend(pieces)
            k += 1
        fresh_keys = _word_keys(new_words)
        fresh_lens = np.fromiter(map(len, new_words), dtype=np.int64, count=len(new_words))
        key_parts, len_parts, previous, offset = [], [], 0, 0
        for a, b, made in plan:
            key_parts += [keys[previous:a], fresh_keys[offset:offset + made]]
            len_parts += [lens[previous:a], fresh_lens[offset:offset + made]]
            previous, offset = b + 1, offset + made
        key_parts.append(keys[previous:])
        len_parts.append(lens[previous:])
        self.keys = np.concatenate(key_parts)
        self.lens = np.concatenate(len_parts)
        self.starts = np.empty(len(self.lens), dtype=np.int64)
        self.starts[0] = 0
        np.add(self.lens[:-1], 1, out=self.starts[1:])
        self.starts[1:].cumsum(out=self.starts[1:])
        parts, cursor = [], 0
        for at in spans:
            parts.append(text[cursor:at])
            cursor = at + width
        parts.append(text[cursor:])
        self.text = "".join(parts)
        self._prefix()


def mine_numpy(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Same result as ``mine_reference``, faster, with numpy alone (the fallback without numba)."""
    mined: list[tuple[str, int]] = []
    words = _Words(text)
    n, upper = n_max, n_max
    per_n: dict[str, int] = {}
    while True:
        # Nothing changes while no window repeats, so jump straight to the
        # longest window length that does.
        level = words.next_level(upper, n_min)
        if level != n:
            mined.extend(per_n.items())
            per_n = {}
        if level < n_min:
            break
        n = level
        while True:
            found = words.winner(n)
            if found is None:
                upper = n - 1
                break
            window, count, alone = found
            words.delete(window)
            per_n[window] = per_n.get(window, 0) + count
            if alone:
                # The only repeated window is gone: usually nothing repeats
                # at n any more, which the level search checks cheaply.
                upper = n
                break
    return mined, words.text


def mine_compiled(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Same result as ``mine_reference``, with the compiled kernels (classic_kernel.py, needs numba).

    Linear in the text's length; long texts return to Python between steps,
    so Ctrl-C stops it.
    """
    from broken_record.analysis import classic_kernel

    return classic_kernel.mine(text, n_max, n_min)


@functools.cache
def fast_miner() -> Miner:
    """``mine_compiled`` when numba can be imported and compile it, else ``mine_numpy``; picked once."""
    try:
        from broken_record.analysis import classic_kernel  # imports numba

        classic_kernel.warm(linear=False)  # compiles, or loads the cached kernel; the linear one when needed
    except Exception:  # no numba, or it cannot compile here: numpy gives the same results
        return mine_numpy
    return mine_compiled


def mine_fast(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Same result as ``mine_reference``, as fast as this machine allows."""
    miner = fast_miner() if n_min >= 2 else mine_numpy
    return miner(text, n_max, n_min)


# --- the figures ------------------------------------------------------------


def classic_figures(text: str, response_lengths: list[int], miner: Miner = mine_fast) -> ClassicResult:
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


def classic_from_lines(lines: list[str], agent_prefix: str, miner: Miner = mine_fast) -> ClassicResult:
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
