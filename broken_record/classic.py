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

_BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64


def _inverse_mod_2_64(a: int) -> int:
    # Newton's iteration doubles the number of correct low bits each round.
    x = a
    for _ in range(6):
        x = (x * (2 - a * x)) % (1 << 64)
    return x


class _Scratch:
    """Per-process arrays reused across calls, grown on demand."""

    powers = np.ones(1, dtype=np.uint64)  # _BASE ** i mod 2**64
    inverses = np.ones(1, dtype=np.uint64)  # _BASE ** -i mod 2**64
    table = np.zeros(1, dtype=np.intp)
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

    single = np.zeros(1, dtype=np.uint64)

    @classmethod
    def buckets(cls, size: int) -> np.ndarray:
        if len(cls.table) < size:
            cls.table = np.zeros(size, dtype=np.intp)
        return cls.table

    @classmethod
    def singles(cls, size: int) -> np.ndarray:
        if len(cls.single) < size:
            cls.single = np.zeros(size, dtype=np.uint64)
        return cls.single


def _word_keys(words: list[str]) -> np.ndarray:
    # str hashes are 64-bit and well mixed; a collision is caught by _Words.winner.
    return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


def _bucket_index(h: np.ndarray) -> tuple[np.ndarray, int]:
    """Top bits of each hash: a table about 8 times the number of hashes."""
    bits = max(10, (8 * len(h)).bit_length())
    return (h >> np.uint64(64 - bits)).astype(np.intp), 1 << bits


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
        self._prefix()

    def _prefix(self) -> None:
        count = len(self.keys)
        _Scratch.ensure(count)
        self.prefix = np.zeros(count + 1, dtype=np.uint64)
        np.cumsum(self.keys * _Scratch.powers[:count], dtype=np.uint64, out=self.prefix[1:])

    def hashes(self, n: int) -> np.ndarray:
        """Hash of every window of n words; equal windows hash alike."""
        m = len(self.keys) - n + 1
        if m <= 0:
            return np.empty(0, dtype=np.uint64)
        return (self.prefix[n:n + m] - self.prefix[:m]) * _Scratch.inverses[:m]

    def has_repeat(self, n: int) -> bool:
        """False: no n-window repeats. True: one repeats (or, very rarely, two hashes collide)."""
        h = self.hashes(n)
        m = len(h)
        if m < 2:
            return False
        idx, size = _bucket_index(h)
        counts = np.bincount(idx, minlength=size)
        top = counts.max()
        if top < 2:
            return False
        table = _Scratch.buckets(size)
        table[idx] = _Scratch.arange[:m]  # one member per bucket
        other = table[idx]
        if np.any((h[other] == h) & (other != _Scratch.arange[:m])):
            return True
        if top == 2:  # every pair was compared with each other
            return False
        crowded = np.sort(h[np.flatnonzero(counts[idx] > 2)])
        return bool(np.any(crowded[1:] == crowded[:-1]))

    def next_level(self, upper: int, lower: int) -> int:
        """The largest n in [lower, upper] whose windows may repeat, else lower - 1.

        Every position inside a repeated n-window starts a repeated
        lower-window, so a repeated n-window needs a run of n - lower + 1
        such positions; only the starts of long enough runs are checked.
        """
        short = self.hashes(lower)
        if len(short) < 2:
            return lower - 1
        idx, size = _bucket_index(short)
        maybe = np.bincount(idx, minlength=size)[idx] > 1  # a superset of the repeated ones
        gaps = np.flatnonzero(~maybe)
        if len(gaps) == len(short):
            return lower - 1
        gaps = np.append(gaps, len(short))
        run = gaps[np.searchsorted(gaps, _Scratch.arange[:len(short)])] - _Scratch.arange[:len(short)]
        upper = min(upper, int(run.max()) + lower - 1)

        def repeats(n: int) -> bool:
            starts = np.flatnonzero(run >= n - lower + 1)
            if len(starts) < 2:
                return False
            h = np.sort((self.prefix[starts + n] - self.prefix[starts]) * _Scratch.inverses[starts])
            return bool(np.any(h[1:] == h[:-1]))

        if upper < lower:
            return lower - 1
        if repeats(upper):
            return upper
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
        return lo

    def groups(self, n: int) -> tuple[list[tuple[int, int, list[int]]], "_Table | None"]:
        """Every repeated n-window, best first (count down, then first position), and the hash table.

        Each group is ``(count, first position, member positions)``. Groups
        are found by sorting only the windows whose table bucket is shared.
        """
        h = self.hashes(n)
        m = len(h)
        if m < 2:
            return [], None
        idx, size = _bucket_index(h)
        counts = np.bincount(idx, minlength=size)
        single = _Scratch.singles(size)
        single[idx] = h  # exact for a bucket of one window
        table = _Table(64 - size.bit_length() + 1, counts, single)
        shared = np.flatnonzero(counts[idx] > 1)  # ascending positions
        if len(shared) < 2:
            return [], table
        sub = h[shared]
        order = np.argsort(sub, kind="stable")  # stable: each group's first member comes first
        ordered = shared[order]
        sorted_h = sub[order]
        table.shared = sorted_h
        starts = np.flatnonzero(np.concatenate(([True], sorted_h[1:] != sorted_h[:-1])))
        sizes = np.diff(np.append(starts, len(sorted_h)))
        keep = sizes > 1
        starts, sizes = starts[keep], sizes[keep]
        if not len(starts):
            return [], table
        firsts = ordered[starts]
        rank = np.lexsort((firsts, -sizes))
        members = ordered.tolist()
        return [(size_, start, members[start:start + size_]) for size_, start in
                zip(sizes[rank].tolist(), starts[rank].tolist())], table

    def replace_regions(self, regions, keys0: np.ndarray, lens0: np.ndarray) -> None:
        """Rebuild the arrays: pass words ``a..b`` of each region become its new words."""
        fresh = [w for _, _, new in regions for w in new]
        fresh_keys = _word_keys(fresh)
        fresh_lens = np.fromiter(map(len, fresh), dtype=np.int64, count=len(fresh))
        key_parts, len_parts, previous, offset = [], [], 0, 0
        for a, b, new in regions:
            made = len(new)
            key_parts += [keys0[previous:a], fresh_keys[offset:offset + made]]
            len_parts += [lens0[previous:a], fresh_lens[offset:offset + made]]
            previous, offset = b + 1, offset + made
        key_parts.append(keys0[previous:])
        len_parts.append(lens0[previous:])
        self.keys = np.concatenate(key_parts)
        self.lens = np.concatenate(len_parts)
        self.starts = np.zeros(len(self.lens), dtype=np.int64)
        np.cumsum(self.lens[:-1] + 1, out=self.starts[1:])
        self._prefix()

    def delete(self, segment: str) -> None:
        """Remove every occurrence of ``segment``, as ``str.replace(segment, "")`` does."""
        text, width = self.text, len(segment)
        spans = []
        at = text.find(segment)
        while at >= 0:
            spans.append(at)
            at = text.find(segment, at + width)
        if not spans:
            return
        starts, lens, keys = self.starts, self.lens, self.keys
        edges = np.array(spans + [s + width for s in spans])
        # The word holding each span's first character and the one holding the
        # character just after it: everything between is re-split.
        words = (np.searchsorted(starts, edges, side="right") - 1).tolist()
        count = len(spans)
        first_word, last_word = words[:count], words[count:]
        region_start = starts[first_word].tolist()
        region_end = (starts[last_word] + lens[last_word]).tolist()
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
        self.starts = np.zeros(len(self.lens), dtype=np.int64)
        np.cumsum(self.lens[:-1] + 1, out=self.starts[1:])
        parts, cursor = [], 0
        for at in spans:
            parts.append(text[cursor:at])
            cursor = at + width
        parts.append(text[cursor:])
        self.text = "".join(parts)
        self._prefix()


class _Table:
    """The window hashes of one pass, to spot a new window that repeats an old one."""

    def __init__(self, shift: int, counts: np.ndarray, single: np.ndarray):
        self.shift, self.counts, self.single = shift, counts, single
        self.shared = np.empty(0, dtype=np.uint64)  # sorted hashes of the windows in shared buckets

    def known(self, h: int) -> bool:
        """Did some window of the pass have hash ``h``?"""
        bucket = h >> self.shift
        count = self.counts[bucket]
        if not count:
            return False
        if count == 1:
            return int(self.single[bucket]) == h
        at = int(np.searchsorted(self.shared, np.uint64(h)))
        return at < len(self.shared) and int(self.shared[at]) == h


_MASK = (1 << 64) - 1
_PY_POWERS = [1]
_PY_INVERSES = [1]


def _py_powers(count: int) -> None:
    inverse = _inverse_mod_2_64(_BASE)
    while len(_PY_POWERS) < count:
        _PY_POWERS.append(_PY_POWERS[-1] * _BASE & _MASK)
        _PY_INVERSES.append(_PY_INVERSES[-1] * inverse & _MASK)


class _Batch:
    """Removals at one window size, decided from one pass while that stays exact.

    After the pass, the next group in the ranking is still the reference's
    choice if none of its windows was touched by the removals so far and no
    window created by them repeats anything. Such removals are applied to
    the text at once and to the word arrays together at the end, which is
    where the time goes otherwise. Windows created around a removal are
    hashed here in plain Python (the same polynomial hash), so the removals
    are kept far apart (n - 1 untouched words) and small.
    """

    MAX_WORK = 400  # created windows x window size allowed per removal, in Python

    def __init__(self, words: _Words, n: int, table: _Table):
        self.words, self.n, self.table = words, n, table
        self.text0, self.starts0, self.lens0, self.keys0 = words.text, words.starts, words.lens, words.keys
        self.regions: list[tuple[int, int, list[str]]] = []  # (first word, last word, new words), pass coords
        self.points: list[int] = []  # where text was cut, in current offsets, ascending
        self.shifts: list[int] = [0]  # characters cut before each point, cumulated
        self.created: set[int] = set()
        self.taken = 0

    def _window(self, p: int) -> str:
        q = p + self.n - 1
        return self.text0[int(self.starts0[p]):int(self.starts0[q] + self.lens0[q])]

    def _touched(self, position: int) -> bool:
        end = position + self.n - 1
        return any(a <= end and position <= b for a, b, _ in self.regions)

    def take(self, count: int, members: list[int]) -> tuple[str | None, bool]:
        """Remove this group if that is exact: ``(segment or None, keep going)``."""
        n = self.n
        if self.taken and any(self._touched(p) for p in members):
            return None, False
        segment = self._window(members[0])
        if any(self._window(p) != segment for p in members[1:]):
            return None, False  # a hash collision: the caller decides plainly
        text, width = self.words.text, len(segment)
        spans = []
        at = text.find(segment)
        while at >= 0:
            spans.append(at)
            at = text.find(segment, at + width)
        plan = self._plan(spans, width)
        if plan is None or len(spans) * (2 * n + 2) > self.MAX_WORK:
            if self.taken:
                return None, False
            self.words.delete(segment)  # the first removal of the pass: apply it plainly
            self.taken = 1
            return segment, False
        regions, cut_pass = plan
        repeats = self._creates_repeat(regions)
        self.regions.extend(regions)
        self._cut(text, spans, width, cut_pass)
        self.taken += 1
        return segment, not repeats

    def _plan(self, spans: list[int], width: int):
        """The regions of pass words these spans re-split, or None if they come too close to others."""
        import bisect

        n, starts0, lens0, text0 = self.n, self.starts0, self.lens0, self.text0
        passed = []
        for at in spans:
            k = bisect.bisect_right(self.points, at)
            if k < len(self.points) and self.points[k] < at + width:
                return None  # the span runs across an earlier cut
            passed.append(at + self.shifts[k])
        edges = np.array(passed + [p + width for p in passed])
        found = (np.searchsorted(starts0, edges, side="right") - 1).tolist()
        first, last = found[:len(spans)], found[len(spans):]
        regions = []
        for j, p in enumerate(passed):
            a, b = first[j], last[j]
            if regions and a <= regions[-1][1]:
                a0, b0, cuts = regions[-1]
                regions[-1] = (a0, max(b0, b), cuts + [p])
            else:
                regions.append((a, b, [p]))
        taken = sorted([(a, b) for a, b, _ in self.regions] + [(a, b) for a, b, _ in regions])
        if any(later[0] - earlier[1] < n for earlier, later in zip(taken, taken[1:])):
            return None  # too close: created windows would reach into another region
        out = []
        for a, b, cuts in regions:
            low, high = int(starts0[a]), int(starts0[b] + lens0[b])
            parts, cursor = [], low
            for p in cuts:
                parts.append(text0[cursor:p])
                cursor = p + width
            parts.append(text0[cursor:high])
            out.append((a, b, "".join(parts).split(" ")))
        return out, passed

    def _creates_repeat(self, regions) -> bool:
        """Does a window around the new words repeat any window, old or new?"""
        n, keys0 = self.n, self.keys0
        total = len(keys0)
        repeat = False
        for a, b, new in regions:
            left = keys0[max(0, a - n + 1):a].tolist()
            right = keys0[b + 1:b + n].tolist()
            local = left + [hash(w) & _MASK for w in new] + right
            _py_powers(len(local) + 1)
            prefix = [0]
            for j, key in enumerate(local):
                prefix.append((prefix[-1] + key * _PY_POWERS[j]) & _MASK)
            first = max(0, len(left) - n + 1)
            last = min(len(left) + len(new) - 1, len(local) - n)
            for j in range(first, last + 1):
                h = ((prefix[j + n] - prefix[j]) * _PY_INVERSES[j]) & _MASK
                if h in self.created or self.table.known(h):
                    repeat = True
                self.created.add(h)
        del total
        return repeat

    def _cut(self, text: str, spans: list[int], width: int, passed: list[int]) -> None:
        """Apply the removal to the current text and remember where it cut."""
        parts, cursor = [], 0
        for at in spans:
            parts.append(text[cursor:at])
            cursor = at + width
        parts.append(text[cursor:])
        self.words.text = "".join(parts)
        cuts = sorted([(p, width) for p in passed] + list(self._pass_cuts()))
        self.points, self.shifts, removed = [], [0], 0
        for p, w in cuts:
            self.points.append(p - removed)
            removed += w
            self.shifts.append(removed)

    def _pass_cuts(self):
        """The cuts made so far, in pass offsets."""
        previous = 0
        for point, shift in zip(self.points, self.shifts[1:]):
            yield point + previous, shift - previous
            previous = shift

    def finish(self) -> None:
        """Bring the word arrays up to the text: one edit for all deferred removals."""
        if not self.regions:
            return
        self.words.replace_regions(sorted(self.regions, key=lambda r: r[0]), self.keys0, self.lens0)


def _mine_level(words: _Words, n: int) -> dict[str, int]:
    """Every removal at window size n: segment -> count."""
    per_n: dict[str, int] = {}
    while True:
        ranking, table = words.groups(n)
        if not ranking:
            return per_n
        batch = _Batch(words, n, table)
        exhausted = True
        for count, _, members in ranking:
            segment, keep_going = batch.take(count, members)
            if segment is None:
                exhausted = False
                break
            per_n[segment] = per_n.get(segment, 0) + count
            if not keep_going:
                exhausted = False
                break
        batch.finish()
        if batch.taken == 0:
            # The top group's windows differ though their hashes agree: decide plainly.
            found = _reference_step(words.text, n)
            if found is None:
                return per_n
            words.delete(found[0])
            per_n[found[0]] = per_n.get(found[0], 0) + found[1]
        elif exhausted:
            # Every repeated window is gone and the removals created none.
            return per_n


def mine_fast(text: str, n_max: int = N_MAX, n_min: int = N_MIN) -> tuple[list[tuple[str, int]], str]:
    """Same result as ``mine_reference``, much faster."""
    mined: list[tuple[str, int]] = []
    words = _Words(text)
    n = n_max
    while n >= n_min:
        # Nothing changes while no window repeats, so jump straight to the
        # longest window length that does.
        n = words.next_level(n, n_min)
        if n < n_min:
            break
        mined.extend(_mine_level(words, n).items())
        n -= 1
    return mined, words.text


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
