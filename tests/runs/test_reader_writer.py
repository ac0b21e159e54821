"""Reading logs: the original text layout, .jsonl, partial and bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broken_record.analysis import classic
from broken_record.runs.reader import LogError, find_logs, parse_jsonl, parse_text_log, read_log
from broken_record.runs.writer import ConversationLog, closing_text

TESTDATA = Path(__file__).resolve().parents[1] / "fixtures" / "testdata"
RUN_A = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "run_a"


def write_pair(folder: Path, source: Path, stem: str = "parrot_pair") -> tuple[Path, Path]:
    """Both logs of one conversation written by the project's own ConversationLog, from a real log's messages."""
    conv = read_log(source)
    log = ConversationLog(folder, stem=stem)
    log.header({"config": conv.config, "agent_prefix": conv.agent_prefix, "user_prefix": conv.user_prefix,
                "assistant": {"engine": "llama-server", "model": "smollm2-135m"},
                "user": {"engine": "llama-server", "model": "smollm2-135m"}})
    records = []
    for turn in conv.turns:
        record = {"index": turn.index, "role": turn.role, "text": turn.text, "prefix": "",
                  "generated": turn.raw, "tokens_before": turn.tokens_before, "source": turn.source}
        if turn.source == "model":
            record.update({"tokens": turn.tokens, "stop": turn.stop or "eos"})
            if turn.role == "assistant":
                log.marker(turn.tokens_before)
        records.append(record)
        log.message(record)
    log.close({"end_reason": "total_tokens", "complete": True, "total_tokens": conv.total_tokens,
               "turns": len(records), "malformed_stream_lines": 0},
              closing_text(records, conv.config, "smollm2-135m", "smollm2-135m", conv.total_tokens))
    return log.log_path, log.jsonl_path


def test_text_log_in_the_original_layout():
    conv = read_log(TESTDATA / "parrot_cold_1.log")
    assert conv.format == "text" and conv.complete
    assert conv.agent_prefix == "Skye:" and conv.user_prefix == 'Mark: "'
    assert [t.role for t in conv.turns][:3] == ["system", "assistant", "user"]
    assert len(conv.turns) == 11 and len(conv.assistant_turns) == 5
    # The opening lines come from the config; tokens are inferred from the @ counts.
    assert [t.source for t in conv.assistant_turns] == ["config"] + ["model"] * 4
    assert conv.assistant_turns[1].tokens == 256 and conv.assistant_turns[1].stop == "limit"
    assert conv.settings["assistant"]["model"] == "smollm2-135m"
    assert conv.settings["assistant"]["sampler"]["temperature"] == 0.2
    assert conv.total_tokens == 2048


def test_prefix_comes_from_the_full_config_line():
    conv = read_log(TESTDATA / "quirks_overlap.log")
    assert conv.agent_prefix == "Nova:"
    assert [t.content for t in conv.assistant_turns][1] == ""


def test_turn_below_the_limit_has_no_guessed_stop():
    conv = read_log(TESTDATA / "parrot_hot_1.log")
    stops = [t.stop for t in conv.assistant_turns if t.source == "model"]
    assert stops == ["limit", "limit", None, "limit", "limit"]


def test_jsonl_log():
    conv = read_log(RUN_A / "parrot_markup_1.jsonl")
    assert conv.format == "jsonl" and conv.complete and conv.end_reason == "total_tokens"
    assert [t.stop for t in conv.assistant_turns] == [None, "eos", "eos", "eos", "limit"]
    assert conv.settings["assistant"]["engine"] == "llama-server"
    assert conv.assistant_turns[1].content.startswith("It starts with <script>")


def test_jsonl_and_text_log_of_one_conversation_agree(tmp_path):
    log_path, jsonl_path = write_pair(tmp_path, TESTDATA / "parrot_norep_1.log")
    text, structured = read_log(log_path), read_log(jsonl_path)
    assert [t.content for t in text.turns] == [t.content for t in structured.turns]
    assert [t.role for t in text.turns] == [t.role for t in structured.turns]
    a = classic.classic_from_lines(text.classic_lines, text.agent_prefix)
    b = classic.classic_from_lines(structured.classic_lines, structured.agent_prefix)
    assert (a.character_count, a.loop_score, a.segments) == (b.character_count, b.loop_score, b.segments)
    assert a.loop_density == 0.8407304669440592  # the test vector's figure, through our own writer


def test_a_written_text_log_ends_as_the_originals_do(tmp_path):
    # the original's logs end with "--- T tokens, N turns ---" and then an empty line
    log_path, _ = write_pair(tmp_path, TESTDATA / "parrot_norep_1.log")
    original = (TESTDATA / "parrot_norep_1.log").read_text(encoding="utf-8")
    ours = log_path.read_text(encoding="utf-8")
    assert original.endswith(" turns ---\n\n") and ours.endswith(" turns ---\n\n")
    assert ours.splitlines()[-2] == original.splitlines()[-2] == "--- 2065 tokens, 21 turns ---"


def test_jsonl_without_footer_is_partial(tmp_path):
    lines = (RUN_A / "parrot_markup_1.jsonl").read_text().splitlines()
    killed = tmp_path / "killed.jsonl"
    killed.write_text("\n".join(lines[:6]) + "\n")
    conv = read_log(killed)
    assert not conv.complete and conv.end_reason == "interrupted"
    assert len(conv.turns) == 5


def test_jsonl_cut_mid_line_keeps_the_whole_lines(tmp_path):
    text = (RUN_A / "parrot_markup_1.jsonl").read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: text.index('"index": 5') + 30])
    conv = read_log(cut)
    assert not conv.complete
    assert [t.index for t in conv.turns] == [0, 1, 2, 3, 4]


def test_text_log_killed_before_done_is_read_from_the_stream(tmp_path):
    text = (TESTDATA / "parrot_norep_1.log").read_text()
    killed = tmp_path / "killed.log"
    killed.write_text(text[: text.index("--- DONE ---")][:3000])
    conv = read_log(killed)
    assert not conv.complete and conv.format == "text"
    assert conv.agent_prefix == "Skye:"
    assert conv.assistant_turns and all(t.role in ("assistant", "user") for t in conv.turns)


def test_text_log_cut_after_done_is_partial():
    text = (TESTDATA / "parrot_orig_1.log").read_text()
    conv = parse_text_log(text[: text.rindex("=== user")], "cut.log")
    assert not conv.complete
    assert len(conv.assistant_turns) == 11


@pytest.mark.parametrize("content, reason", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("just some words\nwithout any structure", "not a parrot log"),
    ('{"type": "message"}\n', "no header"),
    ("{not json\n{}\n", "not JSON"),
    ("\x00\x01\x02\xff", "not a parrot log"),
])
def test_bad_files_raise_one_line(tmp_path, content, reason):
    suffix = ".jsonl" if content.startswith("{") else ".log"
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(LogError, match=reason) as info:
        read_log(path)
    assert "\n" not in str(info.value)


def test_garbled_middle_line_in_jsonl_is_an_error():
    lines = (RUN_A / "parrot_markup_1.jsonl").read_text().splitlines()
    lines[3] = "garbage"
    with pytest.raises(LogError, match="line 4"):
        parse_jsonl("\n".join(lines))


def test_find_logs_prefers_jsonl_and_ignores_other_files(tmp_path):
    shutil.copy(RUN_A / "parrot_markup_1.jsonl", tmp_path)
    shutil.copy(RUN_A / "parrot_markup_1.log", tmp_path)
    shutil.copy(TESTDATA / "parrot_hot_1.log", tmp_path)
    for name in ("config.json", "manifest.json", "analysis.json", "response_length_vs_loop_density.json"):
        (tmp_path / name).write_text(json.dumps({}))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_logs(tmp_path)] == ["parrot_hot_1.log", "parrot_markup_1.jsonl"]


def test_crlf_log_reads_like_lf(tmp_path):
    text = (TESTDATA / "quirks_clean.log").read_text()
    path = tmp_path / "crlf.log"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    a, b = read_log(path), read_log(TESTDATA / "quirks_clean.log")
    assert [t.content for t in a.turns] == [t.content for t in b.turns]
