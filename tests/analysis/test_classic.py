"""The classic loop score: the original's figures exactly, and fast == reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broken_record.analysis import classic, classic_kernel
from broken_record.analysis.classic import (
    assistant_lines,
    classic_from_lines,
    extensions,
    fast_miner,
    lines_after_done,
    mine_compiled,
    mine_fast,
    mine_numpy,
    mine_reference,
)

TESTDATA = Path(__file__).resolve().parents[1] / "fixtures" / "testdata"
EXPECTED = json.loads((TESTDATA / "expected_classic.json").read_text())
MINERS = [mine_reference, mine_numpy, mine_compiled]
FAST = [mine_numpy, mine_compiled]
fast = pytest.mark.parametrize("miner", FAST, ids=lambda m: m.__name__)


def _figures(name: str, miner):
    text = (TESTDATA / name).read_text(encoding="utf-8")
    lines = lines_after_done(text)
    config = json.loads(lines[lines.index("Full Config:") + 1])
    return classic_from_lines(lines, config["agent_prefix"], miner=miner)


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matches_the_original_exactly(name, miner):
    expected = EXPECTED[name]
    got = _figures(name, miner)
    assert got.character_count == expected["character_count"]
    assert got.loop_score == expected["loop_score"]
    assert got.loop_density == expected["loop_density"]  # float equality, on purpose
    assert got.avg_response_length == expected["avg_response_length"]
    assert got.response_lengths == expected["response_lengths"]
    assert [list(s) for s in got.top_segments(20)] == expected["top_segments"]


def test_every_test_vector_is_covered():
    logs = {p.name for p in TESTDATA.glob("*.log")}
    assert logs == set(EXPECTED)


def test_assistant_text_quirks():
    lines = ["Nova:   Hello  there ", "Mark: hi", "Nova:", "  Nova: indented", "Nova:x", "Full Config:"]
    text, lengths = assistant_lines(lines, "Nova:")
    # An empty line adds the placeholder but nothing to the lengths; an
    # indented line does not start with the prefix, so it is not counted.
    assert text == "Hello  there [empty] x"
    assert lengths == [12, 0, 1]


def test_prefix_with_trailing_space_survives_on_a_bare_line():
    # The original strips before removing the prefix: "Nova: " no longer matches "Nova:".
    text, lengths = assistant_lines(["Nova: ", "Nova: hi"], "Nova: ")
    assert text == "Nova: hi"
    assert lengths == [5, 2]


def test_lines_after_done():
    assert lines_after_done("a\n--- DONE ---\nb\nc") == ["b", "c"]
    assert lines_after_done("no marker") is None


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
def test_doubled_spaces_make_empty_words(miner):
    # "a  b" splits into ["a", "", "b"]: the empty word is part of windows.
    text = "p q r s t  p q r s t  z"
    mined, rest = miner(text)
    assert mined == [("p q r s t ", 2)]
    assert rest == "  z"


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
def test_removal_reaches_inside_words(miner):
    # The window "a b c d e" repeats as words, and str.replace also removes it
    # from inside "xa b c d ey": the count stays the window count (2).
    text = "a b c d e q a b c d e r xa b c d ey"
    mined, rest = miner(text)
    assert mined == [("a b c d e", 2)]
    assert rest == " q  r xy"


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
def test_ties_go_to_the_first_occurrence_and_counts_merge_per_n(miner):
    text = "k l m n o z k l m n o y f g h i j w f g h i j"
    mined, _ = miner(text)
    assert [s for s, _ in mined] == ["k l m n o", "f g h i j"]


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
def test_overlapping_repeats_count_every_window(miner):
    # Seven of one word: two overlapping 6-windows both count, but
    # str.replace removes only the first (the second overlaps it).
    mined, rest = miner("a a a a a a a")
    assert mined == [("a a a a a a", 2)]
    assert rest == " a"


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: m.__name__)
def test_no_text(miner):
    assert miner("") == ([], "")
    assert miner("one two three") == ([], "one two three")


def test_density_of_nothing_is_zero():
    result = classic_from_lines([], "Nova:")
    assert (result.character_count, result.loop_score, result.loop_density) == (0, 0, 0.0)
    assert result.avg_response_length == 0.0


def test_extensions_list_longer_segments():
    segments = [("a b", 3), ("a b c", 2), ("x", 2), ("a b c d", 1)]
    assert extensions(segments, k=2) == [
        ("a b", 3, [("a b c", 2), ("a b c d", 1)]),
        ("a b c", 2, [("a b c d", 1)]),
    ]


# --- fast == reference on random texts ---------------------------------------------

WORDS = ["a", "b", "ab", "ba", "the", "cat", "sat", "mat", "mattress", "so", "glad", "", "I'm", "well."]
phrase = st.lists(st.sampled_from(WORDS), min_size=1, max_size=9)


@st.composite
def texts(draw):
    """Texts built from a few phrases repeated, overlapping, with empty words."""
    phrases = draw(st.lists(phrase, min_size=1, max_size=5))
    pieces = draw(st.lists(st.tuples(st.integers(0, len(phrases) - 1), st.integers(1, 6)), min_size=1, max_size=12))
    words: list[str] = []
    for which, times in pieces:
        for _ in range(times):
            words.extend(phrases[which])
        words.extend(draw(st.lists(st.sampled_from(WORDS), max_size=3)))
    return " ".join(words)


def test_mine_fast_uses_the_compiled_kernel():
    # numba is in requirements.txt: the numpy miner is only a fallback.
    assert fast_miner() is mine_compiled
    assert mine_fast("a b c d e a b c d e") == mine_reference("a b c d e a b c d e")


@fast
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts())
def test_fast_equals_reference_on_random_texts(miner, text):
    assert miner(text) == mine_reference(text)


@fast
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), n_min=st.integers(2, 6), extra=st.integers(1, 12))
def test_fast_equals_reference_at_other_window_sizes(miner, text, n_min, extra):
    n_max = n_min + extra
    assert miner(text, n_max, n_min) == mine_reference(text, n_max, n_min)


UNICODE_WORDS = ["é", "ée", "日本", "本", "😀", "a😀", "", "ß", "\u00a0", "\ud800", "x"]


@fast
@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.lists(st.sampled_from(UNICODE_WORDS), min_size=1, max_size=6), min_size=1, max_size=4)
       .flatmap(lambda phrases: st.lists(st.sampled_from([" ".join(p) for p in phrases]), min_size=1, max_size=30))
       .map(" ".join))
def test_fast_equals_reference_on_unicode(miner, text):
    # Multi-byte characters, a no-break space (not a separator) and a lone surrogate.
    assert miner(text, 12, 2) == mine_reference(text, 12, 2)
    assert miner(text) == mine_reference(text)


@settings(max_examples=150, deadline=None)
@given(texts())
def test_compiled_survives_hash_collisions(text):
    # Every word's key is its length: different windows share hashes all the
    # time, and the byte checks must catch every case.
    assert classic_kernel.mine(text, 64, 5, weak_keys=True) == mine_reference(text)
    assert classic_kernel.mine(text, 10, 2, weak_keys=True) == mine_reference(text, 10, 2)


def test_compiled_handles_empty_and_tiny_texts():
    for text in ["", " ", "a", "a b c d e", "     ", "[empty] [empty] [empty] [empty] [empty] [empty]"]:
        assert mine_compiled(text) == mine_reference(text)
        assert mine_compiled(text, 8, 2) == mine_reference(text, 8, 2)
    with pytest.raises(ValueError):
        mine_compiled("a a", 3, 1)


@settings(max_examples=150, deadline=None)
@given(texts())
def test_numpy_survives_hash_collisions(text):
    # With word keys that collide on purpose (the word's length), windows of
    # different words share hashes all the time: the checks must catch it.
    original = classic._word_keys
    try:
        classic._word_keys = lambda words: original([str(len(w)) for w in words])
        assert mine_numpy(text) == mine_reference(text)
        assert mine_numpy(text, 10, 2) == mine_reference(text, 10, 2)
    finally:
        classic._word_keys = original


@fast
def test_fast_equals_reference_on_real_turns_recombined(miner):
    # Real SmolLM2 turns from the test vectors, repeated and interleaved.
    turns = []
    for name in ("parrot_cold_1.log", "parrot_norep_1.log", "parrot_orig_1.log", "parrot_hot_1.log"):
        text, _ = assistant_lines(lines_after_done((TESTDATA / name).read_text()), "Skye:")
        turns.append(text)
    text = " ".join([turns[1], turns[2], turns[1], turns[3], turns[2], turns[0]])
    assert miner(text) == mine_reference(text)


# Texts on which faster designs tried for issue 5 went wrong (found by the property
# tests above): new repeats across the empty words a removal leaves, two windows through
# one new empty word at different offsets, repeats that appear only after a level's last
# group is gone, runs of empty words, small n_min. Kept as fixed cases for any rewrite.
HARD_CASES = [
    ('a  a  a  a  sat a  a  a  a  a  a  a  a  a  a  a  mattress mat a  a  a  a  a  sat a  the', 8, 2),
    ("sat  sat sat  sat sat  sat sat  sat mattress mat ba sat  sat sat  sat sat  sat sat  sat sat  sat mattress I'm  mattress mattress     sat sat  sat sat  sat sat  sat cat mattress ba       cat     ba cat", 10, 2),
    ("b ba glad I'm  sat sat ba cat ba ab mattress ab well.  so glad a so cat well. ab well.  so glad a so cat well. ab well.  so glad a so cat well. ab well.  so glad a so cat well. ab well.  so glad a so cat well. so b ba glad I'm  mattress I'm sat", 12, 2),
    ("I'm ab b b b b ba so well. b b b   well. a mat  well. a mat I'm I'm I'm  well. a mat  well. a mat  well. a mat  well. a mat  well. a mat ba I'm I'm I'm I'm I'm I'm I'm   well. a mat  well. a mat  well. a mat  well. a mat ab ab b well. ab b b b b", 64, 5),
    (' cat sat cat ab mat mat ba  cat sat cat ab mat mat ba  cat sat cat ab mat mat ba  mat cat cat b a  cat mat cat cat b mat cat cat b mat cat cat b mat cat cat b a mat cat cat b mat cat cat b mat cat cat b  cat sat cat ab mat mat ba  cat sat cat ab mat mat ba', 64, 5),
    (" cat glad  cat  cat  cat  cat cat  cat  cat  cat  cat  cat  cat the a a  cat  cat  cat  cat  cat  cat glad I'm  cat  cat  cat  cat  cat ab  cat  cat  cat I'm the  cat mat glad the  cat  cat  cat  cat the    cat  cat  cat  cat ba  cat  cat  cat  cat  cat  cat ab", 7, 2),
    (" a cat ab  a cat ab  a cat ab  a cat ab  a cat ab mattress  glad  the mat mat so glad  the mat mat so glad  the mat mat so glad  the mat mat so glad  the mat mat so sat glad ab the glad b mat I'm I'm the glad b mat I'm I'm the glad b mat I'm I'm the glad b mat I'm I'm glad", 12, 2),
    ('well. cat  well. sat cat well. cat  well. sat cat well. cat  well. sat cat sat  cat b well. glad sat  cat b well. glad sat  cat b well. glad mat mattress mattress b so  mattress sat glad b mattress mattress b so  mattress sat glad b a so sat  cat b well. glad sat  cat b well. glad sat  cat b well. glad', 13, 2),
    ('  a   a   a   a   a mat ab ab mat cat mat ab ab mat cat mat ab ab mat cat mat ab ab mat cat   a   a   a mat ab ab mat cat mat ab ab mat cat mat ab ab mat cat ba mattress sat ba ba mattress sat ba ba mattress sat ba ba mattress sat ba ba mattress sat ba ba mattress sat ba   a   a   a   a   a   a mattress', 11, 5),
    ("b b b b b b b b b b b b ba ba I'm b b b b b b b b b b b b b sat well. b b b b b b b b b ba mat b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b ba mat b b b b b b b I'm sat b b b b b b cat b b b b b b b b b b b b b b b ba b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b mattress well. the", 12, 3),
    ("well. so sat mat I'm so  ab so mat ab so mat", 13, 2),
    ("mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat so cat mattress cat ab  well. ba a well. mat well. mat I'm mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat sat so ab mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat a sat the so b a so ba so ab I'm so b a so ba so ab I'm so b a so ba so ab I'm a mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat so cat so b a so ba so ab I'm so b a so ba so ab I'm the mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat mattress cat ab  well. ba a well. mat the  ", 11, 2),
]


@fast
@pytest.mark.parametrize("text, n_max, n_min", HARD_CASES, ids=[f"hard{i}" for i in range(len(HARD_CASES))])
def test_fast_equals_reference_on_hard_cases(miner, text, n_max, n_min):
    assert miner(text, n_max, n_min) == mine_reference(text, n_max, n_min)
    assert classic_kernel.mine(text, n_max, n_min, weak_keys=True) == mine_reference(text, n_max, n_min)


def test_numpy_takes_over_without_numba():
    # A machine where numba cannot be imported still gets the same figures.
    code = ("import sys; sys.modules['numba'] = None\n"
            "from broken_record.analysis import classic\n"
            "assert classic.fast_miner() is classic.mine_numpy\n"
            "print(classic.mine_fast('a b c d e f a b c d e f x'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(mine_reference("a b c d e f a b c d e f x"))
