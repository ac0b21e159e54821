"""The labelled corpus the detector benchmark reads: every conversation labelled, every label well-formed.

The accuracy itself is measured by bench/bench_detectors.py, not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broken_record.analysis.detectors import BREAK_TYPES, LOOP_TYPES, SPEAKERS
from broken_record.runs.reader import read_log

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
KEYS = {*LOOP_TYPES, *BREAK_TYPES, "echo"}
LABELS = sorted((CORPUS / "labels").glob("*.json"))
SPLIT = json.loads((CORPUS / "split.json").read_text())


def conversation(stem: str) -> Path:
    found = sorted(CORPUS.glob(f"*/{stem}.jsonl"))
    assert len(found) == 1, stem
    return found[0]


def test_every_conversation_has_a_label_and_a_split():
    conversations = {p.stem for p in CORPUS.glob("*/*.jsonl")}
    assert conversations and {p.stem for p in LABELS} == conversations
    assert {key.rsplit("/", 1)[-1] for key in SPLIT} == conversations
    assert set(SPLIT.values()) == {"tune", "test"}


@pytest.mark.parametrize("path", LABELS, ids=lambda p: p.stem)
def test_a_label_names_only_generated_turns_of_its_speaker(path):
    label = json.loads(path.read_text())
    stem = path.stem
    assert label["file"] == f"{stem}.jsonl"
    assert label["split"] == next(v for k, v in SPLIT.items() if k.endswith(stem))
    turns = read_log(conversation(stem)).turns
    for speaker in SPEAKERS:
        assert set(label[speaker]) == KEYS, speaker
        mine = {t.index for t in turns if t.role == speaker and t.source == "model"}
        for name, messages in label[speaker].items():
            assert messages == sorted(set(messages)), (speaker, name)
            assert set(messages) <= mine, (speaker, name, sorted(set(messages) - mine))
