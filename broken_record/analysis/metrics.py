"""Standard text-repetition metrics, so results line up with published work.

- distinct-n (Li et al. 2016): unique n-grams / all n-grams of the tokens.
- seq-rep-n (Welleck et al. 2019): 1 - unique n-grams / all n-grams, per
  turn and over the whole assistant text; 0 is no repetition.
- compression ratio: raw bytes / zlib-compressed bytes of the assistant
  text; repetitive text compresses well, so higher means more repetition.
- repeated share: the share of the classic algorithm's assistant text that
  its mining removed as repeated segments, in [0, 1] (the classic density is
  unbounded because it counts overlapping windows).

Pure functions over strings and numbers: no I/O. Tokens are lower-cased
words (with inner apostrophes) and single punctuation marks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Hashable, Sequence
from typing import Any

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def tokens(text: str) -> list[str]:
    """``"I'm OK, OK!"`` -> ``["i'm", "ok", ",", "ok", "!"]``."""
    return _TOKEN.findall(text.lower())


def ngrams(items: Sequence[Hashable], n: int) -> list[tuple[Hashable, ...]]:
    """``([1, 2, 3], 2)`` -> ``[(1, 2), (2, 3)]``."""
    return list(zip(*(items[i:] for i in range(n))))


def distinct_n(items: Sequence[Hashable], n: int) -> float:
    """Unique n-grams / all n-grams; 0.0 when there are none.

    ``(["a", "b", "a", "b"], 1)`` -> ``0.5``.
    """
    grams = ngrams(items, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def seq_rep_n(items: Sequence[Hashable], n: int = 4) -> float:
    """1 - unique n-grams / all n-grams; 0.0 when there are none.

    ``(["a", "b", "a", "b", "a"], 2)`` -> ``0.5``.
    """
    grams = ngrams(items, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(text: str) -> float:
    """Raw UTF-8 bytes / zlib level-9 bytes; 0.0 for an empty text."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def repeated_share(text_length: int, remaining_length: int) -> float:
    """Share of the text the classic mining removed, clipped to [0, 1].

    ``(200, 50)`` -> ``0.75``.
    """
    if text_length <= 0:
        return 0.0
    return min(1.0, max(0.0, (text_length - remaining_length) / text_length))


def text_metrics(turns: list[str], tokenized: Sequence[Sequence[str]] | None = None,
                 rep_per_turn: Sequence[float] | None = None) -> dict[str, Any]:
    """All the standard metrics of the assistant turns of one conversation.

    ``tokenized`` and ``rep_per_turn``: ``tokens()`` and ``seq_rep_n(.., 4)``
    of each turn, when the caller has them already.
    """
    per_turn = [list(t) for t in tokenized] if tokenized is not None else [tokens(t) for t in turns]
    everything = [tok for toks in per_turn for tok in toks]
    if rep_per_turn is None:
        rep_per_turn = [seq_rep_n(toks, 4) for toks in per_turn]
    rounded = [round(r, 6) for r in rep_per_turn]
    scored = [r for r, toks in zip(rounded, per_turn) if len(toks) >= 4]
    return {
        "tokens": len(everything),
        "distinct_1": distinct_n(everything, 1),
        "distinct_2": distinct_n(everything, 2),
        "seq_rep_4": seq_rep_n(everything, 4),
        "seq_rep_4_turn_mean": sum(scored) / len(scored) if scored else 0.0,
        "seq_rep_4_per_turn": rounded,
        "compression_ratio": compression_ratio("\n".join(turns)),
    }
