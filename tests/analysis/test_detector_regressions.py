"""Issue 14's observed cases, each with the verdict a reader of the conversation gives.

The texts are the turns quoted in the issue (the word soup is the real
SmolLM2 turn of fixtures/testdata/parrot_hot_1.log); the rest of each
conversation is real turns from fixtures/testdata.
"""

from __future__ import annotations

from pathlib import Path

from broken_record.analysis import detectors as d
from broken_record.runs.reader import read_log

TESTDATA = Path(__file__).resolve().parents[1] / "fixtures" / "testdata"
ORIG = read_log(TESTDATA / "parrot_orig_1.log")
HOT = read_log(TESTDATA / "parrot_hot_1.log")
# parrot_orig's assistant turn 8 is the template loop ("You're amazing. You're amazing..."),
# the others are ordinary replies.
GENERATED = [t.content for t in ORIG.assistant_turns if t.source != "config"]
TEMPLATE = GENERATED[7]
FLUENT = GENERATED[:7] + GENERATED[8:] + [t.content for t in ORIG.turns if t.role == "user" and t.source != "config"]


def conversation(assistant: list[str], user: list[str] | None = None, **fields) -> list[d.Reply]:
    """Alternating assistant/user replies numbered as messages 1, 2, ... (message 0 is the system prompt)."""
    user = user if user is not None else [t.content for t in ORIG.turns if t.role == "user"][:len(assistant)]
    out: list[d.Reply] = []
    for k, text in enumerate(assistant):
        out.append(d.Reply(text=text.strip(), raw=text, message=len(out) + 1, speaker="assistant", **fields))
        if k < len(user):
            out.append(d.Reply(text=user[k].strip(), raw=user[k], message=len(out) + 1, speaker="user", **fields))
    return out


def assistant_of(found: dict, family: str, name: str) -> dict:
    return found["assistant"][family][name]


# --- word soup is a property of the text ------------------------------------------


def test_soup_that_ended_on_eos_is_soup():
    soup = next(t.content for t in HOT.assistant_turns if t.content.startswith("Authentic plutonium"))
    assert len(soup) == 269
    replies = conversation(FLUENT[:3] + [soup] + FLUENT[3:5], stop="eos")
    entry = assistant_of(d.detect_all(replies), "breaks", "word_soup")
    assert entry["turns"] == [3] and entry["messages"] == [7]


def test_a_fluent_ramble_that_hit_the_limit_is_not_soup():
    ramble = " ".join(FLUENT)[:1036]
    assert len(ramble) == 1036
    replies = conversation(FLUENT[:2] + [ramble] + FLUENT[2:4], stop="limit")
    entry = assistant_of(d.detect_all(replies), "breaks", "word_soup")
    assert not entry["present"]
    assert 2 in entry["limit_turns"]


# --- phrase loops inside one turn -------------------------------------------------


def test_a_phrase_said_four_times_in_a_short_turn_is_intra_turn_repetition():
    phrase = "That's the most beautiful thing you can do"
    turn = (f'*smiles softly* "{phrase}, Theo. {phrase}. I mean it, {phrase}. Really, {phrase}," '
            "*she whispers, leaning closer to the lanterns* \"and I want to hear it again.\"")
    assert 250 <= len(turn) <= 300
    entry = assistant_of(d.detect_all(conversation(FLUENT[:2] + [turn] + FLUENT[2:4])),
                         "loops", "intra_turn_repetition")
    assert entry["turns"] == [2]


def test_a_template_loop_with_small_variations_is_intra_turn_repetition():
    turn = TEMPLATE
    assert turn.count("You're") >= 40
    entry = assistant_of(d.detect_all(conversation(FLUENT[:1] + [turn] + FLUENT[1:3])),
                         "loops", "intra_turn_repetition")
    assert entry["turns"] == [1]


def test_a_refrain_in_a_varied_turn_is_not_intra_turn_repetition():
    turn = ("I love the river at night. The lights dance on the water, the vendors call out, and I love the "
            "smell of the grilled corn. Do you come here often? I love it here.")
    entry = assistant_of(d.detect_all(conversation(FLUENT[:1] + [turn] + FLUENT[1:3])),
                         "loops", "intra_turn_repetition")
    assert not entry["present"]


# --- near-verbatim is not semantic ------------------------------------------------


def test_near_verbatim_repeats_with_small_edits_are_a_single_turn_loop_not_semantic():
    a = " ".join(["I'm doing well too."] * 6)
    b = " ".join(["I'm doing well."] * 7)
    replies = conversation(FLUENT[:2] + [a, b, a] + FLUENT[2:3])
    found = d.detect_all(replies)
    assert assistant_of(found, "loops", "single_turn_loop")["turns"] == [3, 4]
    assert not assistant_of(found, "loops", "semantic_repetition")["present"]


# --- one severity, the share of the speaker's turns ------------------------------


def test_an_opening_habit_is_not_a_looping_conversation():
    varied = FLUENT[:7] + FLUENT[9:13]  # FLUENT[7] says "thank you" 20 times
    # *smirks* alone is one shared word: a habit, not even a shared three-word opening
    found = d.detect_all(conversation([f"*smirks* {t}" for t in varied]))
    assert not assistant_of(found, "loops", "prefix_repetition")["present"]
    assert found["assistant"]["loop_onset_turn"] is None
    # a longer habitual opening is prefix repetition, with the same severity as any type, but no loop
    found = d.detect_all(conversation([f"*smirks* Oh, Theo. {t}" for t in varied]))
    prefix = assistant_of(found, "loops", "prefix_repetition")
    assert prefix["present"] and prefix["severity"] == 1.0 and not prefix["long"]
    assert prefix["prefix"] == "*smirks* oh theo"
    assert found["assistant"]["loop_onset_turn"] is None


def test_severity_is_the_share_of_turns_for_every_type():
    turns = list(FLUENT[:14])
    raws = list(turns)
    for k in (3, 7, 11):
        raws[k] = "   " + turns[k]
    turns[5] = "As an AI, I cannot continue this role-play."
    turns[9] = "I'm sorry, but I can't continue this conversation."
    raws[5], raws[9] = turns[5], turns[9]
    replies = [d.Reply(text=t.strip(), raw=r, message=2 * k + 1) for k, (t, r) in enumerate(zip(turns, raws))]
    loops, breaks, _ = d.detect(replies)
    assert breaks["leading_whitespace"]["turns"] == [3, 7, 11]
    assert breaks["leading_whitespace"]["severity"] == round(3 / 14, 4)
    assert breaks["rejection"]["turns"] == [5, 9]
    assert breaks["rejection"]["severity"] == round(2 / 14, 4)


# --- both speakers, and who drives -----------------------------------------------


def test_the_user_echoing_the_assistant_is_an_echo_and_a_user_loop():
    juno = FLUENT[:6]
    theo = [juno[0]] + juno[1:6]  # Theo repeats what Juno just said, word for word
    found = d.detect_all(conversation(juno, theo))
    assert found["echoes"]["user"] == [2, 4, 6, 8, 10, 12]
    assert found["echoes"]["assistant"] == []
    assert found["drivers"]["echoes"] == {"assistant": 0, "user": 6}


def test_a_user_loop_is_found_in_the_user_turns():
    theo = ['"Um, I like it here."'] + ['"I really like the radios here, they remind me of my grandfather."'] * 5
    found = d.detect_all(conversation(FLUENT[:6], theo))
    user = found["user"]["loops"]["single_turn_loop"]
    assert user["turns"] == [2, 3, 4, 5] and user["messages"] == [6, 8, 10, 12]
    assert found["user"]["loop_onset_message"] == 6
    assert found["assistant"]["loop_onset_turn"] is None


def test_the_driver_is_the_speaker_who_said_the_repeated_segment_first():
    segment = "the lanterns look like little moons over the water"
    theo = [f'"Look, {segment}."'] + [f'"Yes, {segment}," *he nods*'] * 3
    juno = [FLUENT[0]] + [f'*laughs* "You said it, {segment}!"'] * 3
    found = d.detect_all(conversation(juno, theo), segments=[(segment, 6)])
    assert found["drivers"]["driven_by"] == "user"
    assert found["drivers"]["segments"][0]["first_message"] == 2
    assert found["drivers"]["segments"][0]["turns"] == {"assistant": 3, "user": 4}
