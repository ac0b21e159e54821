"""The ten loop and break types: a case where each is present and one where it is absent.

Cases come from the real SmolLM2 conversations in fixtures/testdata
(parrot_cold loops hard, parrot_hot runs into word soup without looping,
parrot_orig drifts) or, for rare breaks, are crafted from their real turns.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from broken_record.analysis import detectors as d
from broken_record.runs.reader import read_log

TESTDATA = Path(__file__).resolve().parents[1] / "fixtures" / "testdata"


def replies(name: str) -> list[d.Reply]:
    return d.replies_from_turns(read_log(TESTDATA / name).assistant_turns)


def limit(name: str) -> int | None:
    return read_log(TESTDATA / name).turn_max_tokens


COLD, HOT, ORIG, NOREP = (replies(f"parrot_{k}_1.log") for k in ("cold", "hot", "orig", "norep"))
REAL = {"cold": COLD, "hot": HOT, "orig": ORIG, "norep": NOREP}


def crafted(texts: list[str], **fields) -> list[d.Reply]:
    """Generated replies with the given texts (the first is the config's opening line)."""
    out = [d.Reply(text=ORIG[0].text, raw=ORIG[0].raw, generated=False)]
    return out + [d.Reply(text=t, raw=t, **fields) for t in texts]


def check_entry(entry: dict) -> None:
    assert set(entry) >= {"present", "turns", "severity"}
    assert isinstance(entry["present"], bool)
    assert 0.0 <= entry["severity"] <= 1.0
    assert entry["turns"] == sorted(entry["turns"])
    assert bool(entry["turns"]) == entry["present"]


# --- loops ------------------------------------------------------------------------


def test_single_turn_loop():
    present = d.single_turn_loop(COLD)
    check_entry(present)
    assert present["present"] and present["turns"] == [2, 3, 4]
    for name in ("hot", "orig"):
        assert not d.single_turn_loop(REAL[name])["present"], name


def test_multi_turn_loop():
    # Two real turns taking turns: A B A B A B is a period-2 cycle.
    a, b = ORIG[6].text, ORIG[7].text
    entry = d.multi_turn_loop(crafted([ORIG[1].text, a, b, a, b, a, b]))
    check_entry(entry)
    assert entry["present"] and entry["cycles"][0]["period"] == 2
    assert entry["turns"] == [4, 5, 6, 7]  # the turns that repeat; 2 and 3 are the originals
    # parrot_cold repeats one turn (period 1): a single-turn loop, not a multi-turn one.
    for name in ("cold", "hot", "orig"):
        assert not d.multi_turn_loop(REAL[name])["present"], name


def test_multi_turn_loop_needs_two_cycles():
    a, b, c = ORIG[5].text, ORIG[6].text, ORIG[7].text
    assert not d.multi_turn_loop(crafted([a, b, a, c]))["present"]


def test_intra_turn_repetition():
    entry = d.intra_turn_repetition(COLD)
    check_entry(entry)
    assert entry["present"] and entry["turns"] == [1, 2, 3, 4]
    assert d.intra_turn_repetition(replies("quirks_intra.log"))["present"]
    for name in ("hot",):
        assert not d.intra_turn_repetition(REAL[name])["present"]
    assert not d.intra_turn_repetition(replies("quirks_clean.log"))["present"]


def test_intra_turn_repetition_of_a_character_run():
    # A laugh that is most of the turn repeats inside it; a laugh at the end of a long turn does not.
    entry = d.intra_turn_repetition(crafted(["hahahahahahahahahahahahaha! Oh, Theo.",
                                             ORIG[1].text + " hahahahahahahahahahahaha!"]))
    assert entry["present"] and entry["turns"] == [1] and set(entry["char_runs"]) == {"1", "2"}


def test_prefix_repetition():
    entry = d.prefix_repetition(COLD)
    check_entry(entry)
    assert entry["present"] and entry["prefix"] == "i'm so glad"
    for name in ("hot", "orig"):
        assert not d.prefix_repetition(REAL[name])["present"], name


def test_prefix_repetition_reports_a_growing_prefix():
    words = ORIG[4].text.split()
    grown = [" ".join(words[:k] + ORIG[i].text.split()) for k, i in ((3, 1), (4, 2), (6, 3), (9, 5), (12, 6))]
    entry = d.prefix_repetition(crafted(grown))
    assert entry["present"] and entry["growing"]


def test_semantic_repetition():
    # The same content in other words: the compliment of turn 1 said again, reworded.
    said = '*smiles* "I love how you fix those old radios, Theo, it is so sweet of you."'
    again = '"Theo, those old radios you fix... I love it. So sweet of you!" *smiles*'
    entry = d.semantic_repetition(crafted([said, ORIG[2].text, again]))
    check_entry(entry)
    assert entry["turns"] == [3] and entry["pairs"][0]["turns"] == [1, 3]
    for name in ("hot", "orig"):
        assert not d.semantic_repetition(REAL[name])["present"], name


def test_near_verbatim_repeats_are_not_semantic_repetition():
    # parrot_cold's turn 2 says turn 1's "I'm so glad you're doing well" again and again:
    # a copy with a changed repeat count is a single-turn loop (issue 14), not a paraphrase.
    assert 2 in d.single_turn_loop(COLD)["turns"]
    assert not d.semantic_repetition(COLD)["present"]


def test_semantic_repetition_ignores_verbatim_repeats():
    # Identical turns are a verbatim loop, not a paraphrase.
    same = ORIG[6].text
    entry = d.semantic_repetition(crafted([same, same, same, same]))
    assert not entry["present"]


def test_tfidf_cosine():
    cos = d.tfidf_cosines(["the cat sat on the mat", "the cat sat on the mat", "volcano engines hum"])
    assert cos[(1, 0)] == pytest.approx(1.0)
    assert cos[(2, 0)] == pytest.approx(0.0, abs=1e-9)


def plain_tfidf_cosines(texts: list[str], window: int = 3) -> dict:
    """The same TF-IDF written out with dicts, to check the numpy one."""
    from collections import Counter
    from math import log, sqrt

    from broken_record.analysis.metrics import tokens

    def features(text):
        toks, flat = tokens(text), " ".join(text.lower().split())
        return Counter([("w", t) for t in toks] + [("b", a, b) for a, b in zip(toks, toks[1:])]
                       + [("c", flat[i:i + 4]) for i in range(len(flat) - 3)])

    counts = [features(t) for t in texts]
    df = Counter(f for c in counts for f in c)
    vectors = []
    for c in counts:
        w = {f: (1 + log(v)) * (log((1 + len(texts)) / (1 + df[f])) + 1) for f, v in c.items()}
        norm = sqrt(sum(x * x for x in w.values())) or 1.0
        vectors.append({f: x / norm for f, x in w.items()})
    return {(i, j): sum(x * vectors[j].get(f, 0.0) for f, x in vectors[i].items())
            for i in range(len(texts)) for j in range(max(0, i - window), i)}


@pytest.mark.parametrize("name", ["cold", "hot", "orig", "norep"])
def test_tfidf_cosines_match_a_plain_implementation(name):
    texts = [r.text for r in REAL[name]]
    fast, plain = d.tfidf_cosines(texts), plain_tfidf_cosines(texts)
    assert fast.keys() == plain.keys()
    for pair, value in plain.items():
        assert fast[pair] == pytest.approx(value, abs=1e-9), pair


def test_char_runs():
    texts = ["fine", "hahahahahaha!", "hahaha", "!!!!!!!!!!!!", "......", "abcdefghij" * 6]
    assert d.char_runs(texts) == {1: 12, 3: 12, 5: 60}


# --- breaks -----------------------------------------------------------------------


def test_word_soup_is_read_from_the_text_whatever_ended_the_turn():
    entry = d.word_soup(HOT, limit("parrot_hot_1.log"))
    check_entry(entry)
    # Turn 3 ("Authentic plutoniumsideMigamb ...") ended on its own after 55 tokens: soup all the same.
    assert entry["turns"] == [1, 2, 3, 4, 5]
    assert entry["limit_turns"] == [1, 2, 4, 5]
    assert not d.word_soup(NOREP, 256)["present"]
    # parrot_cold runs to the limit, looping on one fluent sentence: not soup.
    cold = d.word_soup(COLD, 256)
    assert not cold["present"] and cold["limit_turns"] == [1, 2, 3, 4]


def test_word_soup_does_not_depend_on_the_stop_reason():
    for stop in ("limit", "eos", None):
        soup = [replace(r, stop=stop if r.generated else None, tokens=None) for r in HOT]
        assert d.word_soup(soup)["turns"] == [1, 2, 3, 4, 5], stop


def test_a_short_limit_does_not_make_soup():
    # A 64-token limit cuts ordinary replies: stopping on it is not word soup by itself.
    short = [replace(r, text=r.text[:250], stop="limit" if r.generated else None) for r in ORIG]
    entry = d.word_soup(short)
    assert not entry["present"] and entry["limit_turns"] == list(range(1, 11))


def test_word_soup_from_the_text_alone():
    blind = [replace(r, stop=None, tokens=None) for r in HOT]
    assert d.word_soup(blind)["present"]
    assert not d.word_soup([replace(r, stop=None, tokens=None) for r in ORIG])["present"]


def test_nothing_to_say():
    entry = d.nothing_to_say(replies("quirks_overlap.log"))
    check_entry(entry)
    assert entry["present"] and entry["turns"] == [1]
    assert d.nothing_to_say(crafted([ORIG[1].text, "...", ORIG[2].text, "*"]))["turns"] == [2, 4]
    for name in ("cold", "hot", "orig"):
        assert not d.nothing_to_say(REAL[name])["present"], name


def test_apostrophe_break():
    cut = ORIG[1].text[: ORIG[1].text.index("it's") + 3]  # '(laughs) "Thanks, it'
    garbled = ORIG[3].text.replace("that's", "that' s")
    entry = d.apostrophe_break(crafted([cut, ORIG[2].text, garbled]))
    check_entry(entry)
    assert entry["present"] and entry["cut_off"] == [1] and entry["garbled"] == [3]
    for name in ("cold", "hot", "orig", "norep"):
        assert not d.apostrophe_break(REAL[name])["present"], name
    # A whole contraction at the end is not a cut.
    assert not d.apostrophe_break(crafted([ORIG[3].text + " and that's"]))["present"]


def test_leading_whitespace():
    grown = [d.Reply(text=r.text, raw=" " * (2 * k) + r.text) for k, r in enumerate(ORIG[1:6], start=1)]
    entry = d.leading_whitespace([ORIG[0]] + grown)
    check_entry(entry)
    assert entry["present"] and entry["growing"] and entry["turns"] == [1, 2, 3, 4, 5]
    for name in ("cold", "hot", "orig", "norep"):
        assert not d.leading_whitespace(REAL[name])["present"], name


def test_leading_whitespace_is_read_from_a_text_log(tmp_path):
    text = (TESTDATA / "quirks_clean.log").read_text()
    text = text.replace("Nova: I brought", "Nova:    I brought").replace("Nova: Shall", "Nova:         Shall")
    path = tmp_path / "spaces.log"
    path.write_text(text)
    entry = d.leading_whitespace(d.replies_from_turns(read_log(path).assistant_turns))
    assert entry["present"] and entry["whitespace"] == {"1": 3, "2": 8}


def test_rejection():
    refusal = ORIG[4].text + " As an AI language model, I cannot continue this role-play."
    entry = d.rejection(crafted([ORIG[1].text, refusal, "I'm sorry, but I can't help with that."]))
    check_entry(entry)
    assert entry["present"] and entry["turns"] == [2, 3]
    for name in ("cold", "hot", "orig", "norep"):
        assert not d.rejection(REAL[name])["present"], name


# --- together -----------------------------------------------------------------------


def test_detect_and_loop_onset():
    loops, breaks, onset = d.detect(COLD, 256)
    assert set(loops) == set(d.LOOP_TYPES) and set(breaks) == set(d.BREAK_TYPES)
    for entry in (*loops.values(), *breaks.values()):
        check_entry(entry)
    assert onset == 1  # the first generated turn already repeats itself
    _, _, onset = d.detect(HOT, 256)
    assert onset is None


def test_config_turns_are_never_flagged_as_breaks():
    quiet = [d.Reply(text="", raw="", generated=False)] + [d.Reply(text=ORIG[1].text, raw=ORIG[1].raw)]
    assert not d.nothing_to_say(quiet)["present"]


def test_leading_whitespace_is_the_same_in_a_jsonl_and_its_log():
    # The .jsonl keeps what the model generated, the separating space after "Juno:" included;
    # the .log drops that space. Both must give the same count.
    run = Path(__file__).resolve().parents[1] / "fixtures" / "parrot_20261123_005123"
    for jsonl in sorted(run.glob("*.jsonl")):
        counts = [{t.index: len(t.raw) - len(t.raw.lstrip()) for t in read_log(path).turns if t.role != "system"}
                  for path in (jsonl, jsonl.with_suffix(".log"))]
        assert counts[0] == counts[1], jsonl.name
        assert set(counts[0].values()) == {0}  # SmolLM2's turns start right after the one space
