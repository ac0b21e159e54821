"""Stop strings in a server's text: cut where the first begins, hold back what may begin one."""

import pytest

from broken_record.inference.base import first_stop, held_tail


@pytest.mark.parametrize("text, stop, found", [
    (" Dessert of the Month!\n", ["\n"], (22, "\n")),         # inside one token (koboldcpp, recorded)
    ("Hi!\n\nOh no", ["\n"], (3, "\n")),                     # the first of several
    ("Hi\nTheo: ok", ["Theo:", "\n"], (2, "\n")),             # the earliest of several strings
    ("a\nTheo: b", ["\nTheo:", "\n"], (1, "\nTheo:")),        # two at one place: the longer
    ("no stop here", ["\n"], None),
    ("", ["\n"], None),
    ("x", [""], None),                                       # an empty stop string never matches
])
def test_first_stop(text, stop, found):
    assert first_stop(text, stop) == found


@pytest.mark.parametrize("text, stop, held", [
    ("Hi\n", ["\n\n"], 1), ("Hi\nThe", ["\nTheo:"], 4), ("Hi", ["\n"], 0), ("Hi T", ["Theo:", "\n"], 1)])
def test_held_tail(text, stop, held):
    assert held_tail(text, stop) == held
