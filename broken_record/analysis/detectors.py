"""The ten loop and break types (README.md, "Loops and breaks"), found in each speaker's turns.

A conversation is a list of ``Reply`` objects, one per message in order
(the system prompt left out): what was said, by whom, whether the model
generated it, how it stopped when the log knows, and its message number
(the ``index`` of the ``.jsonl`` line, the reader's ``#m``). ``detect_all``
judges both speakers; each type function judges one speaker's turns and
returns ``{"present": bool, "turns": [that speaker's turn indices],
"severity": 0..1, ...}`` plus the figures that explain the verdict. Turn
indices count the speaker's messages from 0, the config's opening lines
included; ``messages`` gives the message numbers of the same turns.

**Severity is the same for every type**: the share of the speaker's
generated turns that show it (0.5: half of them). A type is present when at
least one turn shows it.

Similarity between two turns:

- **verbatim** (``verbatim_overlaps``): Dice overlap of their word-bigram
  multisets, 2·shared / (bigrams of one + bigrams of the other). Copied
  wording scores high even with small edits or a changed repeat count;
  a shared habitual opening in otherwise different turns scores low.
- **meaning** (``tfidf_cosines``): TF-IDF cosine over word 1-2-grams and
  character 4-grams. High meaning and low verbatim overlap is a paraphrase,
  the sign of semantic repetition.

Both are computed once per conversation with numpy over every pair of
messages at most ``WINDOW`` apart, so the work grows linearly with the
conversation. Nothing here reads files or prints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from broken_record.analysis.metrics import seq_rep_n, tokens

if TYPE_CHECKING:
    from broken_record.runs.reader import Turn

LOOP_TYPES = ("single_turn_loop", "multi_turn_loop", "intra_turn_repetition",
              "prefix_repetition", "semantic_repetition")
BREAK_TYPES = ("word_soup", "nothing_to_say", "apostrophe_break", "leading_whitespace", "rejection")
# The loop types that make a conversation "looping" (its loop onset): a habitual
# opening alone does not, unless it has grown into long repeated openings.
CONTENT_LOOPS = ("single_turn_loop", "multi_turn_loop", "intra_turn_repetition", "semantic_repetition")
SPEAKERS = ("assistant", "user")

NEAR_VERBATIM = 0.5  # verbatim overlap at or above which a turn repeats another
CONTAINED_MIN_BIGRAMS = 6  # below this many bigrams, the shorter turn's overlap is Dice, not containment
MAX_PERIOD = 8  # the longest cycle multi_turn_loop looks for, in the speaker's turns
PARAPHRASE_COSINE = 0.3  # TF-IDF cosine at or above which two turns say the same thing
SEMANTIC_WINDOW = 3  # a turn is compared with this many of the speaker's turns before it
WINDOW = 2 * MAX_PERIOD + 1  # messages apart that verbatim overlaps are scored for (both speakers interleaved)
MEANING_WINDOW = 2 * SEMANTIC_WINDOW + 1  # ... and meaning overlaps
INTRA_GRAM = 3  # intra-turn repetition: word n-grams of this size ...
INTRA_REPEATS = 3  # ... occurring this often in the turn ...
INTRA_COVER = 0.3  # ... covering at least this share of its words
INTRA_MIN_TOKENS = 12
PREFIX_WORDS = 3
PREFIX_SHARE = 0.5
PREFIX_LONG = 8  # shared openings of this many words count as a loop, not a habit
SOUP_ODD_SHARE = 0.2  # word soup: at least this share of the word characters in malformed words ...
SOUP_MIN_WORDS = 6
SOUP_SHORT_ODD_SHARE = 0.5  # ... at least half, in a turn of fewer words ...
SOUP_ODD_CHARACTERS = 0.3  # ... or at least this share of its word characters (long malformed stretches) ...
SOUP_FUNCTION_SHARE = 0.2  # ... or fewer function words than this (in 20+ words): no syntax
SOUP_FUNCTION_MIN_WORDS = 20
WHITESPACE_MIN = 2


@dataclass(frozen=True)
class Reply:
    """One turn as the detectors see it."""

    text: str  # stripped, speaker prefix removed
    raw: str = ""  # as generated, leading whitespace kept
    generated: bool = True  # False for the config's opening lines
    stop: str | None = None  # "eos" | "limit" | "word" | "error" | None
    tokens: int | None = None
    message: int = -1  # the message number (the .jsonl index); -1 when unknown
    speaker: str = "assistant"
    words: tuple[str, ...] = field(init=False, repr=False, compare=False)  # metrics.tokens(text), once

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(tokens(self.text)))

    @property
    def rep4(self) -> float:
        """seq-rep-4 of the words."""
        return seq_rep_n(self.words, 4)


def replies_from_turns(turns: Iterable[Turn]) -> list[Reply]:
    """``Reply`` objects from the turns read by runs/reader.py (``reader.Turn``), system prompts left out."""
    return [Reply(text=t.content, raw=t.raw, generated=t.source != "config", stop=t.stop, tokens=t.tokens,
                  message=t.index, speaker=t.role)
            for t in turns if t.role in SPEAKERS]


def _entry(replies: Sequence[Reply], turns: Iterable[int], **extra) -> dict:
    """A type's entry; severity is the share of the speaker's generated turns involved."""
    turns = sorted(set(int(t) for t in turns))
    generated = sum(1 for r in replies if r.generated)
    return {"present": bool(turns), "turns": turns, "messages": [replies[t].message for t in turns],
            "severity": round(len(turns) / generated, 4) if generated else 0.0, **extra}


def _loop_entry(replies: Sequence[Reply], turns: Iterable[int], **extra) -> dict:
    entry = _entry(replies, turns, **extra)
    onset = entry["turns"][0] if entry["turns"] else None
    entry["onset"] = onset
    entry["onset_message"] = replies[onset].message if onset is not None else None
    return entry


# --- similarity ------------------------------------------------------------------

_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


def _word_hashes(words: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word of every text, the text each belongs to)."""
    sizes = [len(toks) for toks in words]
    hashes = np.fromiter((hash(w) for toks in words for w in toks), dtype=np.int64,
                         count=sum(sizes)).view(np.uint64)
    return hashes, np.repeat(np.arange(len(words)), sizes)


def _bigrams(hashes: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word bigrams inside each text, and their texts."""
    same = owner[1:] == owner[:-1]
    grams = ((hashes[:-1] * _MIX) ^ (hashes[1:] * _MIX2) ^ np.uint64(1))[same]
    return grams, owner[1:][same]


def _pair_sums(feature: np.ndarray, text: np.ndarray, weight: np.ndarray, count: int, window: int) -> np.ndarray:
    """``out[i, d]``: sum over the features texts i and i - d share of the product of their weights.

    ``feature``/``text``/``weight``: one row per (feature, text), each pair
    once, sorted by feature then text; so texts at most ``window`` apart
    that share a feature are at most ``window`` rows apart.
    """
    out = np.zeros((count, window + 1))
    for step in range(1, window + 1):
        if step >= len(feature):
            break
        keep = (feature[step:] == feature[:-step]) & (text[step:] - text[:-step] <= window)
        gap = text[step:][keep] - text[:-step][keep]
        np.add.at(out, (text[step:][keep], gap), weight[step:][keep] * weight[:-step][keep])
    return out


def _rows(ids: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (feature, text) rows sorted by feature then text, with their counts.

    The text index takes the low 24 bits of the key (a feature keeps 40 bits).
    """
    keys, counts = np.unique((ids & ~np.uint64(0xFFFFFF)) | owner.astype(np.uint64), return_counts=True)
    return keys >> np.uint64(24), (keys & np.uint64(0xFFFFFF)).astype(np.int64), counts


def verbatim_overlaps(words: Sequence[tuple], window: int = WINDOW,
                      hashed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``out[i, d]``: the verbatim overlap of texts i and i - d, for 0 < d <= window.

    Over word-bigram multisets: the share of the shorter text's bigrams that
    the other holds too (so a turn that says its predecessor again five
    times repeats it), or, when the shorter has fewer than
    ``CONTAINED_MIN_BIGRAMS`` (a stock phrase such as ``*smiles*`` inside a
    long turn is no repeat), the Dice overlap 2·shared / (both sizes).
    ``[("a","b","c"), ("a","b","c")]`` -> ``out[1, 1] == 1.0``.
    """
    count = len(words)
    if count > 0xFFFFFF:
        raise ValueError("verbatim_overlaps: at most 16M texts")
    hashes, owner = hashed if hashed is not None else _word_hashes(words)
    grams, gram_owner = _bigrams(hashes, owner)
    sizes = np.bincount(gram_owner, minlength=count).astype(np.float64)
    # A bigram said twice in a text is two features: (gram, 1st) and (gram, 2nd).
    order = np.lexsort((grams, gram_owner))
    grams, gram_owner = grams[order], gram_owner[order]
    first = np.concatenate(([True], (grams[1:] != grams[:-1]) | (gram_owner[1:] != gram_owner[:-1])))
    starts = np.flatnonzero(first)
    rank = np.arange(len(grams)) - np.repeat(starts, np.diff(np.append(starts, len(grams))))
    ids = (grams ^ (rank.astype(np.uint64) * _MIX2)) * _MIX
    feature, text, _ = _rows(ids, gram_owner)
    shared = _pair_sums(feature, text, np.ones(len(feature)), count, window)
    other = np.array([np.roll(sizes, d) for d in range(window + 1)]).T  # other[i, d] = sizes[i - d]
    total = sizes[:, None] + other
    shorter = np.minimum(sizes[:, None], other)
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(total > 0, 2 * shared / total, 0.0)
        contained = np.where(shorter > 0, shared / shorter, 0.0)
    return np.where(shorter >= CONTAINED_MIN_BIGRAMS, contained, dice)


def _feature_ids(texts: Sequence[str], words: Sequence[tuple],
                 hashed: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(text index, feature id) of every feature occurrence of every text.

    Features: word unigrams and bigrams, and character 4-grams of the
    lower-cased text with runs of whitespace made one space.
    """
    unigrams, word_owner = hashed if hashed is not None else _word_hashes(words)
    bigrams, bigram_owner = _bigrams(unigrams, word_owner)
    owners, ids = [word_owner, bigram_owner], [unigrams, bigrams]
    flats = [" ".join(t.lower().split()) for t in texts]
    codes = np.frombuffer("\x00".join(flats).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    if len(codes) >= 4:
        # Three code points (21 bits each) in one number, mixed, then the
        # fourth added and mixed again so that it reaches the high bits too.
        grams = (codes[:-3] << np.uint64(42)) | (codes[1:-2] << np.uint64(21)) | codes[2:-1]
        grams = ((grams * _MIX) ^ (grams >> np.uint64(31))) + codes[3:] + np.uint64(1 << 62)
        grams = (grams * _MIX2) ^ (grams >> np.uint64(29))
        # Each text's 4-grams, leaving out those that cross a separator.
        lengths = [len(f) + 1 for f in flats]
        gram_owner = np.repeat(np.arange(len(flats)), lengths)[:len(grams)]
        ends = np.cumsum(lengths) - 1  # the separator (or the end) after each text
        inside = np.arange(len(grams)) + 4 <= ends[gram_owner]
        ids.append(grams[inside])
        owners.append(gram_owner[inside])
    return np.concatenate(owners), np.concatenate(ids)


def tfidf_matrix(texts: Sequence[str], window: int, words: Sequence[tuple] | None = None,
                 hashed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``out[i, d]``: TF-IDF cosine of texts i and i - d, for 0 < d <= window.

    Features: word unigrams and bigrams and character 4-grams; sublinear tf
    (1 + log count), smoothed idf over the given texts, L2-normalised rows.
    """
    count = len(texts)
    if count > 0xFFFFFF:
        raise ValueError("tfidf_matrix: at most 16M texts")
    if count < 2:
        return np.zeros((count, window + 1))
    words = words if words is not None else [tuple(tokens(t)) for t in texts]
    owner, ids = _feature_ids(texts, words, hashed)
    feature, text, counts = _rows(ids, owner)
    tf = 1.0 + np.log(counts.astype(np.float64))
    first_of_feature = np.concatenate(([True], feature[1:] != feature[:-1]))
    group = np.cumsum(first_of_feature) - 1
    df = np.bincount(group)
    weight = tf * (np.log((1 + count) / (1 + df[group])) + 1.0)
    norms = np.sqrt(np.bincount(text, weights=weight ** 2, minlength=count))
    weight = weight / np.where(norms[text] > 0, norms[text], 1.0)
    return _pair_sums(feature, text, weight, count, window)


def tfidf_cosines(texts: list[str], window: int = SEMANTIC_WINDOW,
                  words: list[tuple] | None = None) -> dict[tuple[int, int], float]:
    """Cosine of TF-IDF vectors for each pair (i, j) with 0 < i - j <= window (``tfidf_matrix``).

    ``["a cat sat", "a cat sat"]`` -> ``{(1, 0): 1.0}``.
    """
    dots = tfidf_matrix(texts, window, words)
    return {(i, i - d): float(dots[i, d]) for i in range(len(texts)) for d in range(1, min(window, i) + 1)}


class Similarity:
    """Verbatim and meaning overlaps of a conversation's turns, computed once.

    Positions are indices into the list the object was built from; ``of``
    gives a view of one speaker's turns with that speaker's indices.
    """

    def __init__(self, replies: Sequence[Reply], hashed: tuple[np.ndarray, np.ndarray] | None = None,
                 _parts: tuple[np.ndarray, np.ndarray, list[int]] | None = None):
        if _parts is None:
            words = [r.words for r in replies]
            hashed = hashed if hashed is not None else _word_hashes(words)
            self._dice = verbatim_overlaps(words, WINDOW, hashed)
            self._cos = tfidf_matrix([r.text for r in replies], MEANING_WINDOW, words, hashed)
            self._pos = list(range(len(replies)))
        else:
            self._dice, self._cos, self._pos = _parts

    def of(self, positions: Sequence[int]) -> Similarity:
        """The same overlaps, indexed by position in ``positions`` (one speaker's turns)."""
        return Similarity([], _parts=(self._dice, self._cos, [self._pos[p] for p in positions]))

    def _at(self, matrix: np.ndarray, i: int, j: int) -> float:
        a, b = self._pos[i], self._pos[j]
        if a < b:
            a, b = b, a
        gap = a - b
        return float(matrix[a, gap]) if 0 < gap < matrix.shape[1] else 0.0

    def verbatim(self, i: int, j: int) -> float:
        return self._at(self._dice, i, j)

    def cosine(self, i: int, j: int) -> float:
        return self._at(self._cos, i, j)


def _similarity(replies: Sequence[Reply], sim: Similarity | None) -> Similarity:
    return sim if sim is not None else Similarity(replies)


def _repeats(replies: Sequence[Reply], sim: Similarity, i: int, j: int) -> bool:
    if sim.verbatim(i, j) >= NEAR_VERBATIM:
        return True
    # Turns too short for bigrams repeat when they are the same words.
    a, b = replies[i].words, replies[j].words
    return len(a) < 2 and len(b) < 2 and bool(a) and a == b


# --- loops -------------------------------------------------------------------------


def single_turn_loop(replies: Sequence[Reply], sim: Similarity | None = None) -> dict:
    """A turn is a near-verbatim repeat of the speaker's previous turn."""
    sim = _similarity(replies, sim)
    pairs = [(i - 1, i, round(sim.verbatim(i, i - 1), 4)) for i in range(1, len(replies))
             if replies[i].generated and _repeats(replies, sim, i, i - 1)]
    return _loop_entry(replies, [b for _, b, _ in pairs], pairs=[[a, b] for a, b, _ in pairs],
                       overlap={str(b): v for _, b, v in pairs})


def multi_turn_loop(replies: Sequence[Reply], sim: Similarity | None = None) -> dict:
    """Turn i repeats turn i - k, 2 <= k <= 8, for at least k turns in a row (two cycles).

    A run explained by a one-turn loop (each turn repeating the one before)
    does not count.
    """
    sim = _similarity(replies, sim)
    count = len(replies)

    def similar(i: int, k: int) -> bool:
        return i - k >= 0 and replies[i].generated and _repeats(replies, sim, i, i - k)

    found: list[tuple[int, int, int]] = []  # (period, first repeating turn, last)
    claimed: set[int] = set()
    for k in range(2, MAX_PERIOD + 1):
        i = k
        while i < count:
            if not similar(i, k):
                i += 1
                continue
            start = i
            while i < count and similar(i, k):
                i += 1
            run = range(start, i)
            period_one = all(similar(t, 1) for t in run)
            if len(run) >= k and not period_one and not set(run) <= claimed:
                found.append((k, start, i - 1))
                claimed.update(run)
    return _loop_entry(replies, claimed, cycles=[{"period": k, "from": a, "to": b} for k, a, b in found])


def char_runs(texts: list[str], longest_unit: int = 10, repeats: int = 6, min_chars: int = 12) -> dict[int, int]:
    """Texts holding a unit of 1..longest_unit characters repeated ``repeats`` times in a row.

    Returns ``{text index: length of its longest such run}``.
    ``["ok", "hahahahahahaha!"]`` -> ``{1: 14}``.
    """
    if not texts:
        return {}
    joined = "\x00".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    offsets = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    found: dict[int, int] = {}
    for unit in range(1, longest_unit + 1):
        if len(codes) <= unit:
            break
        # A u-periodic stretch of length L shows as L - u equal pairs at distance u.
        same = (codes[unit:] == codes[:-unit]) & (codes[unit:] != 0)
        edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
        starts, ends = (edges == 1).nonzero()[0], (edges == -1).nonzero()[0]
        lengths = ends - starts
        keep = lengths >= max((repeats - 1) * unit, min_chars - unit)
        for start, length in zip(starts[keep].tolist(), lengths[keep].tolist()):
            which = int(np.searchsorted(offsets, start, side="right")) - 1
            found[which] = max(found.get(which, 0), length + unit)
    return found


def repeated_cover(words: Sequence[tuple], n: int = INTRA_GRAM, repeats: int = INTRA_REPEATS,
                   hashed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per text: the share of its words inside a word n-gram that occurs ``repeats``+ times in it.

    ``[("a","b","c")*3]`` -> ``[1.0]``; a text without such n-grams -> 0.0.
    """
    count = len(words)
    cover = np.zeros(count)
    hashes, owner = hashed if hashed is not None else _word_hashes(words)
    if len(hashes) < n:
        return cover
    grams = hashes[:1 - n] if n > 1 else hashes
    for k in range(1, n):
        grams = (grams * _MIX) ^ hashes[k:len(hashes) - n + 1 + k]
    gram_owner = owner[:len(grams)]
    inside = gram_owner == owner[n - 1:]
    keys = (grams & ~np.uint64(0xFFFFFF)) | gram_owner.astype(np.uint64)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    hot = inside & (counts[inverse.ravel()] >= repeats)
    edges = np.zeros(len(hashes) + 1, dtype=np.int64)
    starts = np.flatnonzero(hot)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + n, -1)
    covered = np.cumsum(edges)[:len(hashes)] > 0
    sizes = np.bincount(owner, minlength=count)
    hits = np.bincount(owner, weights=covered.astype(np.float64), minlength=count)
    np.divide(hits, sizes, out=cover, where=sizes > 0)
    return cover


def intra_turn_repetition(replies: Sequence[Reply], cover: np.ndarray | None = None,
                          runs: dict[int, int] | None = None) -> dict:
    """Inside one turn a phrase (or a template, or a character run) repeats over and over.

    Evidence: the share of the turn's words inside a word 3-gram that occurs
    3+ times in the turn (``repeated_cover``), or a character unit repeated
    6+ times in a row (``char_runs``); either must cover at least 30% of the turn.
    """
    if cover is None:
        cover = repeated_cover([r.words for r in replies])
    if runs is None:
        runs = char_runs([r.text if r.generated else "" for r in replies])
    flagged = [i for i, r in enumerate(replies) if r.generated and (
        (len(r.words) >= INTRA_MIN_TOKENS and cover[i] >= INTRA_COVER)
        or (i in runs and runs[i] >= INTRA_COVER * len(r.text)))]
    return _loop_entry(replies, flagged, repeated_cover={str(i): round(float(cover[i]), 4) for i in flagged},
                       char_runs={str(i): c for i, c in runs.items()})


def _common_prefix_words(a: tuple, b: tuple) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def opening_words(text: str, most: int = 4 * PREFIX_LONG) -> tuple[str, ...]:
    """A turn's first ``most`` words: split on whitespace, lower-cased, quotes and punctuation around them dropped.

    An action between asterisks stays one word. ``'*smiles* "Oh, Theo!'`` -> ``("*smiles*", "oh", "theo")``.
    """
    words = (w.strip(_OPENING_STRIP) for w in text[:20 * most].lower().replace("’", "'").split(None, most)[:most])
    return tuple(w for w in words if w)


_OPENING_STRIP = "\"“”'.,!?;:()[]…-"


def prefix_repetition(replies: Sequence[Reply]) -> dict:
    """Most generated turns open with the same three words; says whether the shared opening grows or is long."""
    openings = {i: opening_words(r.text) for i, r in enumerate(replies) if r.generated}
    gen = [i for i, words in openings.items() if len(words) >= PREFIX_WORDS]
    empty = _loop_entry(replies, [], prefix=None, growing=False, long=False)
    if len(gen) < 3:
        return empty
    counts = Counter(openings[i][:PREFIX_WORDS] for i in gen)
    prefix, count = counts.most_common(1)[0]
    if count < 3 or count / len(gen) < PREFIX_SHARE:
        return empty
    turns = [i for i in gen if openings[i][:PREFIX_WORDS] == prefix]
    shared = [_common_prefix_words(openings[a], openings[b]) for a, b in zip(turns, turns[1:])]
    half = len(shared) // 2
    growing = bool(half) and sum(shared[half:]) / (len(shared) - half) > sum(shared[:half]) / half
    long = sorted(shared)[len(shared) // 2] >= PREFIX_LONG  # the median shared opening
    entry = _loop_entry(replies, turns, prefix=" ".join(prefix), shared_prefix_words=shared,
                        growing=growing, long=long)
    entry["onset"] = turns[1]  # the first turn that repeats the opening
    entry["onset_message"] = replies[turns[1]].message
    return entry


def semantic_repetition(replies: Sequence[Reply], sim: Similarity | None = None) -> dict:
    """A turn says what one of the speaker's 3 turns before it said, in other words."""
    sim = _similarity(replies, sim)
    pairs = []
    for i, reply in enumerate(replies):
        if not reply.generated or not reply.words:
            continue
        for j in range(max(0, i - SEMANTIC_WINDOW), i):
            if not replies[j].words:
                continue
            cos, verbatim = sim.cosine(i, j), sim.verbatim(i, j)
            if cos >= PARAPHRASE_COSINE and verbatim < NEAR_VERBATIM:
                pairs.append((j, i, round(cos, 4), round(verbatim, 4)))
    return _loop_entry(replies, [i for _, i, _, _ in pairs],
                       pairs=[{"turns": [j, i], "cosine": c, "verbatim": v} for j, i, c, v in pairs])


# --- breaks ------------------------------------------------------------------------

_STRIP = "\"'*()[],.!?;:"  # punctuation that does not make a word
_SPACES = np.array([0, 9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x2028, 0x2029, 0x3000], dtype=np.uint32)
_STRIP_CODES = np.array(sorted(ord(c) for c in _STRIP), dtype=np.uint32)
_PUNCT_TOKEN = re.compile(r"[^\w\s]")
_FUNCTION_WORDS = """
a an the and or but if so as at by for from in into of on onto to with without about over under
i me my mine you your yours he him his she her hers it its we us our they them their this that these
those there here what who whom which when where why how not no yes do does did done is am are was were
be been being have has had will would can could shall should may might must just very too also then
than all any some more most much many such only own same again out up down off now one oh well okay ok
i'm i've i'll i'd you're you've you'll it's that's don't can't won't isn't let's what's there's
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())


def _codes(texts: Sequence[str]) -> np.ndarray:
    """The code points of the texts joined by NUL characters."""
    return np.frombuffer("\x00".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def malformed_shares(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the share of its words that are malformed, and the share of its word characters in them.

    A word is a run of non-space characters; its size counts the characters
    other than ``"'*()[],.!?;:`` (a word of those alone does not count). It
    is malformed when two characters in it are a lower-case letter then a
    capital (camelCase joins: "plutoniumsideMigamb"), a letter and a digit
    either way, or an ASCII letter and a non-ASCII letter either way
    (typographic punctuation such as ’ or “ is not a letter), or when it has
    19 or more characters, or 3 or more hyphens ("Sparrow-Birds-Gorgon-...").
    ``["a bridgeListLiterie b", "fine"]`` -> ``([1/3, 0.0], [17/19, 0.0])``.
    """
    count = len(texts)
    codes = _codes(texts)
    if not len(codes):
        return np.zeros(count), np.zeros(count)
    lower = (codes >= 97) & (codes <= 122)
    upper = (codes >= 65) & (codes <= 90)
    digit = (codes >= 48) & (codes <= 57)
    ascii_letter = lower | upper
    foreign = (codes > 127) & ~np.isin(codes, _SPACES) & ~((codes >= 0xA0) & (codes <= 0xBF)) \
        & ~((codes >= 0x2000) & (codes <= 0x206F)) & ~((codes >= 0x3000) & (codes <= 0x303F))
    a, b = slice(None, -1), slice(1, None)
    joined = (lower[a] & upper[b]) | (ascii_letter[a] & digit[b]) | (digit[a] & ascii_letter[b]) \
        | (foreign[a] & ascii_letter[b]) | (ascii_letter[a] & foreign[b])
    space = np.isin(codes, _SPACES)
    word = np.cumsum(space)  # the word each character is in (a space starts a new one)
    owner = np.cumsum(codes == 0)  # the text each character is in
    solid = ~space & ~np.isin(codes, _STRIP_CODES)
    words = word[solid]
    sizes = np.bincount(words, minlength=word[-1] + 1)
    real = sizes > 0
    odd = np.zeros(len(sizes), dtype=bool)
    odd[word[1:][joined]] = True
    odd |= sizes >= 19
    odd |= np.bincount(word[codes == 45], minlength=len(sizes)) >= 3  # "Sparrow-Birds-Gorgon-Skin-..."
    odd &= real
    # the text of each word: that of its first character
    first = np.searchsorted(word, np.arange(len(sizes)))
    word_owner = owner[np.minimum(first, len(owner) - 1)]
    shares = []
    for weights in (np.ones(len(sizes)), sizes.astype(np.float64)):
        totals = np.bincount(word_owner[real], weights=weights[real], minlength=count)[:count]
        hits = np.bincount(word_owner[odd], weights=weights[odd], minlength=count)[:count]
        out = np.zeros(count)
        np.divide(hits, totals, out=out, where=totals > 0)
        shares.append(out)
    return shares[0], shares[1]


_FUNCTION_HASHES = np.array(sorted({hash(w) for w in FUNCTION_WORDS}), dtype=np.int64).view(np.uint64)


def lexical_counts(replies: Sequence[Reply]) -> np.ndarray:
    """Per reply: its word tokens, punctuation tokens left out."""
    return np.array([len(r.words) - len(_PUNCT_TOKEN.findall(r.text)) for r in replies], dtype=np.float64)


def function_word_shares(words: Sequence[tuple], hashed: tuple[np.ndarray, np.ndarray] | None = None,
                         lexical: np.ndarray | None = None) -> np.ndarray:
    """Per text: the share of its word tokens that are English function words (syntax); punctuation left out.

    ``[("i", "like", "the", "sea", ".")]`` -> ``[0.5]``.
    """
    hashes, owner = hashed if hashed is not None else _word_hashes(words)
    count = len(words)
    if lexical is None:
        lexical = np.array([sum(1 for t in w if not _PUNCT_TOKEN.fullmatch(t)) for w in words], dtype=np.float64)
    hits = np.bincount(owner, weights=np.isin(hashes, _FUNCTION_HASHES).astype(np.float64), minlength=count)
    out = np.zeros(count)
    np.divide(hits, lexical, out=out, where=lexical > 0)
    return out


def word_soup(replies: Sequence[Reply], turn_max_tokens: int | None = None, syntax: np.ndarray | None = None,
              odd: np.ndarray | None = None, lexical: np.ndarray | None = None,
              odd_chars: np.ndarray | None = None) -> dict:
    """The text is not language: malformed or glued words, or words without syntax.

    A property of the text, whatever ended the turn: at least 20% of its
    words malformed (``malformed_shares``; at least half in a turn of fewer
    than 6 words), or at least 30% of its word characters in malformed
    words (long malformed stretches), or fewer than 20% function words in
    20+ words. Stopping on the turn limit is reported beside it.
    """
    flagged, limit_turns, scores = [], [], {}
    if syntax is None:
        syntax = function_word_shares([r.words for r in replies])
    if odd is None or odd_chars is None:
        odd, odd_chars = malformed_shares([r.text for r in replies])
    if lexical is None:
        lexical = lexical_counts(replies)
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        if reply.stop == "limit" or (reply.stop is None and turn_max_tokens is not None
                                     and reply.tokens is not None and reply.tokens >= turn_max_tokens):
            limit_turns.append(i)
        malformed, stretches = float(odd[i]), float(odd_chars[i])
        function = float(syntax[i]) if lexical[i] >= SOUP_FUNCTION_MIN_WORDS else 1.0
        needed = SOUP_ODD_SHARE if lexical[i] >= SOUP_MIN_WORDS else SOUP_SHORT_ODD_SHARE
        if (lexical[i] >= 1 and malformed >= needed) or function < SOUP_FUNCTION_SHARE \
                or (lexical[i] >= SOUP_MIN_WORDS and stretches >= SOUP_ODD_CHARACTERS):
            flagged.append(i)
            scores[str(i)] = {"odd_words": round(malformed, 4), "odd_characters": round(stretches, 4),
                              "function_words": round(function, 4)}
    return _entry(replies, flagged, limit_turns=limit_turns, evidence=scores)


_EMPTYISH = re.compile(r"^[\W_]*$")


_VERB_LIST = """is are am was were be been do does did have has had can will would could should shall may
might must let's it's that's i'm you're we're they're he's she's what's there's here's who's i'll you'll
i've i'd don't can't won't isn't"""
_VERBS = frozenset(_VERB_LIST.split())


def near_empty(text: str) -> bool:
    """Nothing, punctuation only, or a fragment of at most two words that is not a sentence.

    A fragment is not a sentence when it asks nothing (no ``?``) and has no
    verb of a short list (is, are, do, can, it's, I'm...): "Yes." and "The
    coffee" are near-empty, "What's that?" and "It is." are not.
    """
    if len(text) <= 2 or _EMPTYISH.match(text):
        return True
    words = opening_words(text, 3)
    if len(words) > 2 or text.rstrip().endswith("?"):
        return False
    return not any(w in _VERBS for w in words)


def nothing_to_say(replies: Sequence[Reply], odd: np.ndarray | None = None) -> dict:
    """Empty or near-empty turns (``near_empty``); a fragment of malformed words ("6381hK") is word soup instead."""
    if odd is None:
        odd = malformed_shares([r.text for r in replies])[0]
    return _entry(replies, [i for i, r in enumerate(replies)
                            if r.generated and near_empty(r.text) and odd[i] < SOUP_SHORT_ODD_SHARE])


# Ends on an apostrophe, or one or two letters after it that finish no contraction.
_CUT_AT_APOSTROPHE = re.compile(r"\w['’](?!(?:s|t|m|d|re|ve|ll)$)\w{0,2}$", re.I)
_APOSTROPHE_GARBAGE = re.compile(
    r"(?<=\w)['’]\s+(?:s|t|m|re|ve|ll|d)\b"  # "I' m", "don' t"
    r"|(?<=\w\s)['’](?:s|t|m|re|ve|ll|d)\b"  # "I 'm"
    r"|['’]{2,}\w"  # "it''s"
    r"|(?<=\w)['’][^\s\w\"'’.,!?;:)\]*…-]",  # an apostrophe followed by a stray symbol
    re.I)
# A contraction whose apostrophe came out as mojibake or stray symbols: "wonÃ¶t", "doesnâ€™re", "don¿ts".
_MOJIBAKE_APOSTROPHE = re.compile(
    r"[A-Za-z](?:[ÃâÂ][^\s\w]{0,2}|[^\x00-\x7f\w\s“”‘’…—–]{1,3})(?:t|s|re|ve|ll|m|d)s?\b")


def _garbled(text: str) -> bool:
    """``_APOSTROPHE_GARBAGE`` anywhere in the text (looked for only around its apostrophes), or a mojibake one."""
    if not text.isascii() and _MOJIBAKE_APOSTROPHE.search(text):
        return True
    for quote in ("'", "’"):
        at = text.find(quote)
        while at != -1:
            # every pattern lies within 3 characters before and 7 after the apostrophe
            if _APOSTROPHE_GARBAGE.search(text, max(0, at - 3), at + 8):
                return True
            at = text.find(quote, at + 1)
    return False


def apostrophe_break(replies: Sequence[Reply]) -> dict:
    """Generation goes wrong at apostrophes: turns cut off at one, or garbage around them."""
    # The cut can only be in the last four characters: look there, not along the whole turn.
    cut = [i for i, r in enumerate(replies) if r.generated and _CUT_AT_APOSTROPHE.search(r.text[-5:])]
    garbled = [i for i, r in enumerate(replies) if r.generated and _garbled(r.text)]
    return _entry(replies, set(cut) | set(garbled), cut_off=cut, garbled=garbled)


def leading_whitespace(replies: Sequence[Reply]) -> dict:
    """Turns that start with 2 or more whitespace characters; says whether the amount grows."""
    counts = {i: len(r.raw) - len(r.raw.lstrip()) for i, r in enumerate(replies) if r.generated}
    flagged = [i for i, c in counts.items() if c >= WHITESPACE_MIN]
    values = [counts[i] for i in flagged]
    return _entry(replies, flagged, whitespace={str(i): c for i, c in counts.items() if c},
                  growing=len(values) >= 2 and values[-1] > values[0])


_REJECTION = re.compile(
    r"\bas an ai\b|\bas a (?:large )?language model\b|\bi(?:'m| am) (?:just )?an? (?:ai|artificial intelligence"
    r"|language model|virtual assistant|assistant)\b|\bi (?:can(?:'|no)t|cannot|won't|am unable to|'m unable to"
    r"|am not able to|'m not able to) (?:continue|help with|assist with|comply|fulfill|engage in|participate"
    r"|generate|provide|role-?play|do that|write that)\b|\bi (?:must|have to) (?:decline|refuse)\b"
    r"|\bagainst my (?:guidelines|programming|policy|policies)\b|\bi apologi[sz]e,? but\b"
    r"|\bi'm sorry,? but i (?:can(?:'|no)t|cannot|won't)\b|\bopenai\b|\bi don't have personal (?:feelings|experiences|opinions)\b"
    r"|\bnot a substitute for (?:a )?professional\b|\b(?:unable|not able) to access (?:your )?personal\b"
    r"|\bi(?:'m| am) here to assist you\b",
    re.I)


# Every _REJECTION phrase holds one of these: turns without any are not searched.
_REJECTION_KEYS = ("ai", "language model", "assist", "artificial", "can't", "cannot", "can not", "won't",
                   "unable", "not able", "decline", "refuse", "against my", "apologi", "sorry", "personal",
                   "substitute")


def rejection(replies: Sequence[Reply]) -> dict:
    """The speaker refuses or steps out of character ("I can't continue this", "As an AI...")."""
    phrases = {}
    for i, reply in enumerate(replies):
        if reply.generated:
            text = reply.text.replace("’", "'")
            lower = text.lower()
            if not any(key in lower for key in _REJECTION_KEYS):
                continue
            m = _REJECTION.search(text)
            if m:
                phrases[i] = m.group(0)
    return _entry(replies, phrases, phrases={str(i): p for i, p in phrases.items()})


# --- all together --------------------------------------------------------------------


def detect(replies: Sequence[Reply], turn_max_tokens: int | None = None, sim: Similarity | None = None,
           cover: np.ndarray | None = None, syntax: np.ndarray | None = None,
           odd: np.ndarray | None = None, runs: dict[int, int] | None = None,
           lexical: np.ndarray | None = None, odd_chars: np.ndarray | None = None) -> tuple[dict, dict, int | None]:
    """``(loops, breaks, loop_onset_turn)`` for one speaker's turns."""
    sim = _similarity(replies, sim)
    loops = {
        "single_turn_loop": single_turn_loop(replies, sim),
        "multi_turn_loop": multi_turn_loop(replies, sim),
        "intra_turn_repetition": intra_turn_repetition(replies, cover, runs),
        "prefix_repetition": prefix_repetition(replies),
        "semantic_repetition": semantic_repetition(replies, sim),
    }
    breaks = {
        "word_soup": word_soup(replies, turn_max_tokens, syntax, odd, lexical, odd_chars),
        "nothing_to_say": nothing_to_say(replies, odd),
        "apostrophe_break": apostrophe_break(replies),
        "leading_whitespace": leading_whitespace(replies),
        "rejection": rejection(replies),
    }
    return loops, breaks, loop_onset_turn(loops)


def loop_onset_turn(loops: dict) -> int | None:
    """The first turn where a content loop begins (a long repeated opening counts too), or None."""
    onsets = [entry["onset"] for name, entry in loops.items() if entry["present"] and entry.get("onset") is not None
              and (name in CONTENT_LOOPS or entry.get("long"))]
    return min(onsets) if onsets else None


def echoes(replies: Sequence[Reply], sim: Similarity) -> dict[str, list[int]]:
    """Per speaker, the message numbers of its turns that near-verbatim repeat the other speaker's turn just before."""
    out: dict[str, list[int]] = {s: [] for s in SPEAKERS}
    for i in range(1, len(replies)):
        a, b = replies[i], replies[i - 1]
        if a.generated and a.speaker != b.speaker and a.speaker in out and _repeats(replies, sim, i, i - 1):
            out[a.speaker].append(a.message)
    return out


def drivers(replies: Sequence[Reply], segments: Sequence[tuple[str, int]], echoed: dict[str, list[int]]) -> dict:
    """Who drives the repetition: which speaker first said each repeated segment, and how often each copies the other.

    ``segments``: the classic miner's top segments ``(text, count)``. A
    segment is looked up in every turn's text (case as written); the
    speaker of the first turn holding it said it first. ``driven_by`` is the
    speaker who first said the segments that repeat most (weighted by their
    counts), or None without any.
    """
    found = []
    weight = dict.fromkeys(SPEAKERS, 0)
    for segment, count in segments:
        holders = [r for r in replies if segment in r.text]
        if not holders:
            continue
        first = holders[0]
        per = Counter(r.speaker for r in holders)
        found.append({"segment": segment, "count": count, "first_message": first.message,
                      "first_speaker": first.speaker, "turns": {s: per.get(s, 0) for s in SPEAKERS}})
        if first.speaker in weight:
            weight[first.speaker] += count
    total = sum(weight.values())
    driven = max(SPEAKERS, key=lambda s: weight[s]) if total else None
    return {"driven_by": driven, "first_share": {s: round(weight[s] / total, 4) if total else 0.0 for s in SPEAKERS},
            "echoes": {s: len(echoed[s]) for s in SPEAKERS}, "segments": found}


def detect_all(replies: Sequence[Reply], turn_max_tokens: dict[str, int | None] | int | None = None,
               segments: Sequence[tuple[str, int]] = ()) -> dict:
    """Both speakers of one conversation, with the similarity computed once over all its turns.

    Returns ``{"assistant": {"loops", "breaks", "loop_onset_turn",
    "loop_onset_message"}, "user": {...}, "echoes": {...}, "drivers": {...}}``.
    """
    words = [r.words for r in replies]
    hashed = _word_hashes(words)
    sim = Similarity(replies, hashed)
    cover = repeated_cover(words, hashed=hashed)
    lexical = lexical_counts(replies)
    syntax = function_word_shares(words, hashed, lexical)
    odd, odd_chars = malformed_shares([r.text for r in replies])
    runs = char_runs([r.text if r.generated else "" for r in replies])
    out: dict = {}
    for speaker in SPEAKERS:
        positions = [i for i, r in enumerate(replies) if r.speaker == speaker]
        mine = [replies[i] for i in positions]
        limit = turn_max_tokens.get(speaker) if isinstance(turn_max_tokens, dict) else turn_max_tokens
        where = {p: k for k, p in enumerate(positions)}
        loops, breaks, onset = detect(mine, limit, sim.of(positions), cover[positions], syntax[positions],
                                      odd[positions], {where[p]: n for p, n in runs.items() if p in where},
                                      lexical[positions], odd_chars[positions])
        out[speaker] = {"loops": loops, "breaks": breaks, "loop_onset_turn": onset,
                        "loop_onset_message": mine[onset].message if onset is not None else None}
    echoed = echoes(replies, sim)
    out["echoes"] = echoed
    out["drivers"] = drivers(replies, segments, echoed)
    return out
