"""Benchmark: the loop and break detectors against hand labels of real conversations.

The corpus (tests/fixtures/corpus/, its README says how it was generated) is
real SmolLM2-135M conversations over several scenarios and sampler
settings, each labelled by reading it (tests/fixtures/corpus/RULES.md has
the rules; labels/<stem>.json the labels, per speaker, type and message).
The corpus is split into a "tune" part, on which the thresholds were set,
and a held-out "test" part, looked at only to report.

For every type (and for echoes), over both speakers:

- per conversation: a (conversation, speaker) is positive when the labels
  list at least one message; precision, recall and F1 of "present";
- per turn: each generated turn of a speaker is positive when it is listed;
  precision, recall and F1 over all turns.

Macro-F1 is the mean F1 over the types with at least one labelled or
detected positive in that split (a type with neither is listed as "n/a":
no evidence either way). Prints the tables and writes
bench/results/detectors.json. Not a test: no figure is asserted.

    .venv/bin/python bench/bench_detectors.py [--split test|tune|all]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from broken_record.analysis import detectors
from broken_record.analysis.conversation import analyze_conversation
from broken_record.runs.reader import read_log

ROOT = Path(__file__).resolve().parent.parent

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
TYPES = (*detectors.LOOP_TYPES, *detectors.BREAK_TYPES)
ROWS = (*TYPES, "echo")


def load_labels(corpus: Path = CORPUS, labels: Path | None = None) -> list[dict]:
    """Every label file, with the path of its conversation's .jsonl beside it."""
    out = []
    for path in sorted((labels or corpus / "labels").glob("*.json")):
        label = json.loads(path.read_text())
        matches = sorted(corpus.glob(f"*/{label['file']}"))
        if len(matches) != 1:
            raise SystemExit(f"bench_detectors: {path.name}: {label['file']} found {len(matches)} times in {corpus}")
        label["path"] = matches[0]
        out.append(label)
    return out


def detected(entry: dict) -> dict[str, dict[str, set[int]]]:
    """The analysis entry's verdicts as {speaker: {type or "echo": message numbers}}."""
    out: dict[str, dict[str, set[int]]] = {}
    for speaker in detectors.SPEAKERS:
        part = entry if speaker == "assistant" else entry["user"]
        found = {name: set(part[family][name]["messages"])
                 for family, names in (("loops", detectors.LOOP_TYPES), ("breaks", detectors.BREAK_TYPES))
                 for name in names}
        found["echo"] = set(entry["echoes"][speaker])
        out[speaker] = found
    return out


def generated_messages(path: Path) -> dict[str, list[int]]:
    conv = read_log(path)
    out: dict[str, list[int]] = {s: [] for s in detectors.SPEAKERS}
    for t in conv.turns:
        if t.role in out and t.source != "config":
            out[t.role].append(t.index)
    return out


def prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def score(labels: list[dict]) -> dict:
    counts = {level: {row: [0, 0, 0] for row in ROWS} for level in ("conversation", "turn")}
    mistakes: list[dict] = []
    for label in labels:
        entry = analyze_conversation(read_log(label["path"]))
        found = detected(entry)
        turns = generated_messages(label["path"])
        for speaker in detectors.SPEAKERS:
            for row in ROWS:
                truth = set(label[speaker].get(row, []))
                guess = found[speaker][row]
                c = counts["conversation"][row]
                if truth and guess:
                    c[0] += 1
                elif guess:
                    c[1] += 1
                elif truth:
                    c[2] += 1
                t = counts["turn"][row]
                t[0] += len(truth & guess)
                t[1] += len(guess - truth)
                t[2] += len(truth - guess)
                if truth != guess:
                    mistakes.append({"file": label["file"], "speaker": speaker, "type": row,
                                     "missed": sorted(truth - guess), "extra": sorted(guess - truth)})
                unknown = truth - set(turns[speaker])
                if unknown:
                    raise SystemExit(f"bench_detectors: {label['file']}: {speaker} {row} lists {sorted(unknown)}, "
                                     f"not generated {speaker} messages")
    result: dict = {}
    for level, rows in counts.items():
        table = {row: prf(*rows[row]) for row in ROWS}
        f1s = [table[row]["f1"] for row in TYPES if table[row]["f1"] is not None]
        result[level] = {"types": table, "macro_f1": sum(f1s) / len(f1s) if f1s else None,
                         "types_scored": len(f1s),
                         "lowest": min(((table[r]["f1"], r) for r in TYPES if table[r]["f1"] is not None),
                                       default=(None, None))}
    result["mistakes"] = mistakes
    return result


def fmt(x) -> str:
    return "  n/a" if x is None else f"{x:5.2f}"


def print_table(split: str, level: str, part: dict, conversations: int) -> None:
    print(f"\n{split} split, per {level} ({conversations} conversations x 2 speakers)")
    print(f"{'type':24} {'P':>5} {'R':>5} {'F1':>5} {'tp':>4} {'fp':>4} {'fn':>4}")
    for row in ROWS:
        r = part["types"][row]
        print(f"{row:24} {fmt(r['precision'])} {fmt(r['recall'])} {fmt(r['f1'])} {r['tp']:4d} {r['fp']:4d} {r['fn']:4d}")
    print(f"macro-F1 over {part['types_scored']} types with positives: {fmt(part['macro_f1'])}"
          f"   lowest: {part['lowest'][1]} {fmt(part['lowest'][0])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "tune", "all"), default=None,
                        help="one split only (default: tune and test, each on its own)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus folder (default: %(default)s)")
    parser.add_argument("--labels", type=Path, default=None, help="the label folder (default: CORPUS/labels)")
    parser.add_argument("--mistakes", action="store_true", help="also print every disagreement with the labels")
    args = parser.parse_args(argv)
    labels = load_labels(args.corpus, args.labels)
    splits = [args.split] if args.split else ["tune", "test"]
    out = {"what": "loop/break detectors vs hand labels of real conversations (tests/fixtures/corpus)",
           "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "thresholds_tuned_on": "tune", "splits": {}}
    for split in splits:
        chosen = [x for x in labels if split == "all" or x["split"] == split]
        result = score(chosen)
        result["conversations"] = len(chosen)
        out["splits"][split] = result
        for level in ("conversation", "turn"):
            print_table(split, level, result[level], len(chosen))
        if args.mistakes:
            for m in result["mistakes"]:
                print(f"  {m['file']} {m['speaker']:9} {m['type']:22} missed {m['missed']} extra {m['extra']}")
    if args.corpus == CORPUS and args.labels is None:
        target = ROOT / "bench" / "results" / "detectors.json"
        target.write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"\nwritten: {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
