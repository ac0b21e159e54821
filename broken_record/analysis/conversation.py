"""One conversation's analysis.json entry, and the per-folder summary of the entries.

``analyze_conversation`` runs the classic score (classic.py), the loop and
break detectors (detectors.py, for both speakers) and the standard metrics
(metrics.py) on one conversation read by runs/reader.py; ``summarize`` adds
up a folder's entries. folder.py reads the files and runs this over them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from broken_record.analysis import classic, detectors, metrics
from broken_record.runs import reader as logs

TOP_SEGMENTS = 20
# The original's 0.05-wide buckets to 0.80, then wider ones: a looping conversation's
# density is often above 1 (windows overlap), and the original put all of them in "0.80-inf".
DENSITY_EDGES = [round(0.05 * i, 2) for i in range(17)] + [1.0, 1.5, 2.0, 3.0, 5.0]  # the last bucket open
SHARE_EDGES = [round(0.1 * i, 1) for i in range(11)]  # repeated share: 0.0 .. 1.0, 1.0 alone in the last


def analyze_conversation(conv: logs.Conversation) -> dict[str, Any]:
    """The analysis.json entry of one conversation."""
    figures = classic.classic_from_lines(conv.classic_lines, conv.agent_prefix)
    assistant = conv.assistant_turns
    top = figures.top_segments(TOP_SEGMENTS)
    replies = detectors.replies_from_turns(conv.turns)
    found = detectors.detect_all(replies, conv.turn_max_tokens, top)
    mine = found["assistant"]
    generated = [r for r in replies if r.generated and r.speaker == "assistant"]
    text_metrics = metrics.text_metrics([r.text for r in generated], [r.words for r in generated],
                                        [r.rep4 for r in generated])
    share = metrics.repeated_share(figures.text_length, figures.remaining_length)
    text_metrics["repeated_share"] = share
    entry: dict[str, Any] = {
        "file": conv.file,
        "format": conv.format,
        "complete": conv.complete,
        "end_reason": conv.end_reason,
        "turns": len(conv.turns),
        "assistant_turns": len(assistant),
        "character_count": figures.character_count,
        "avg_response_length": figures.avg_response_length,
        "response_lengths": figures.response_lengths,
        "loop_score": figures.loop_score,
        "loop_density": figures.loop_density,
        "repeated_share": share,
        "top_segments": [[segment, count] for segment, count in top],
        "segment_extensions": [
            [[other, c] for other, c in longer] for _, _, longer in classic.extensions(figures.segments, TOP_SEGMENTS)
        ],
        "segments_found": len(figures.segments),
        "loops": mine["loops"],
        "breaks": mine["breaks"],
        "loop_onset_turn": mine["loop_onset_turn"],
        "loop_onset_message": mine["loop_onset_message"],
        "user": found["user"],
        "echoes": found["echoes"],
        "drivers": found["drivers"],
        "metrics": text_metrics,
        "settings": conv.settings,
        "agent_prefix": conv.agent_prefix,
    }
    if conv.format == "jsonl":
        stops = Counter(t.stop or "unknown" for t in conv.turns if t.source not in ("config", None))
        entry["stop_reasons"] = dict(sorted(stops.items()))
        entry["assistant_stop_reasons"] = dict(sorted(Counter(
            t.stop or "unknown" for t in assistant if t.source != "config").items()))
    else:
        entry["stop_reasons"] = None
    if conv.total_tokens is not None:
        entry["total_tokens"] = conv.total_tokens
    return entry



def summarize(conversations: list[dict[str, Any]], skipped: int = 0) -> dict[str, Any]:
    """Per-folder aggregates: counts, means, and the share of conversations with each type."""
    count = len(conversations)

    def mean(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    def share(family: str, name: str, speaker: str = "assistant") -> float:
        return sum(1 for c in conversations if _speaker(c, speaker)[family][name]["present"]) / count if count else 0.0

    def looping(speaker: str) -> float:
        return sum(1 for c in conversations if _speaker(c, speaker)["loop_onset_turn"] is not None) / count \
            if count else 0.0

    def onset_mean(speaker: str, key: str) -> float | None:
        return mean(_speaker(c, speaker).get(key) for c in conversations)

    stops: Counter[str] = Counter()
    for c in conversations:
        stops.update(c.get("stop_reasons") or {})
    lengths = [x for c in conversations for x in c["response_lengths"]]
    densities = [c["loop_density"] for c in conversations]
    drivers = Counter((c.get("drivers") or {}).get("driven_by") or "none" for c in conversations)
    return {
        "conversations": count,
        "complete": sum(1 for c in conversations if c["complete"]),
        "partial": sum(1 for c in conversations if not c["complete"]),
        "skipped": skipped,
        "turns": sum(c["turns"] for c in conversations),
        "assistant_turns": sum(c["assistant_turns"] for c in conversations),
        "mean_avg_response_length": mean(c["avg_response_length"] for c in conversations),
        "mean_loop_density": mean(densities),
        "mean_repeated_share": mean(c["repeated_share"] for c in conversations),
        "looping_share": looping("assistant"),
        "mean_loop_onset_turn": onset_mean("assistant", "loop_onset_turn"),
        "mean_loop_onset_message": onset_mean("assistant", "loop_onset_message"),
        "loop_types": {name: share("loops", name) for name in detectors.LOOP_TYPES},
        "break_types": {name: share("breaks", name) for name in detectors.BREAK_TYPES},
        "user": {
            "looping_share": looping("user"),
            "mean_loop_onset_turn": onset_mean("user", "loop_onset_turn"),
            "mean_loop_onset_message": onset_mean("user", "loop_onset_message"),
            "loop_types": {name: share("loops", name, "user") for name in detectors.LOOP_TYPES},
            "break_types": {name: share("breaks", name, "user") for name in detectors.BREAK_TYPES},
            "echoes": sum(len((c.get("echoes") or {}).get("user", [])) for c in conversations),
        },
        "echoes": sum(len((c.get("echoes") or {}).get("assistant", [])) for c in conversations),
        "driven_by": {k: drivers.get(k, 0) for k in ("assistant", "user", "none")},
        "stop_reasons": dict(sorted(stops.items())),
        "histograms": {
            "loop_density": density_histogram(densities),
            "repeated_share": share_histogram([c["repeated_share"] for c in conversations]),
            "response_length": length_histogram(lengths),
        },
    }


def _speaker(conv: dict[str, Any], speaker: str) -> dict[str, Any]:
    """A conversation entry's loops/breaks/onsets for one speaker (the assistant's are at the top level)."""
    return conv if speaker == "assistant" else conv["user"]


def share_histogram(shares: list[float]) -> list[list[Any]]:
    """Repeated-share buckets 0.1 wide: ``[[0.0, 0.1, n], ..., [0.9, 1.0, n]]`` (1.0 in the last)."""
    counts = [0] * (len(SHARE_EDGES) - 1)
    for x in shares:
        counts[min(len(counts) - 1, max(0, int(x * 10 + 1e-9)))] += 1
    return [[low, high, n] for low, high, n in zip(SHARE_EDGES, SHARE_EDGES[1:], counts)]


def density_histogram(densities: list[float]) -> list[list[Any]]:
    """Loop-density buckets: ``[[low, high, count], ...]``, the original's 0.05 wide to 0.8, then wider, last open.

    ``[0.0, 0.07, 3.2]`` -> ``[[0.0, 0.05, 1], [0.05, 0.1, 1], ..., [3.0, 5.0, 1], [5.0, None, 0]]``.
    """
    counts = [0] * len(DENSITY_EDGES)
    for d in densities:
        for k in range(len(DENSITY_EDGES) - 1, -1, -1):
            if d >= DENSITY_EDGES[k]:
                counts[k] += 1
                break
    highs = DENSITY_EDGES[1:] + [None]
    return [[low, high, n] for low, high, n in zip(DENSITY_EDGES, highs, counts)]


def length_histogram(lengths: list[int]) -> list[list[Any]]:
    """The original's response-length buckets: 0-1, then 100 wide to 2000, then above.

    A length of exactly 100 falls in 0-100, 101 in 100-200, as the original did.
    ``[0, 100, 101, 5000]`` -> ``[[0, 1, 1], [0, 100, 1], [100, 200, 1], ..., [2000, None, 1]]``.
    """
    edges: list[tuple[int, int | None]] = [(0, 1)] + [(i * 100, (i + 1) * 100) for i in range(20)] + [(2000, None)]
    counts = [0] * len(edges)
    for length in lengths:
        if length <= 1:
            counts[0] += 1
        elif length > 2000:
            counts[-1] += 1
        else:
            counts[(length - 1) // 100 + 1] += 1
    return [[low, high, n] for (low, high), n in zip(edges, counts)]
