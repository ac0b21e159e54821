"""Standard metrics: distinct-n, seq-rep-n, compression ratio, repeated share."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broken_record.analysis import classic, metrics
from broken_record.runs.reader import read_log

TESTDATA = Path(__file__).resolve().parents[1] / "fixtures" / "testdata"


def test_tokens():
    assert metrics.tokens("I'm OK, OK!") == ["i'm", "ok", ",", "ok", "!"]


def test_distinct_n():
    assert metrics.distinct_n(["a", "b", "a", "b"], 1) == 0.5
    assert metrics.distinct_n(["a", "b", "a", "b"], 2) == pytest.approx(2 / 3)
    assert metrics.distinct_n(["a"], 2) == 0.0


def test_seq_rep_n_as_welleck_defines_it():
    # 4 bigrams, 2 unique: 1 - 2/4.
    assert metrics.seq_rep_n(["a", "b", "a", "b", "a"], 2) == 0.5
    assert metrics.seq_rep_n(list("abcdefgh"), 4) == 0.0
    assert metrics.seq_rep_n(["a"] * 3, 4) == 0.0  # no 4-gram at all


def test_compression_ratio_grows_with_repetition():
    varied = "Morning light spilled over the harbour as gulls argued about breakfast."
    looped = "Thank you. " * 40
    assert metrics.compression_ratio(looped) > 5 * metrics.compression_ratio(varied)
    assert metrics.compression_ratio("") == 0.0


def test_repeated_share_is_bounded():
    assert metrics.repeated_share(200, 50) == 0.75
    assert metrics.repeated_share(0, 0) == 0.0
    assert metrics.repeated_share(10, 20) == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["so", "glad", "", "well.", "I'm", "x"]), max_size=120))
def test_repeated_share_in_unit_interval_while_density_is_not(words):
    text = " ".join(words)
    figures = classic.classic_figures(text, [len(text)])
    share = metrics.repeated_share(figures.text_length, figures.remaining_length)
    assert 0.0 <= share <= 1.0


def test_real_conversations_rank_as_expected():
    def measured(name):
        turns = [t.content for t in read_log(TESTDATA / name).assistant_turns if t.source == "model"]
        return metrics.text_metrics(turns)

    cold, hot = measured("parrot_cold_1.log"), measured("parrot_hot_1.log")
    assert cold["seq_rep_4"] > 0.8 > 0.05 > hot["seq_rep_4"]
    assert cold["distinct_2"] < 0.2 < 0.9 < hot["distinct_2"]
    assert cold["compression_ratio"] > 3 * hot["compression_ratio"]
    assert len(cold["seq_rep_4_per_turn"]) == 4
    # The classic density of parrot_cold is far above 1; its bounded share is not.
    figures = classic.classic_from_lines(read_log(TESTDATA / "parrot_cold_1.log").classic_lines, "Skye:")
    assert figures.loop_density > 6
    assert 0.9 < metrics.repeated_share(figures.text_length, figures.remaining_length) <= 1.0
