"""The classic loop mining as one compiled kernel (numba), same results as ``classic.mine_reference``.

The text is mined as UTF-8 bytes: a segment is a run of whole words (split on
single spaces), so a byte match of a segment is a character match, and
``str.replace`` becomes "delete every non-overlapping occurrence, left to
right" on the bytes.

How it avoids the reference's full recount after every removal:

- scratch arrays are kept per thread and reused, so a text costs no page
  faults after the first;
- words are 64-bit keys and a window of n words is a polynomial hash of its
  keys mod 2**64, read off a prefix array in O(1);
- a repeated n-window makes every one of its positions start a repeated
  ``n_min``-window. One pass marks the positions whose ``n_min``-window may
  repeat (a table of counters that stop at 2: a superset of the repeated ones)
  and the run of marked positions from each; a repeated n-window needs a run
  of n - n_min + 1, so levels above the longest run are skipped and only the
  positions with a long enough run are counted at each level;
- windows are grouped by hash; the winning group is checked word by word
  (each member against the one before it, once per distance in a loop),
  and if two different windows ever share a hash the level is counted
  again comparing bytes, so a collision costs time but never changes a
  result;
- an occurrence of a segment of n >= 2 words, even one starting inside a
  word, is its inner n - 2 words as whole words of the text, with the first
  word ending a text word and the last one starting one. So occurrences are
  found by hash over word positions, and a deletion re-splits only the words
  around the deleted spans.

The first call compiles the kernel (several seconds) and caches it beside
this file, or in numba's user cache when this folder is read-only; later
processes load it from the cache. ``scripts/setup.sh`` warms the cache.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

_U64 = np.uint64
_BASE = _U64(0x9E3779B97F4A7C15)  # odd, so windows of different words rarely collide
_FNV_OFFSET = _U64(0xCBF29CE484222325)
_FNV_PRIME = _U64(0x100000001B3)
_SPACE = 32


@njit(cache=True, inline="always")
def _word_key(buf, a, b, weak):
    """64-bit key of the word buf[a:b]; with ``weak`` its length only (collisions on purpose, for tests)."""
    if weak:
        return _U64(b - a)
    h = _FNV_OFFSET
    for k in range(a, b):
        h = (h ^ _U64(buf[k])) * _FNV_PRIME
    return h ^ (h >> _U64(29))


@njit(cache=True)
def _split(buf, lo, hi, starts, lens, keys, w, weak):
    """Append the words of buf[lo:hi] (split on single spaces) at index w; the new word count."""
    a = lo
    for k in range(lo, hi):
        if buf[k] == _SPACE:
            starts[w] = a
            lens[w] = k - a
            keys[w] = _word_key(buf, a, k, weak)
            w += 1
            a = k + 1
    starts[w] = a
    lens[w] = hi - a
    keys[w] = _word_key(buf, a, hi, weak)
    return w + 1


@njit(cache=True)
def _prefix(keys, w, prefix, since):
    """prefix[k] = polynomial hash of keys[:k]; entries up to ``since`` are kept."""
    p = prefix[since]
    for k in range(since, w):
        p = p * _BASE + keys[k]
        prefix[k + 1] = p


@njit(cache=True)
def _equal(buf, a, b, length):
    for k in range(length):
        if buf[a + k] != buf[b + k]:
            return False
    return True


@njit(cache=True, inline="always")
def _window_bytes(starts, lens, i, n):
    """Length in bytes of the window of n words at word i."""
    return starts[i + n - 1] + lens[i + n - 1] - starts[i]


@njit(cache=True)
def _same_window(buf, starts, lens, i, j, n):
    """Do the n-windows at words i and j spell the same text?"""
    length = _window_bytes(starts, lens, i, n)
    return length == _window_bytes(starts, lens, j, n) and _equal(buf, starts[i], starts[j], length)


@njit(cache=True)
def _runs(prefix, w, n_min, powers, table, run):
    """Mark the positions whose n_min-window may repeat; run[i] = marked positions from i on. The longest run."""
    m = w - n_min + 1
    if m < 2:
        return 0
    bits = 4
    while (1 << bits) < 8 * m:
        bits += 1
    shift = _U64(64 - bits)
    table[:1 << bits] = 0
    pn = powers[n_min]
    for i in range(m):
        slot = (prefix[i + n_min] - prefix[i] * pn) >> shift
        if table[slot] < 2:
            table[slot] += 1
    longest = 0
    r = 0
    for i in range(m - 1, -1, -1):
        if table[(prefix[i + n_min] - prefix[i] * pn) >> shift] >= 2:
            r += 1
        else:
            r = 0
        run[i] = r
        if r > longest:
            longest = r
    return longest


@njit(cache=True)
def _count(buf, starts, lens, prefix, w, n, need, run, powers, slots, group_hash, group_first, group_count, exact):
    """Group the n-windows at positions with run >= need; the index of the winning group, or -1.

    Groups are made in order of first occurrence, so the first group with the
    highest count is the reference's choice. Without ``exact`` windows are
    grouped by hash alone.
    """
    m = w - n + 1
    candidates = 0
    for i in range(m):
        if run[i] >= need:
            candidates += 1
    if candidates < 2:
        return -1
    bits = 4
    while (1 << bits) < 2 * candidates:
        bits += 1
    mask = (1 << bits) - 1
    shift = _U64(64 - bits)
    slots[:1 << bits] = -1
    pn = powers[n]
    groups = 0
    for i in range(m):
        if run[i] < need:
            continue
        h = prefix[i + n] - prefix[i] * pn
        slot = np.intp(h >> shift)
        while True:
            g = slots[slot]
            if g < 0:
                slots[slot] = groups
                group_hash[groups] = h
                group_first[groups] = i
                group_count[groups] = 1
                groups += 1
                break
            if group_hash[g] == h:
                if not exact or _same_window(buf, starts, lens, i, group_first[g], n):
                    group_count[g] += 1
                    break
            slot = (slot + 1) & mask
    best = -1
    top = 1
    for g in range(groups):
        if group_count[g] > top:
            top = group_count[g]
            best = g
    return best


@njit(cache=True)
def _group_is_one_window(buf, starts, lens, prefix, w, n, need, run, powers, first, h):
    """Do all windows with hash ``h`` spell the same words as the one at ``first``?

    Each member is compared with the one before it, word by word: window i
    equals window i + d when word x equals word x + d for x in [i, i + n).
    In a loop the members follow each other at one distance d, and the words
    already compared at that distance are not compared again, so the cost
    is about the length of the loop, not count x window.
    """
    pn = powers[n]
    previous = first
    distance = -1
    checked = -1  # word x == word x + distance is known for x < checked
    for i in range(first + 1, w - n + 1):
        if run[i] < need or prefix[i + n] - prefix[i] * pn != h:
            continue
        d = i - previous
        if d != distance:
            distance, checked = d, previous
        for x in range(max(checked, previous), previous + n):
            if lens[x] != lens[x + d] or not _equal(buf, starts[x], starts[x + d], lens[x]):
                return False
        checked = previous + n
        previous = i
    return True


def _workspace_sizes(size: int) -> tuple[int, int, int]:
    """Lengths of the int64, uint64 and uint8 scratch arrays ``_mine`` needs for a text of ``size`` bytes."""
    cap = size + 2
    return 13 * cap + 4 * (size + 1), 4 * cap + 1, 16 * cap + 3 * (size + 1)


@njit(cache=True)
def _mine(text, n_max, n_min, weak, i64, u64, u8):
    """Mine ``text`` (UTF-8 bytes), with scratch arrays sized by ``_workspace_sizes``.

    Returns the remaining bytes and the segments in mining order: their bytes
    concatenated, and per segment its offset there, length, count and window size.
    """
    size = len(text)
    cap = size + 2  # words <= bytes + 1
    starts, lens, new_starts, new_lens = i64[:cap], i64[cap:2 * cap], i64[2 * cap:3 * cap], i64[3 * cap:4 * cap]
    run, group_first, group_count = i64[4 * cap:5 * cap], i64[5 * cap:6 * cap], i64[6 * cap:7 * cap]
    spans, span_words, slots = i64[7 * cap:8 * cap], i64[8 * cap:9 * cap], i64[9 * cap:13 * cap]
    at = 13 * cap
    out_offset, out_length = i64[at:at + size + 1], i64[at + size + 1:at + 2 * (size + 1)]
    at += 2 * (size + 1)
    out_count, out_n = i64[at:at + size + 1], i64[at + size + 1:at + 2 * (size + 1)]
    keys, new_keys, group_hash, prefix = u64[:cap], u64[cap:2 * cap], u64[2 * cap:3 * cap], u64[3 * cap:4 * cap + 1]
    table = u8[:16 * cap]
    at = 16 * cap
    buf, spare, out = u8[at:at + size + 1], u8[at + size + 1:at + 2 * (size + 1)], u8[at + 2 * (size + 1):]
    buf[:size] = text
    prefix[0] = 0
    powers = np.empty(n_max + 1, np.uint64)
    powers[0] = 1
    for k in range(1, n_max + 1):
        powers[k] = powers[k - 1] * _BASE
    found_segments = 0
    used = 0
    length = size
    w = _split(buf, 0, length, starts, lens, keys, 0, weak)
    _prefix(keys, w, prefix, 0)
    n = n_max
    longest = _runs(prefix, w, n_min, powers, table, run)
    while n >= n_min:
        if longest + n_min - 1 < n:  # no window this long can repeat
            n = longest + n_min - 1
            continue
        need = n - n_min + 1
        best = _count(buf, starts, lens, prefix, w, n, need, run, powers, slots,
                      group_hash, group_first, group_count, False)
        if best >= 0 and not _group_is_one_window(buf, starts, lens, prefix, w, n, need, run, powers,
                                                  group_first[best], group_hash[best]):
            best = _count(buf, starts, lens, prefix, w, n, need, run, powers, slots,
                          group_hash, group_first, group_count, True)
        if best < 0:
            n -= 1
            continue
        first = group_first[best]
        a = starts[first]
        seg = _window_bytes(starts, lens, first, n)
        out[used:used + seg] = buf[a:a + seg]
        out_offset[found_segments] = used
        out_length[found_segments] = seg
        out_count[found_segments] = group_count[best]
        out_n[found_segments] = n
        found_segments += 1
        used += seg

        # Every occurrence, left to right, without overlap, as str.replace finds them.
        head = lens[first]
        tail = lens[first + n - 1]
        pn2 = powers[n - 2]
        inner = prefix[first + n - 1] - prefix[first + 1] * pn2
        found = 0
        free_from = -1
        for j in range(w - n + 1):
            if prefix[j + n - 1] - prefix[j + 1] * pn2 != inner:
                continue
            if lens[j] < head or lens[j + n - 1] < tail:
                continue
            at = starts[j] + lens[j] - head
            if at < free_from:
                continue
            if _equal(buf, at, a, seg):  # the winner's own bytes, untouched until the rebuild below
                spans[found] = at
                span_words[found] = j
                found += 1
                free_from = at + seg

        # The new text, and its words: kept outside the deleted spans'
        # words, split again inside them.
        nw = 0
        kept = 0  # next old word to keep
        removed = 0
        write = 0
        read = 0
        q = 0
        first_changed = -1
        while q < found:
            wa = span_words[q]
            wb = wa + n - 1
            last = q
            while last + 1 < found and span_words[last + 1] <= wb:  # spans sharing a word: one region
                last += 1
                wb = span_words[last] + n - 1
            low = starts[wa]
            high = starts[wb] + lens[wb]
            k = wa - kept
            new_starts[nw:nw + k] = starts[kept:wa] - removed
            new_lens[nw:nw + k] = lens[kept:wa]
            new_keys[nw:nw + k] = keys[kept:wa]
            nw += k
            if first_changed < 0:
                first_changed = nw
            k = low - read
            spare[write:write + k] = buf[read:low]
            write += k
            region = write
            cursor = low
            for r in range(q, last + 1):
                k = spans[r] - cursor
                spare[write:write + k] = buf[cursor:spans[r]]
                write += k
                cursor = spans[r] + seg
                removed += seg
            k = high - cursor
            spare[write:write + k] = buf[cursor:high]
            write += k
            read = high
            nw = _split(spare, region, write, new_starts, new_lens, new_keys, nw, weak)
            kept = wb + 1
            q = last + 1
        k = w - kept
        new_starts[nw:nw + k] = starts[kept:w] - removed
        new_lens[nw:nw + k] = lens[kept:w]
        new_keys[nw:nw + k] = keys[kept:w]
        nw += k
        k = length - read
        spare[write:write + k] = buf[read:length]
        length = write + k
        buf, spare = spare, buf
        starts, new_starts = new_starts, starts
        lens, new_lens = new_lens, lens
        keys, new_keys = new_keys, keys
        w = nw
        _prefix(keys, w, prefix, max(first_changed, 0))
        longest = _runs(prefix, w, n_min, powers, table, run)
        # The reference never goes back up: stay at n.
    return (buf[:length].copy(), out[:used].copy(), out_offset[:found_segments].copy(),
            out_length[:found_segments].copy(), out_count[:found_segments].copy(), out_n[:found_segments].copy())


_local = threading.local()


def _workspace(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's scratch arrays, grown on demand: reused, they cost no page faults after the first text."""
    need = _workspace_sizes(size)
    have = getattr(_local, "arrays", None)
    if have is None or any(len(a) < n for a, n in zip(have, need)):
        need = _workspace_sizes(size + size // 2 + 1024)
        have = (np.empty(need[0], np.int64), np.empty(need[1], np.uint64), np.empty(need[2], np.uint8))
        _local.arrays = have
    return have


def mine(text: str, n_max: int, n_min: int, weak_keys: bool = False) -> tuple[list[tuple[str, int]], str]:
    """Mined segments (mining order, counts merged per n) and the reduced text, as ``mine_reference``.

    ``weak_keys`` makes every word's key its length, so that different
    windows share hashes all the time (for tests of the collision checks).
    """
    if n_min < 2:
        raise ValueError("n_min must be at least 2 (a one-word window may be empty)")
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    rest, out, offsets, lengths, counts, sizes = _mine(data, n_max, n_min, weak_keys, *_workspace(len(data)))
    raw = out.tobytes()
    mined: list[tuple[str, int]] = []
    per_n: dict[str, int] = {}
    level = None
    for offset, size, count, n in zip(offsets.tolist(), lengths.tolist(), counts.tolist(), sizes.tolist()):
        if n != level:
            mined.extend(per_n.items())
            per_n, level = {}, n
        segment = raw[offset:offset + size].decode("utf-8", "surrogatepass")
        per_n[segment] = per_n.get(segment, 0) + count
    mined.extend(per_n.items())
    return mined, rest.tobytes().decode("utf-8", "surrogatepass")


def warm() -> None:
    """Compile (or load from the cache) now, not on the first real text."""
    mine("warm up warm up warm up warm up warm up warm up", 64, 5)
