"""The ten loop and break types (README.md, "Loops and breaks"), found in a conversation's assistant turns.

Each detector takes the assistant turns (``Reply`` objects: what was said,
whether the model generated it, and how it stopped when the log knows) and
returns ``{"present": bool, "turns": [assistant-turn indices], "severity":
0..1, ...}`` plus a few figures that explain the verdict. Turn indices count
the conversation's assistant messages from 0, the opening line from the
config included, as ``response_lengths`` does.

Similarity between turns, used by the loop detectors:

- near-verbatim: Jaccard overlap of word 3-gram sets (``jaccard``);
- meaning: TF-IDF cosine over word 1-2-grams and character 4-grams, with
  numpy (``tfidf_cosines``); a pair with high meaning overlap but low
  verbatim overlap is a paraphrase, the sign of semantic repetition.

Breaks read the stop reason where the structured log has it (a turn that
stopped on ``limit`` ran to ``turn_max_tokens``) and fall back to the text.
Nothing here reads files or prints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from broken_record.analysis.metrics import seq_rep_n, tokens

if TYPE_CHECKING:
    from broken_record.runs.reader import Turn

LOOP_TYPES = ("single_turn_loop", "multi_turn_loop", "intra_turn_repetition",
              "prefix_repetition", "semantic_repetition")
BREAK_TYPES = ("word_soup", "nothing_to_say", "apostrophe_break", "leading_whitespace", "rejection")

NEAR_DUPLICATE = 0.5  # word 3-gram Jaccard at or above which two turns repeat each other
PARAPHRASE_COSINE = 0.5  # TF-IDF cosine at or above which two turns say the same thing
PARAPHRASE_MAX_OVERLAP = 0.3  # ... while sharing less than this verbatim
SEMANTIC_WINDOW = 3  # a turn is compared with this many turns before it
INTRA_SEQ_REP = 0.4  # seq-rep-4 of one turn at or above which it repeats itself
INTRA_MIN_TOKENS = 12
PREFIX_WORDS = 3
PREFIX_SHARE = 0.5
SOUP_MIN_CHARS = 400  # text-only fallback: a rambling turn is at least this long
SOUP_ODD_SHARE = 0.15  # ... and at least this share of its words look malformed
WHITESPACE_MIN = 2


@dataclass(frozen=True)
class Reply:
    """One assistant turn as the detectors see it."""

    text: str  # stripped, speaker prefix removed
    raw: str = ""  # as generated, leading whitespace kept
    generated: bool = True  # False for the config's opening lines
    stop: str | None = None  # "eos" | "limit" | "word" | "error" | None
    tokens: int | None = None
    words: tuple[str, ...] = field(init=False, repr=False, compare=False)  # metrics.tokens(text), once
    rep4: float = field(init=False, repr=False, compare=False)  # seq-rep-4 of the words, once

    def __post_init__(self) -> None:
        words = tuple(tokens(self.text))
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "rep4", seq_rep_n(words, 4))


def replies_from_turns(turns: Iterable[Turn]) -> list[Reply]:
    """``Reply`` objects from assistant turns read by runs/reader.py (``reader.Turn``)."""
    return [Reply(text=t.content, raw=t.raw, generated=t.source != "config", stop=t.stop, tokens=t.tokens)
            for t in turns]


def _entry(present: bool, turns, severity: float, **extra) -> dict:
    return {"present": bool(present), "turns": sorted(set(int(t) for t in turns)),
            "severity": round(float(min(1.0, max(0.0, severity))), 4), **extra}


def _generated(replies: list[Reply]) -> list[int]:
    return [i for i, r in enumerate(replies) if r.generated]


# --- similarity ------------------------------------------------------------------


def shingles(text: str | tuple, k: int = 3) -> frozenset:
    """Word k-grams of a text (or of its tokens); the whole token tuple when it is shorter.

    ``"a b c d"`` -> ``{("a","b","c"), ("b","c","d")}``.
    """
    toks = tokens(text) if isinstance(text, str) else text
    if len(toks) < k:
        return frozenset([tuple(toks)]) if toks else frozenset()
    return frozenset(zip(*(toks[i:] for i in range(k))))


def jaccard(a: frozenset, b: frozenset) -> float:
    """``({1, 2}, {2, 3})`` -> ``1/3``; two empty sets -> 0.0."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def overlaps(replies: list[Reply]) -> list[frozenset]:
    return [shingles(r.words) for r in replies]


_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


def _feature_ids(texts: list[str], words: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, feature id) of every feature occurrence of every text.

    Features: word unigrams and bigrams, and character 4-grams of the
    lower-cased text with runs of whitespace made one space.
    """
    sizes = [len(toks) for toks in words]
    unigrams = np.fromiter((hash(w) for toks in words for w in toks), dtype=np.int64,
                           count=sum(sizes)).view(np.uint64)
    word_owner = np.repeat(np.arange(len(words)), sizes)
    # A bigram pairs two words of the same text.
    same = word_owner[1:] == word_owner[:-1]
    bigrams = ((unigrams[:-1] * _MIX) ^ (unigrams[1:] * _MIX2) ^ np.uint64(1))[same]
    owners, ids = [word_owner, word_owner[1:][same]], [unigrams, bigrams]
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
    if not ids:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64)
    return np.concatenate(owners), np.concatenate(ids)


def tfidf_cosines(texts: list[str], window: int = SEMANTIC_WINDOW,
                  words: list[tuple] | None = None) -> dict[tuple[int, int], float]:
    """Cosine of TF-IDF vectors for each pair (i, j) with 0 < i - j <= window.

    Features: word unigrams and bigrams and character 4-grams; sublinear tf
    (1 + log count), smoothed idf over the given texts, L2-normalised rows.
    ``["a cat sat", "a cat sat"]`` -> ``{(1, 0): 1.0}``.
    """
    count = len(texts)
    if count < 2:
        return {}
    if count > 0xFFFF:
        raise ValueError("tfidf_cosines: at most 65535 texts")
    words = words if words is not None else [tuple(tokens(t)) for t in texts]
    owner, ids = _feature_ids(texts, words)
    # One row per (text, feature), sorted by feature then text: the text
    # index takes the low 16 bits of the feature id (a feature keeps 48 bits).
    keys, counts = np.unique((ids & ~np.uint64(0xFFFF)) | owner.astype(np.uint64), return_counts=True)
    tf = 1.0 + np.log(counts.astype(np.float64))
    feature, text = keys >> np.uint64(16), (keys & np.uint64(0xFFFF)).astype(np.int64)
    first_of_feature = np.concatenate(([True], feature[1:] != feature[:-1]))
    group = np.cumsum(first_of_feature) - 1
    df = np.bincount(group)
    weight = tf * (np.log((1 + count) / (1 + df[group])) + 1.0)
    norms = np.sqrt(np.bincount(text, weights=weight ** 2, minlength=count))
    weight = weight / np.where(norms[text] > 0, norms[text], 1.0)
    # Rows of one feature are consecutive and ordered by text, so texts at
    # most `window` apart are at most `window` rows apart.
    dots = np.zeros((count, window + 1))
    for step in range(1, window + 1):
        same = (feature[step:] == feature[:-step])
        gap = text[step:] - text[:-step]
        keep = same & (gap <= window)
        np.add.at(dots, (text[step:][keep], gap[keep]), weight[step:][keep] * weight[:-step][keep])
    return {(i, i - d): float(dots[i, d]) for i in range(count) for d in range(1, min(window, i) + 1)}


# --- loops -------------------------------------------------------------------------


def single_turn_loop(replies: list[Reply], sets: list[frozenset] | None = None) -> dict:
    """Consecutive assistant turns (nearly) repeat each other."""
    sets = sets if sets is not None else overlaps(replies)
    pairs = []
    for i in range(1, len(replies)):
        if not replies[i].generated:
            continue
        score = jaccard(sets[i], sets[i - 1])
        if score >= NEAR_DUPLICATE:
            pairs.append((i - 1, i, round(score, 4)))
    turns = {t for a, b, _ in pairs for t in (a, b)}
    n = max(1, len(_generated(replies)))
    return _entry(bool(pairs), turns, len(pairs) / n, onset=pairs[0][1] if pairs else None,
                  pairs=[[a, b] for a, b, _ in pairs])


def multi_turn_loop(replies: list[Reply], sets: list[frozenset] | None = None) -> dict:
    """Turn i (nearly) repeats turn i - k, k >= 2, for at least two cycles.

    A cycle of period k shows as k consecutive turns each repeating the turn
    k before it; a run explained by a period-1 loop does not count.
    """
    sets = sets if sets is not None else overlaps(replies)
    count = len(replies)
    similar = {}
    for i in range(count):
        for k in range(1, min(i, 8) + 1):
            similar[(i, k)] = jaccard(sets[i], sets[i - k]) >= NEAR_DUPLICATE
    found: list[tuple[int, int, int]] = []  # (period, first turn of run, last turn of run)
    for k in range(2, 9):
        i = k
        while i < count:
            if not similar.get((i, k)) or not replies[i].generated:
                i += 1
                continue
            start = i
            while i < count and similar.get((i, k)) and replies[i].generated:
                i += 1
            run = range(start, i)
            period_one = all(similar.get((t, 1)) for t in run)
            if len(run) >= k and not period_one:
                found.append((k, start, i - 1))
    turns = {t for k, a, b in found for t in range(a - k, b + 1)}
    n = max(1, len(_generated(replies)))
    onset = min((a for _, a, _ in found), default=None)
    return _entry(bool(found), turns, len(turns) / n, onset=onset,
                  cycles=[{"period": k, "from": a - k, "to": b} for k, a, b in found])


def char_runs(texts: list[str], longest_unit: int = 10, repeats: int = 6, min_chars: int = 12) -> dict[int, int]:
    """Texts holding a unit of 1..longest_unit characters repeated ``repeats`` times in a row.

    Returns ``{text index: length of its longest such run}``.
    ``["ok", "hahahahahahaha!"]`` -> ``{1: 14}``.
    """
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


def intra_turn_repetition(replies: list[Reply]) -> dict:
    """Inside one turn a phrase or a character run repeats over and over."""
    flagged, scores = [], {}
    runs = char_runs([r.text if r.generated else "" for r in replies])
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        toks = reply.words
        rep = reply.rep4 if len(toks) >= INTRA_MIN_TOKENS else 0.0
        if rep >= INTRA_SEQ_REP or i in runs:
            flagged.append(i)
            scores[i] = round(rep, 4)
    n = max(1, len(_generated(replies)))
    severity = sum(max(scores[i], 0.5) for i in flagged) / n
    return _entry(bool(flagged), flagged, severity, onset=flagged[0] if flagged else None,
                  seq_rep_4={str(i): s for i, s in scores.items()}, char_runs={str(i): c for i, c in runs.items()})


def _opening(words: tuple) -> tuple:
    return words[:PREFIX_WORDS]


def _common_prefix_words(a: tuple, b: tuple) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_repetition(replies: list[Reply]) -> dict:
    """Most generated turns open with the same words; reports whether that shared prefix grows."""
    gen = [i for i in _generated(replies) if len(replies[i].words) >= PREFIX_WORDS]
    if len(gen) < 3:
        return _entry(False, [], 0.0, onset=None, prefix=None, growing=False)
    openings = Counter(_opening(replies[i].words) for i in gen)
    prefix, count = openings.most_common(1)[0]
    share = count / len(gen)
    turns = [i for i in gen if _opening(replies[i].words) == prefix]
    present = count >= 3 and share >= PREFIX_SHARE
    shared = [_common_prefix_words(replies[a].words, replies[b].words) for a, b in zip(turns, turns[1:])]
    half = len(shared) // 2
    growing = bool(half) and sum(shared[half:]) / (len(shared) - half) > sum(shared[:half]) / half
    return _entry(present, turns if present else [], share if present else 0.0,
                  onset=turns[1] if present else None, prefix=" ".join(prefix),
                  shared_prefix_words=shared, growing=growing)


def semantic_repetition(replies: list[Reply], sets: list[frozenset] | None = None,
                        cosines: dict | None = None) -> dict:
    """Nearby turns say the same thing in different words: paraphrase pairs."""
    sets = sets if sets is not None else overlaps(replies)
    cosines = cosines if cosines is not None else tfidf_cosines([r.text for r in replies], words=[r.words for r in replies])
    pairs = []
    for (i, j), cos in sorted(cosines.items()):
        if not replies[i].generated or not replies[i].text or not replies[j].text:
            continue
        verbatim = jaccard(sets[i], sets[j])
        if cos >= PARAPHRASE_COSINE and verbatim < PARAPHRASE_MAX_OVERLAP:
            pairs.append((j, i, round(cos, 4), round(verbatim, 4)))
    later = sorted({i for _, i, _, _ in pairs})
    present = len(later) >= 2
    n = max(1, len(_generated(replies)))
    return _entry(present, {t for j, i, _, _ in pairs for t in (j, i)} if present else [],
                  len(later) / n if present else 0.0, onset=later[0] if present else None,
                  pairs=[{"turns": [j, i], "cosine": c, "verbatim": v} for j, i, c, v in pairs])


# --- breaks ------------------------------------------------------------------------

_ODD_WORD = re.compile(r"[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]|[^\x00-\x7f][A-Za-z]|[A-Za-z][^\x00-\x7f]")


def odd_word_share(text: str) -> float:
    """Share of words that look malformed: camelCase joins, letters glued to digits or to other scripts.

    ``"a bridgeListLiterie b"`` -> ``1/3``.
    """
    words = [w.strip("\"'*()[],.!?;:") for w in text.split()]
    words = [w for w in words if w]
    if not words:
        return 0.0
    return sum(1 for w in words if _ODD_WORD.search(w) or len(w) > 18) / len(words)


def word_soup(replies: list[Reply], turn_max_tokens: int | None = None) -> dict:
    """Runs to the turn limit with long rambling text.

    A turn that stopped on the limit counts when it does not loop on one
    phrase (that is intra-turn repetition) and is long or looks malformed: a
    short limit cuts ordinary replies too.
    """
    flagged, limit_turns = [], []
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        hit_limit = reply.stop == "limit" or (
            reply.stop is None and turn_max_tokens is not None and reply.tokens is not None
            and reply.tokens >= turn_max_tokens)
        rambling = reply.rep4 < INTRA_SEQ_REP
        if hit_limit:
            limit_turns.append(i)
            if rambling and (len(reply.text) >= SOUP_MIN_CHARS or odd_word_share(reply.text) >= SOUP_ODD_SHARE):
                flagged.append(i)
        elif (reply.stop is None and reply.tokens is None  # no stop reason at all: only the text can tell
              and len(reply.text) >= SOUP_MIN_CHARS and rambling and odd_word_share(reply.text) >= SOUP_ODD_SHARE):
            flagged.append(i)
    n = max(1, len(_generated(replies)))
    return _entry(bool(flagged), flagged, len(flagged) / n, limit_turns=limit_turns,
                  evidence="stop reason" if any(r.stop or r.tokens is not None for r in replies) else "text")


_EMPTYISH = re.compile(r"^[\W_]*$")


def nothing_to_say(replies: list[Reply]) -> dict:
    """Empty or near-empty responses: nothing, or only punctuation, or one short word."""
    flagged = []
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        text = reply.text
        if len(text) <= 2 or _EMPTYISH.match(text) or (len(reply.words) <= 1 and len(text) <= 4):
            flagged.append(i)
    n = max(1, len(_generated(replies)))
    return _entry(bool(flagged), flagged, len(flagged) / n)


# Ends on an apostrophe, or one or two letters after it that finish no contraction.
_CUT_AT_APOSTROPHE = re.compile(r"\w['’](?!(?:s|t|m|d|re|ve|ll)$)\w{0,2}$", re.I)
_APOSTROPHE_GARBAGE = re.compile(
    r"\w['’]\s+(?:s|t|m|re|ve|ll|d)\b"  # "I' m", "don' t"
    r"|\w\s+['’](?:s|t|m|re|ve|ll|d)\b"  # "I 'm"
    r"|['’]{2,}\w"  # "it''s"
    r"|\w['’][^\s\w\"'’.,!?;:)\]*…-]",  # an apostrophe followed by a stray symbol
    re.I)


def apostrophe_break(replies: list[Reply]) -> dict:
    """Generation goes wrong at apostrophes: turns cut off at one, or garbage around them."""
    flagged, cut, garbled = [], [], []
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        text = reply.text
        if _CUT_AT_APOSTROPHE.search(text):
            cut.append(i)
        if _APOSTROPHE_GARBAGE.search(text):
            garbled.append(i)
    flagged = sorted(set(cut) | set(garbled))
    n = max(1, len(_generated(replies)))
    return _entry(bool(flagged), flagged, len(flagged) / n, cut_off=cut, garbled=garbled)


def leading_whitespace(replies: list[Reply]) -> dict:
    """Responses start with more and more whitespace."""
    counts = {i: len(r.raw) - len(r.raw.lstrip()) for i, r in enumerate(replies) if r.generated}
    flagged = [i for i, c in counts.items() if c >= WHITESPACE_MIN]
    values = [counts[i] for i in flagged]
    growing = len(values) >= 2 and values[-1] > values[0]
    present = bool(flagged) and (growing or max(values) >= 8)
    return _entry(present, flagged if present else [], max(values, default=0) / 16 if present else 0.0,
                  whitespace={str(i): c for i, c in counts.items() if c}, growing=growing)


_REJECTION = re.compile(
    r"\bas an ai\b|\bas a (?:large )?language model\b|\bi(?:'m| am) (?:just )?an? (?:ai|artificial intelligence"
    r"|language model|virtual assistant|assistant)\b|\bi (?:can(?:'|no)t|cannot|won't|am unable to|'m unable to"
    r"|am not able to|'m not able to) (?:continue|help with|assist with|comply|fulfill|engage in|participate"
    r"|generate|provide|role-?play|do that|write that)\b|\bi (?:must|have to) (?:decline|refuse)\b"
    r"|\bagainst my (?:guidelines|programming|policy|policies)\b|\bi apologi[sz]e,? but\b"
    r"|\bi'm sorry,? but i (?:can(?:'|no)t|cannot|won't)\b|\bopenai\b|\bi don't have personal (?:feelings|experiences|opinions)\b",
    re.I)


def rejection(replies: list[Reply]) -> dict:
    """The model refuses or steps out of character ("I can't continue this", "As an AI...")."""
    flagged, phrases = [], {}
    for i, reply in enumerate(replies):
        if not reply.generated:
            continue
        m = _REJECTION.search(reply.text.replace("’", "'"))
        if m:
            flagged.append(i)
            phrases[str(i)] = m.group(0)
    n = max(1, len(_generated(replies)))
    return _entry(bool(flagged), flagged, len(flagged) / n, phrases=phrases)


# --- all together --------------------------------------------------------------------


def detect(replies: list[Reply], turn_max_tokens: int | None = None) -> tuple[dict, dict, int | None]:
    """``(loops, breaks, loop_onset_turn)`` for one conversation's assistant turns."""
    sets = overlaps(replies)
    cosines = tfidf_cosines([r.text for r in replies], words=[r.words for r in replies])
    loops = {
        "single_turn_loop": single_turn_loop(replies, sets),
        "multi_turn_loop": multi_turn_loop(replies, sets),
        "intra_turn_repetition": intra_turn_repetition(replies),
        "prefix_repetition": prefix_repetition(replies),
        "semantic_repetition": semantic_repetition(replies, sets, cosines),
    }
    breaks = {
        "word_soup": word_soup(replies, turn_max_tokens),
        "nothing_to_say": nothing_to_say(replies),
        "apostrophe_break": apostrophe_break(replies),
        "leading_whitespace": leading_whitespace(replies),
        "rejection": rejection(replies),
    }
    return loops, breaks, loop_onset_turn(loops)


def loop_onset_turn(loops: dict) -> int | None:
    """The first assistant turn where any present loop begins, or None."""
    onsets = [entry.get("onset") for entry in loops.values() if entry.get("present")]
    onsets = [o for o in onsets if o is not None]
    return min(onsets) if onsets else None
