"""The classic loop mining as compiled kernels (numba), same results as ``classic.mine_reference``.

Two kernels: ``_mine`` below does a pass over the text per removal (the
quickest on a conversation of ordinary length); ``_level`` further down
updates an index of the windows around each removal, in time about linear
in the text's length (a long log has thousands of removals). ``mine`` runs
the first until its passes add up to a budget, then the second.

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
def _mine(text, n_max, n_min, weak, budget, i64, u64, u8):
    """Mine ``text`` (UTF-8 bytes), with scratch arrays sized by ``_workspace_sizes``.

    Returns the remaining bytes and the segments in mining order: their bytes
    concatenated, and per segment its offset there, length, count and window size;
    and whether it gave up: each removal costs a pass over the text, and once
    these passes add up to ``budget`` words, the linear kernel is the faster one.
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
    work = 0
    while n >= n_min:
        if longest + n_min - 1 < n:  # no window this long can repeat
            n = longest + n_min - 1
            continue
        work += w
        if work > budget:
            break
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
            out_length[:found_segments].copy(), out_count[:found_segments].copy(), out_n[:found_segments].copy(),
            work > budget)


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


SMALL_BUDGET = 4_000_000  # words passed over by ``_mine`` before the linear kernel takes over
SMALL_BUDGET_PER_WORD = 16  # ... or this many passes over the whole text, if more
LINEAR_FROM_WORDS = 100_000  # a text this long goes to the linear kernel at once


def mine(text: str, n_max: int, n_min: int, weak_keys: bool = False, kernel: str = "auto",
         tick=None) -> tuple[list[tuple[str, int]], str]:
    """Mined segments (mining order, counts merged per n) and the reduced text, as ``mine_reference``.

    ``kernel``: "small" (``_mine``: a pass over the text per removal, the
    fastest on a conversation of ordinary length), "linear" (``_level``:
    time about linear in the length, for long logs), or "auto": ``_mine``
    until its passes add up to ``SMALL_BUDGET`` words (a fraction of a
    second), then the linear kernel from the start. ``tick()`` is called
    between the linear kernel's steps (progress; Ctrl-C is handled there).
    ``weak_keys`` makes every word's key its length, so that different
    windows share hashes all the time (for tests of the collision checks).
    """
    if n_min < 2:
        raise ValueError("n_min must be at least 2 (a one-word window may be empty)")
    if kernel == "linear" or (kernel == "auto" and text.count(" ") >= LINEAR_FROM_WORDS):
        return mine_linear(text, n_max, n_min, weak_keys, tick)
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    budget = 1 << 62 if kernel == "small" else max(SMALL_BUDGET, SMALL_BUDGET_PER_WORD * (len(data) // 5))
    rest, out, offsets, lengths, counts, sizes, gave_up = _mine(data, n_max, n_min, weak_keys, budget,
                                                                *_workspace(len(data)))
    if gave_up:
        _local.arrays = None  # sized for a long text: not kept
        return mine_linear(text, n_max, n_min, weak_keys, tick)
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


def warm(linear: bool = True) -> None:
    """Compile (or load from the cache) now, not on the first real text; both kernels unless told."""
    mine("warm up warm up warm up warm up warm up warm up", 64, 5, kernel="small")
    if linear:
        mine("warm up warm up warm up warm up warm up warm up", 64, 5, kernel="linear")


# --- the linear-time kernel for long texts -------------------------------------------
#
# ``_mine`` above does O(words) work after every removal, so a long log with
# thousands of removals is quadratic. ``_level`` below keeps, within a level
# n, an index of every n-window (grouped by hash, with its count and the
# position of its first occurrence) and of every window's inner n - 2 words,
# and updates both only around the removed spans:
#
# - the words are a linked list; a removal replaces the words of each run of
#   touching occurrences by the one word the re-split leaves there (the
#   occurrence's inner words are whole words, so nothing but the two end
#   pieces and the gaps between touching occurrences remains);
# - each word has a label that orders the list (its index when the level
#   began; a new word takes the label of the first word it replaces), so
#   "first occurrence" and left-to-right order are label comparisons;
# - the next winner is the top of a lazy max-heap on (count, -first label);
# - the occurrences of a winner are the windows whose inner n - 2 words
#   match it, found through the inner index: none of the text is scanned.
#
# A level's state is nothing but the text, so the level can be stopped and
# started again from the current text at any time with the same result. It
# is, to free the index's capacity, after a hash collision (then windows are
# grouped comparing bytes from there on), and after a budget of work so that
# Python can handle Ctrl-C and show progress between calls.

_LABEL_BITS = 40
_LABEL_MASK = (1 << _LABEL_BITS) - 1
# fields of a node (a word): one row of the int64 node array, so a node is one or two cache lines
_WOFF, _WLEN, _LABEL, _NXT, _PRV, _AG, _ANX, _APV, _BG, _BNX, _BPV = range(11)
_NODE_FIELDS = 11  # nd[node, field]
# fields of a group of windows
_GA_COUNT, _GA_HEAD, _GA_MIN, _GA_DIRTY, _GA_KEY, _GA_TOUCHED, _GB_COUNT, _GB_HEAD, _TOUCHED_LIST, _GA_HASH, _GB_HASH = range(11)
_GROUP_FIELDS = 11  # gi[g, field]; the hashes through gu, the same memory as uint64


@njit(cache=True)
def _heap_push(hk, hg, size, k, g):
    i = size
    hk[i] = k
    hg[i] = g
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] >= k:
            break
        hk[i] = hk[p]
        hg[i] = hg[p]
        i = p
    hk[i] = k
    hg[i] = g
    return size + 1


@njit(cache=True)
def _heap_pop(hk, hg, size):
    size -= 1
    if size == 0:
        return 0
    k = hk[size]
    g = hg[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hk[c + 1] > hk[c]:
            c += 1
        if hk[c] <= k:
            break
        hk[i] = hk[c]
        hg[i] = hg[c]
        i = c
    hk[i] = k
    hg[i] = g
    return size


@njit(cache=True, inline="always")
def _heap_key(count, label):
    return (count << _LABEL_BITS) | (_LABEL_MASK - label)


@njit(cache=True)
def _windows_equal(buf, nd, v, u, n):
    """Do the n-windows at nodes v and u spell the same words?"""
    for _ in range(n):
        length = nd[v, _WLEN]
        if length != nd[u, _WLEN] or not _equal(buf, nd[v, _WOFF], nd[u, _WOFF], length):
            return False
        v = nd[v, _NXT]
        u = nd[u, _NXT]
    return True


@njit(cache=True)
def _a_insert(buf, nd, gi, gu, tab, ngroups, touched, v, h, n, exact, shift, mask, track):
    """Add the n-window at node v (hash h) to its group; returns (groups, touched groups).

    With ``track``, a group that grew is listed (once) in gi[_TOUCHED_LIST], for one heap push later.
    """
    slot = np.intp(h >> shift)
    while True:
        g = np.int64(tab[0, slot])
        if g < 0:
            g = ngroups
            ngroups += 1
            tab[0, slot] = g
            gu[g, _GA_HASH] = h
            gi[g, _GA_COUNT] = 0
            gi[g, _GA_HEAD] = -1
            gi[g, _GA_DIRTY] = 0
            gi[g, _GA_KEY] = -1
            gi[g, _GA_TOUCHED] = 0
            break
        if gu[g, _GA_HASH] == h:
            if not exact:
                break
            if gi[g, _GA_COUNT] > 0 and _windows_equal(buf, nd, v, gi[g, _GA_HEAD], n):
                break
        slot = (slot + 1) & mask
    head = gi[g, _GA_HEAD]
    nd[v, _ANX] = head
    nd[v, _APV] = -1
    if head >= 0:
        nd[head, _APV] = v
    gi[g, _GA_HEAD] = v
    nd[v, _AG] = g
    count = gi[g, _GA_COUNT] + 1
    gi[g, _GA_COUNT] = count
    label = nd[v, _LABEL]
    if count == 1:
        gi[g, _GA_MIN] = label
        gi[g, _GA_DIRTY] = 0
    elif label < gi[g, _GA_MIN]:
        gi[g, _GA_MIN] = label
    if track and count >= 2 and not gi[g, _GA_TOUCHED]:
        gi[g, _GA_TOUCHED] = 1
        gi[touched, _TOUCHED_LIST] = g
        touched += 1
    return ngroups, touched


@njit(cache=True)
def _b_insert(nd, gi, gu, tab, ngroups, v, h, shift, mask):
    """Add the inner (n - 2)-window of the window at node v (hash h) to its group, by hash alone."""
    slot = np.intp(h >> shift)
    while True:
        g = np.int64(tab[1, slot])
        if g < 0:
            g = ngroups
            ngroups += 1
            tab[1, slot] = g
            gu[g, _GB_HASH] = h
            gi[g, _GB_COUNT] = 0
            gi[g, _GB_HEAD] = -1
            break
        if gu[g, _GB_HASH] == h:
            break
        slot = (slot + 1) & mask
    head = gi[g, _GB_HEAD]
    nd[v, _BNX] = head
    nd[v, _BPV] = -1
    if head >= 0:
        nd[head, _BPV] = v
    gi[g, _GB_HEAD] = v
    nd[v, _BG] = g
    gi[g, _GB_COUNT] += 1
    return ngroups


@njit(cache=True)
def _destroy(nd, gi, v):
    """Take the window at node v out of both indexes.

    Its group's heap entry is left as it is: too high now, it is corrected when it reaches the top.
    """
    g = nd[v, _AG]
    p, x = nd[v, _APV], nd[v, _ANX]
    if p >= 0:
        nd[p, _ANX] = x
    else:
        gi[g, _GA_HEAD] = x
    if x >= 0:
        nd[x, _APV] = p
    count = gi[g, _GA_COUNT] - 1
    gi[g, _GA_COUNT] = count
    if count > 0 and nd[v, _LABEL] == gi[g, _GA_MIN]:
        gi[g, _GA_DIRTY] = 1
    nd[v, _AG] = -1
    b = nd[v, _BG]
    p, x = nd[v, _BPV], nd[v, _BNX]
    if p >= 0:
        nd[p, _BNX] = x
    else:
        gi[b, _GB_HEAD] = x
    if x >= 0:
        nd[x, _BPV] = p
    gi[b, _GB_COUNT] -= 1
    nd[v, _BG] = -1


@njit(cache=True)
def _compact(buf, spare, nd, head):
    """Write the words of the list from ``head`` into buf, joined by single spaces; the new length."""
    write = 0
    x = head
    while x >= 0:
        if x != head:
            spare[write] = _SPACE
            write += 1
        a = nd[x, _WOFF]
        k = nd[x, _WLEN]
        spare[write:write + k] = buf[a:a + k]
        write += k
        x = nd[x, _NXT]
    buf[:write] = spare[:write]
    return write


@njit(cache=True)
def _level(buf, spare, length, n, n_min, weak, exact, budget, nd, keys, gi, gu, tab, hk, hg,
           prefix, powers, u8table, run, slots, c_hash, c_first, c_count, scratch,
           out, out_offset, out_length, out_count, out_n, found_segments, used):
    """Mine from level n down until one level has removed something (or a budget of work is spent).

    Returns (the level to go on with, text length, segments found, bytes used in ``out``, exact,
    grow): ``grow`` asks for larger scratch arrays (one removal did not fit even in a fresh index).
    The text is buf[:length]; buf has room for new words after it.
    """
    node_cap = nd.shape[0]
    group_cap = gi.shape[0]
    heap_cap = len(hk)
    arena_cap = len(buf)
    # The words, dense: node i is word i.
    starts, lens = nd[:, _WOFF], nd[:, _WLEN]
    w = _split(buf, 0, length, starts, lens, keys, 0, weak)
    prefix[0] = 0
    _prefix(keys, w, prefix, 0)
    longest = _runs(prefix, w, n_min, powers, u8table, run)
    work = 0
    while n >= n_min:
        if longest + n_min - 1 < n:  # no window this long can repeat
            n = longest + n_min - 1
            continue
        if work > budget:
            return n, length, found_segments, used, exact, False
        need = n - n_min + 1
        work += w
        best = _count(buf, starts, lens, prefix, w, n, need, run, powers, slots, c_hash, c_first, c_count, False)
        if best < 0:
            n -= 1
            continue
        # Some n-window may repeat: index them all.
        m = w - n + 1
        # A table for this text (a power of two, at most the array's), at most half full.
        bits = 4
        while (1 << bits) < 2 * (2 * w + 64) and (1 << bits) < tab.shape[1]:
            bits += 1
        tsize = 1 << bits
        group_cap = min(gi.shape[0], tsize // 2)
        shift = _U64(64 - bits)
        mask = tsize - 1
        tab[:, :tsize] = -1
        pn, pn2 = powers[n], powers[n - 2]
        for i in range(w):
            nd[i, _LABEL] = i
            nd[i, _NXT] = i + 1
            nd[i, _PRV] = i - 1
            nd[i, _AG] = -1
            nd[i, _BG] = -1
        nd[w - 1, _NXT] = -1
        head = 0
        nodes = w
        na = 0
        nb = 0
        hsize = 0
        for i in range(m):
            ha = prefix[i + n] - prefix[i] * pn
            hb = prefix[i + n - 1] - prefix[i + 1] * pn2
            na, _ = _a_insert(buf, nd, gi, gu, tab, na, 0, i, ha, n, exact, shift, mask, False)
            nb = _b_insert(nd, gi, gu, tab, nb, i, hb, shift, mask)
        for g in range(na):
            if gi[g, _GA_COUNT] >= 2:
                key = _heap_key(gi[g, _GA_COUNT], gi[g, _GA_MIN])
                hsize = _heap_push(hk, hg, hsize, key, g)
                gi[g, _GA_KEY] = key
        work += 2 * m
        arena = length
        changed = False
        restart = False
        grow = False
        seg_nodes = scratch[0]
        pred = scratch[1]
        seq = scratch[2]
        cand_v = scratch[3]
        cand_l = scratch[4]
        cand_label = scratch[5]
        sel_v = scratch[6]
        sel_l = scratch[7]
        local = np.empty(2 * n + 2, np.uint64)
        while hsize > 0:
            # Each group has at most one current entry (gi[_GA_KEY]); removals leave it too
            # high, so it is checked, and pushed again corrected, when it reaches the top.
            key = hk[0]
            g = hg[0]
            if gi[g, _GA_KEY] != key:
                hsize = _heap_pop(hk, hg, hsize)
                continue
            count = gi[g, _GA_COUNT]
            if gi[g, _GA_DIRTY]:
                low = _LABEL_MASK
                x = gi[g, _GA_HEAD]
                while x >= 0:
                    if nd[x, _LABEL] < low:
                        low = nd[x, _LABEL]
                    x = nd[x, _ANX]
                    work += 1
                gi[g, _GA_MIN] = low
                gi[g, _GA_DIRTY] = 0
            true_key = _heap_key(count, gi[g, _GA_MIN]) if count >= 2 else -1
            if true_key != key:
                hsize = _heap_pop(hk, hg, hsize)
                gi[g, _GA_KEY] = true_key
                if true_key >= 0:
                    hsize = _heap_push(hk, hg, hsize, true_key, g)
                continue
            if work > budget:
                restart = True
                break
            # The winner: the words of one of its windows.
            x = gi[g, _GA_HEAD]
            for k in range(n):
                seg_nodes[k] = x
                x = nd[x, _NXT]
            first_len = nd[seg_nodes[0], _WLEN]
            last_len = nd[seg_nodes[n - 1], _WLEN]
            # Its occurrences: the windows with the same inner words whose first
            # word ends, and last word starts, with the segment's end words.
            candidates = 0
            whole = 0
            v = gi[nd[seg_nodes[0], _BG], _GB_HEAD]
            while v >= 0:
                work += n
                ok = nd[v, _WLEN] >= first_len
                y = nd[v, _NXT]
                if ok:
                    for k in range(1, n - 1):
                        s = seg_nodes[k]
                        if (keys[y] != keys[s] or nd[y, _WLEN] != nd[s, _WLEN]
                                or not _equal(buf, nd[y, _WOFF], nd[s, _WOFF], nd[s, _WLEN])):
                            ok = False
                            break
                        y = nd[y, _NXT]
                if ok:
                    s = seg_nodes[n - 1]
                    ok = (nd[y, _WLEN] >= last_len and _equal(buf, nd[y, _WOFF], nd[s, _WOFF], last_len)
                          and _equal(buf, nd[v, _WOFF] + nd[v, _WLEN] - first_len, nd[seg_nodes[0], _WOFF],
                                     first_len))
                if ok:
                    cand_v[candidates] = v
                    cand_l[candidates] = y
                    cand_label[candidates] = nd[v, _LABEL]
                    candidates += 1
                    if nd[v, _WLEN] == first_len and nd[y, _WLEN] == last_len:
                        whole += 1
                v = nd[v, _BNX]
            if whole != count:
                # Two different windows share a hash: group by bytes from now on.
                exact = True
                restart = True
                break
            # Left to right without overlap, as str.replace finds them.
            order = np.argsort(cand_label[:candidates])
            selected = 0
            new_bytes = 0
            for idx in order:
                v = cand_v[idx]
                if selected > 0:
                    previous_last = sel_l[selected - 1]
                    if nd[v, _LABEL] < nd[previous_last, _LABEL]:
                        continue
                    if v == previous_last and nd[v, _WLEN] - first_len < last_len:
                        continue
                sel_v[selected] = v
                sel_l[selected] = cand_l[idx]
                new_bytes += nd[v, _WLEN] + nd[cand_l[idx], _WLEN]
                selected += 1
            if (nodes + selected > node_cap or na + selected * n > group_cap or nb + selected * n > group_cap
                    or hsize + selected * n + 8 > heap_cap or arena + new_bytes > arena_cap):
                restart = True  # out of room: start the level again from the current text,
                grow = not changed  # with larger arrays if even a fresh index had no room
                break
            # The segment and its count.
            a = seg_nodes[0]
            seg = 0
            for k in range(n):
                s = seg_nodes[k]
                if k > 0:
                    out[used + seg] = _SPACE
                    seg += 1
                out[used + seg:used + seg + nd[s, _WLEN]] = buf[nd[s, _WOFF]:nd[s, _WOFF] + nd[s, _WLEN]]
                seg += nd[s, _WLEN]
            out_offset[found_segments] = used
            out_length[found_segments] = seg
            out_count[found_segments] = count
            out_n[found_segments] = n
            found_segments += 1
            used += seg
            hsize = _heap_pop(hk, hg, hsize)
            gi[g, _GA_KEY] = -1
            gi[g, _GA_TOUCHED] = 1  # checked again below, like every group that grew
            gi[0, _TOUCHED_LIST] = g
            touched = 1
            changed = True
            # Each run of touching occurrences becomes one word.
            i = 0
            while i < selected:
                j = i
                while j + 1 < selected and sel_v[j + 1] == sel_l[j]:
                    j += 1
                a = sel_v[i]
                b = sel_l[j]
                z = nodes
                nodes += 1
                start = arena
                k = nd[a, _WLEN] - first_len
                buf[arena:arena + k] = buf[nd[a, _WOFF]:nd[a, _WOFF] + k]
                arena += k
                for t in range(i, j):
                    s = sel_l[t]
                    k = nd[s, _WLEN] - first_len - last_len
                    buf[arena:arena + k] = buf[nd[s, _WOFF] + last_len:nd[s, _WOFF] + last_len + k]
                    arena += k
                k = nd[b, _WLEN] - last_len
                buf[arena:arena + k] = buf[nd[b, _WOFF] + last_len:nd[b, _WOFF] + last_len + k]
                arena += k
                nd[z, _WOFF] = start
                nd[z, _WLEN] = arena - start
                keys[z] = _word_key(buf, start, arena, weak)
                nd[z, _LABEL] = nd[a, _LABEL]
                nd[z, _AG] = -1
                nd[z, _BG] = -1
                # Every window holding a replaced word goes.
                before = nd[a, _PRV]
                k = 0
                p = before
                while p >= 0 and k < n - 1:
                    pred[k] = p
                    k += 1
                    if nd[p, _AG] >= 0:
                        _destroy(nd, gi, p)
                    p = nd[p, _PRV]
                x = a
                while True:
                    if nd[x, _AG] >= 0:
                        _destroy(nd, gi, x)
                    work += 1
                    if x == b:
                        break
                    x = nd[x, _NXT]
                after = nd[b, _NXT]
                nd[z, _PRV] = before
                nd[z, _NXT] = after
                if before >= 0:
                    nd[before, _NXT] = z
                else:
                    head = z
                if after >= 0:
                    nd[after, _PRV] = z
                # The windows holding the new word come in.
                size = 0
                for t in range(k - 1, -1, -1):
                    seq[size] = pred[t]
                    size += 1
                at_z = size
                seq[size] = z
                size += 1
                x = after
                t = 0
                while x >= 0 and t < n - 1:
                    seq[size] = x
                    size += 1
                    t += 1
                    x = nd[x, _NXT]
                local[0] = 0
                for t in range(size):
                    local[t + 1] = local[t] * _BASE + keys[seq[t]]
                for t in range(at_z + 1):
                    if t + n > size:
                        break
                    ha = local[t + n] - local[t] * pn
                    hb = local[t + n - 1] - local[t + 1] * pn2
                    na, touched = _a_insert(buf, nd, gi, gu, tab, na, touched, seq[t], ha, n, exact,
                                            shift, mask, True)
                    nb = _b_insert(nd, gi, gu, tab, nb, seq[t], hb, shift, mask)
                work += 3 * n
                i = j + 1
            # One heap entry for each group that grew.
            for t in range(touched):
                g = gi[t, _TOUCHED_LIST]
                gi[g, _GA_TOUCHED] = 0
                count = gi[g, _GA_COUNT]
                if count >= 2:
                    key = _heap_key(count, gi[g, _GA_MIN])
                    if key > gi[g, _GA_KEY]:
                        hsize = _heap_push(hk, hg, hsize, key, g)
                        gi[g, _GA_KEY] = key
        if changed:
            length = _compact(buf, spare, nd, head)
        if restart:
            return n, length, found_segments, used, exact, grow
        if changed:
            # The reference never goes back up: the next level is n - 1.
            return n - 1, length, found_segments, used, exact, False
        n -= 1
    return n, length, found_segments, used, exact, False


class _Linear:
    """Scratch arrays of the linear kernel for a text of ``size`` bytes and ``words`` words.

    ``room`` scales the index (nodes, groups, heap); ``grow`` doubles it.
    """

    def __init__(self, size: int, words: int, n_max: int, n_min: int, room: int = 1):
        cap = words + 2
        self.size, self.words, self.n_max = size, words, n_max
        self.buf = np.empty(2 * size + 64, np.uint8)
        self.spare = np.empty(size + 64, np.uint8)
        self.prefix = np.empty(cap + 1, np.uint64)
        self.u8table = np.empty(16 * cap, np.uint8)
        self.run = np.empty(cap, np.int64)
        self.slots = np.empty(4 * cap, np.int64)
        self.c_hash = np.empty(cap, np.uint64)
        self.c_first = np.empty(cap, np.int64)
        self.c_count = np.empty(cap, np.int64)
        self.out = np.empty(size + 1, np.uint8)
        # A removal takes at least one occurrence out of the text, of n_min - 1 spaces at least.
        self.out_meta = np.empty((4, size // max(1, n_min - 1) + 2), np.int64)
        self._index(room)

    def _index(self, room: int) -> None:
        cap = self.words + 2
        self.room = room
        nodes = room * (cap + cap // 2) + 64
        groups = room * 2 * cap + 64
        bits = 4
        while (1 << bits) < 2 * groups:
            bits += 1
        self.nd = np.empty((nodes, _NODE_FIELDS), np.int64)
        self.keys = np.empty(nodes, np.uint64)
        self.gi = np.empty((groups, _GROUP_FIELDS), np.int64)
        self.gu = self.gi.view(np.uint64)
        self.tab = np.empty((2, 1 << bits), np.int32 if groups < 2**31 else np.int64)
        self.hk = np.empty(room * 2 * cap + 64, np.int64)
        self.hg = np.empty(room * 2 * cap + 64, np.int64)
        self.scratch = np.empty((8, room * cap + 2 * self.n_max + 2), np.int64)

    def grow(self) -> None:
        self._index(2 * self.room)


def mine_linear(text: str, n_max: int, n_min: int, weak_keys: bool = False,
                tick=None) -> tuple[list[tuple[str, int]], str]:
    """``mine`` in time about linear in the text's length (for long texts); same results.

    Returns to Python between levels and after a budget of work, so Ctrl-C
    works during a long text; ``tick()`` is called each time (progress).
    """
    if n_min < 2:
        raise ValueError("n_min must be at least 2 (a one-word window may be empty)")
    data = text.encode("utf-8", "surrogatepass")
    size = len(data)
    words = data.count(b" ") + 1
    ws = _Linear(size, words, n_max, n_min)
    ws.buf[:size] = np.frombuffer(data, dtype=np.uint8)
    powers = np.empty(n_max + 1, np.uint64)
    powers[0] = 1
    for k in range(1, n_max + 1):
        powers[k] = np.uint64(int(powers[k - 1]) * int(_BASE) % (1 << 64))
    meta = ws.out_meta
    n, length, found, used, exact = n_max, size, 0, 0, False
    budget = 8 * words + 200_000
    while n >= n_min:
        n, length, found, used, exact, grow = _level(
            ws.buf, ws.spare, length, n, n_min, weak_keys, exact, budget, ws.nd, ws.keys, ws.gi, ws.gu, ws.tab,
            ws.hk, ws.hg, ws.prefix, powers, ws.u8table, ws.run, ws.slots, ws.c_hash, ws.c_first, ws.c_count,
            ws.scratch, ws.out, meta[0], meta[1], meta[2], meta[3], found, used)
        if grow:
            ws.grow()
        if tick is not None:
            tick()
    raw = ws.out[:used].tobytes()
    mined: list[tuple[str, int]] = []
    per_n: dict[str, int] = {}
    level = None
    for offset, length_, count, size_n in zip(meta[0, :found].tolist(), meta[1, :found].tolist(),
                                              meta[2, :found].tolist(), meta[3, :found].tolist()):
        if size_n != level:
            mined.extend(per_n.items())
            per_n, level = {}, size_n
        segment = raw[offset:offset + length_].decode("utf-8", "surrogatepass")
        per_n[segment] = per_n.get(segment, 0) + count
    mined.extend(per_n.items())
    return mined, ws.buf[:length].tobytes().decode("utf-8", "surrogatepass")
