"""The classic kernel on long texts: the linear kernel gives the reference's results, and returns to Python.

``classic_kernel.mine`` runs the kernel that does a pass over the text per
removal (quick on a conversation of ordinary length) until those passes add
up to a budget, then starts again with the linear kernel (``_level``), which
updates an index of the windows around each removal instead. Both must give
``mine_reference``'s figures exactly; speed is measured by bench/bench_analyze.py.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_classic import HARD_CASES, TESTDATA, texts

from broken_record.analysis import classic_kernel
from broken_record.analysis.classic import assistant_lines, lines_after_done, mine_compiled, mine_reference


def linear(text: str, n_max: int = 64, n_min: int = 5, weak: bool = False):
    return classic_kernel.mine(text, n_max, n_min, weak_keys=weak, kernel="linear")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), n_min=st.integers(2, 6), extra=st.integers(1, 12))
def test_linear_equals_reference(text, n_min, extra):
    assert linear(text) == mine_reference(text)
    assert linear(text, n_min + extra, n_min) == mine_reference(text, n_min + extra, n_min)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts())
def test_linear_survives_hash_collisions(text):
    # Every word's key is its length: the byte checks must catch every shared hash.
    assert linear(text, weak=True) == mine_reference(text)
    assert linear(text, 10, 2, weak=True) == mine_reference(text, 10, 2)


@pytest.mark.parametrize("text, n_max, n_min", HARD_CASES, ids=[f"hard{i}" for i in range(len(HARD_CASES))])
def test_linear_equals_reference_on_hard_cases(text, n_max, n_min):
    assert linear(text, n_max, n_min) == mine_reference(text, n_max, n_min)
    assert linear(text, n_max, n_min, weak=True) == mine_reference(text, n_max, n_min)


def test_linear_handles_empty_and_tiny_texts():
    for text in ["", " ", "a", "a b c d e", "     ", "[empty] [empty] [empty] [empty] [empty] [empty]"]:
        assert linear(text) == mine_reference(text)
        assert linear(text, 8, 2) == mine_reference(text, 8, 2)
    with pytest.raises(ValueError):
        linear("a a", 3, 1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts())
def test_small_kernel_hands_over_to_the_linear_one_mid_way(text):
    # A tiny budget: the small kernel gives up after a removal or two and the
    # linear kernel starts again from the whole text.
    budgets = classic_kernel.SMALL_BUDGET, classic_kernel.SMALL_BUDGET_PER_WORD
    classic_kernel.SMALL_BUDGET, classic_kernel.SMALL_BUDGET_PER_WORD = 30, 1
    try:
        assert classic_kernel.mine(text, 64, 5) == mine_reference(text)
        assert classic_kernel.mine(text, 10, 2, weak_keys=True) == mine_reference(text, 10, 2)
    finally:
        classic_kernel.SMALL_BUDGET, classic_kernel.SMALL_BUDGET_PER_WORD = budgets


def _real_turns() -> list[str]:
    turns = []
    for name in ("parrot_cold_1.log", "parrot_norep_1.log", "parrot_orig_1.log", "parrot_hot_1.log"):
        for line in lines_after_done((TESTDATA / name).read_text()) or []:
            text, _ = assistant_lines([line], "Skye:")
            if text and text != "[empty]":
                turns.append(text)
    return turns


def test_linear_equals_reference_on_a_long_text_of_real_turns():
    # Real SmolLM2 turns, each new or a repeat of one of the last two (the
    # model's loops), and sentences that recur across the conversation.
    rng = random.Random(7)
    turns = _real_turns()
    said: list[str] = []
    for _ in range(400):
        said.append(rng.choice(said[-2:]) if len(said) > 2 and rng.random() < 0.5 else rng.choice(turns))
    text = " ".join(said)
    expected = mine_reference(text)
    assert linear(text) == expected
    assert mine_compiled(text) == expected


def test_linear_kernel_returns_to_python_between_steps(monkeypatch):
    # Between its calls Python handles Ctrl-C and shows progress: on a long
    # text with many removals there must be many such calls, not one.
    rng = random.Random(3)
    turns = _real_turns()
    text = " ".join(rng.choice(turns[:60]) for _ in range(3000))
    ticks = []
    result = classic_kernel.mine(text, 64, 5, kernel="linear", tick=lambda: ticks.append(1))
    assert len(ticks) >= 10
    assert result == classic_kernel.mine(text, 64, 5, kernel="small")
