"""The optional LLM judge (analyze.py --judge): chunks, prompts, constrained replies, failures.

Real llama-server (the session fixture and the embedded judge) for json_schema
and the GBNF grammar; the wire-format fakes for koboldcpp and vLLM; a judge
that answers garbage, one that dies, one that is not there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from fakes import FakeServer

from broken_record.analysis import judge
from broken_record.analysis.folder import analyze_folder
from broken_record.analysis.judge import client, folders, progress, reply
from broken_record.analysis.outputs import write_analysis
from broken_record.inference import KoboldCpp, OpenAICompatible, ServerInfo
from broken_record.inference.embedded import free_port
from broken_record.inference.llamacpp import LlamaServer
from broken_record.runs import reader as logs

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "fixtures" / "testdata"
RUN_A = ROOT / "tests" / "fixtures" / "runs" / "run_a"

REPLY = json.dumps({"summary": "Skye shows Mark her homepage.", "topics": ["Homepage", "code"],
                    "themes": ["pride", "humor"]})
REPLY_2 = json.dumps({"summary": "Skye repeats herself about her homepage.", "topics": ["homepage"],
                      "themes": ["repetition", "pride"]})


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "analyze.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def short_conversation(lines: int = 10) -> logs.Conversation:
    """A real generated conversation (testdata), cut to its system message and ``lines`` messages."""
    conv = logs.read_log(TESTDATA / "parrot_orig_1.log")
    conv.turns = conv.turns[: lines + 1]
    assert conv.turns[0].role == "system" and len(conv.turns) == lines + 1
    return conv


def is_word(word: str) -> bool:
    return isinstance(word, str) and word.isalpha() and word == word.lower()


def assert_judgement(chunk: dict) -> None:
    assert isinstance(chunk["summary"], str) and chunk["summary"].strip()
    assert chunk["topics"] and all(is_word(w) for w in chunk["topics"])
    assert chunk["themes"] and all(is_word(w) for w in chunk["themes"])


# --- pieces ---------------------------------------------------------------------------


def test_chunks_of_about_five_lines_skip_the_system_message():
    conv = logs.read_log(TESTDATA / "parrot_cold_1.log")  # system + 10 messages
    chunks = reply.chunk_turns(conv.turns, 5)
    assert [(c.start, c.end) for c in chunks] == [(1, 5), (6, 10)]
    assert chunks[0].lines[0].startswith("Skye: *Skye flashing")

    turns = [logs.Turn(index=i, role="user" if i % 2 else "assistant", text=f"line {i}", content="")
             for i in range(13)]
    assert [len(c.lines) for c in reply.chunk_turns(turns[:11], 5)] == [5, 6]   # short tail joins
    assert [len(c.lines) for c in reply.chunk_turns(turns, 5)] == [5, 5, 3]
    assert [len(c.lines) for c in reply.chunk_turns(turns[:3], 5)] == [3]
    assert reply.chunk_turns([], 5) == []


def test_prompt_lines_are_flat_and_short():
    chunk = reply.Chunk(1, 2, ["Skye: " + "word " * 200, "Mark: \"two\nlines\""])
    messages = reply.messages_for(chunk, 100)
    body = messages[1]["content"].split("\n")
    assert len(body) == 2 and len(body[0]) == 100 and body[0].endswith("…")
    assert body[1] == "Mark: \"two lines\""
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]


@pytest.mark.parametrize("text, expected", [
    (REPLY, {"summary": "Skye shows Mark her homepage.", "topics": ["homepage", "code"],
             "themes": ["pride", "humor"]}),
    # an unconstrained engine's chatter around the object; words cleaned and deduplicated
    ('Sure!\n```json\n{"summary": " They  meet. ", "topics": ["Coffee.", "coffee", ""], "themes": []}\n```',
     {"summary": "They meet.", "topics": ["coffee"], "themes": []}),
])
def test_replies_that_parse(text, expected):
    assert reply.parse_reply(text) == (expected, None)


@pytest.mark.parametrize("text, why", [
    ("not json", "not JSON"),
    ("", "empty reply"),
    ('["a", "b"]', "not a JSON object"),
    ('{"topics": ["a"], "themes": ["b"]}', "no summary string"),
    ('{"summary": "x", "topics": "coffee", "themes": []}', "topics is not a list of strings"),
    ('{"summary": "x", "topics": ["coffee"], "themes": [3]}', "themes is not a list of strings"),
    ('{"summary": "x", "topics": ["ice cream"], "themes": []}', "not a single word"),
    ('{"summary": "x", "topics": ["coff', "not JSON"),   # cut off by the token limit
])
def test_replies_that_do_not_fit_are_garbage(text, why):
    parsed, reason = reply.parse_reply(text)
    assert parsed is None and why in reason


def test_recurring_words_count_chunks():
    chunks = [{"topics": ["coffee", "rain", "coffee"]}, {"topics": ["rain", "coffee"]},
              {"topics": ["volleyball", "rain"]}, {"topics": []}]
    assert reply.recurring(chunks, "topics") == [["rain", 3], ["coffee", 2]]
    assert reply.recurring([], "topics") == []


def test_each_engine_gets_its_own_constraint():
    def constraint(engine):
        return client.constrained(engine)

    assert constraint(LlamaServer("http://127.0.0.1:9")) == ({"json_schema": reply.SCHEMA}, "json_schema")
    assert constraint(OpenAICompatible("http://127.0.0.1:9")) == ({"guided_json": reply.SCHEMA}, "guided_json")
    assert constraint(KoboldCpp("http://127.0.0.1:9")) == ({"grammar": reply.GRAMMAR}, "grammar")
    # llama-server behind its OpenAI endpoint takes the native field
    behind = OpenAICompatible("http://127.0.0.1:9")
    behind.sampler_names = {**behind.sampler_names, **LlamaServer.sampler_names}
    assert constraint(behind) == ({"json_schema": reply.SCHEMA}, "json_schema")


def test_prompt_uses_the_server_template_and_survives_one_without_system_role():
    engine = LlamaServer("http://127.0.0.1:9")
    chunk = reply.Chunk(1, 1, ["Skye: Hello there."])
    engine.info = ServerInfo(engine="llama-server", url=engine.url, n_ctx=4096, chat_template=(
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"))
    prompt = client.Judge(engine).prompt(chunk)
    assert prompt.startswith("[system]Summarize") and prompt.endswith("[user]Skye: Hello there.[assistant]")
    engine.info.chat_template = (
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "<turn>{{ m.role }}: {{ m.content }}</turn>{% endfor %}<turn>model: ")
    prompt = client.Judge(engine).prompt(chunk)
    assert prompt.startswith("<turn>user: Summarize") and "Skye: Hello there.</turn>" in prompt
    engine.info.chat_template = None   # no template published: ChatML
    assert client.Judge(engine).prompt(chunk).startswith("<|im_start|>system\nSummarize")


def test_small_contexts_get_shorter_lines():
    engine = LlamaServer("http://127.0.0.1:9")
    engine.info = ServerInfo(engine="llama-server", url=engine.url, n_ctx=512)
    assert client.Judge(engine).line_chars == (512 - client.MAX_TOKENS - 200) * 3 // 5
    engine.info.n_ctx = 8192
    assert client.Judge(engine).line_chars == reply.LINE_CHARS


def test_the_package_entry_point_is_judge_folders():
    assert judge.judge_folders is folders.judge_folders
    assert judge.__all__ == ["judge_folders"]


def test_progress_is_silent_when_off_or_empty():
    with progress.progress_bar(3, False) as advance:
        advance.describe("a.jsonl")
        advance()
    with progress.progress_bar(0, True) as advance:
        advance()
    ticks = []

    class Bar:
        def advance(self, task):
            ticks.append(("advance", task))

        def update(self, task, description):
            ticks.append(("update", task, description))

    on = progress.Advance(Bar(), 7)
    on.describe("b.log")
    on()
    assert ticks == [("update", 7, "judge b.log"), ("advance", 7)]


# --- the real llama-server ----------------------------------------------------------------


def test_real_llama_server_replies_all_parse_thanks_to_json_schema(llama_server):
    conv = short_conversation(10)
    with client.open_judge(llama_server.url) as j:
        assert j.constraint == "json_schema" and j.engine_name == "llama-server"
        assert "SmolLM2" in j.model
        result = j.judge_conversation(conv)
    assert result["errors"] == 0 and result["garbage"] == [] and result["skipped"] == 0
    assert [c["lines"] for c in result["chunks"]] == [[1, 5], [6, 10]]
    for chunk in result["chunks"]:
        assert_judgement(chunk)
        assert len(chunk["summary"]) <= reply.MAX_SUMMARY
        assert len(chunk["topics"]) <= reply.MAX_WORDS and len(chunk["themes"]) <= reply.MAX_WORDS
    for key in ("recurring_topics", "recurring_themes"):
        assert all(isinstance(w, str) and n >= 2 for w, n in result[key])


def test_the_koboldcpp_grammar_is_valid_gbnf_for_the_real_grammar_engine(llama_server):
    # koboldcpp uses llama.cpp's grammar engine: send the same GBNF to llama-server.
    with client.open_judge(llama_server.url) as j:
        j.params = {**j.engine.translate(client.SAMPLER)[0], "grammar": reply.GRAMMAR}
        result = j.judge_chunks(reply.chunk_turns(short_conversation(5).turns, 5))
    assert result["errors"] == 0, result["garbage"]
    assert len(result["chunks"]) == 1
    assert_judgement(result["chunks"][0])


# --- other engines (wire-format fakes) ------------------------------------------------------


def test_koboldcpp_gets_a_grammar_and_no_json_schema():
    with FakeServer("koboldcpp", replies=[REPLY, REPLY_2]) as fake:
        with client.open_judge(fake.url) as j:
            result = j.judge_conversation(short_conversation(10))
        assert len(fake.requests) == 2
        for body in fake.requests:
            assert body["grammar"] == reply.GRAMMAR
            assert not {"json_schema", "guided_json"} & set(body)
            assert body["max_length"] == client.MAX_TOKENS
            assert body["prompt"].startswith("<|im_start|>system\nSummarize")   # no template published: ChatML
            assert "Skye:" in body["prompt"]
    assert result["engine"] == "koboldcpp" and result["constraint"] == "grammar"
    assert result["errors"] == 0 and len(result["chunks"]) == 2
    assert result["chunks"][0]["topics"] == ["homepage", "code"]
    assert result["recurring_topics"] == [["homepage", 2]]
    assert result["recurring_themes"] == [["pride", 2]]


def test_openai_compatible_gets_guided_json():
    with FakeServer("openai", replies=[REPLY]) as fake:
        with client.open_judge(fake.url, kind="auto") as j:
            result = j.judge_conversation(short_conversation(5))
        body = fake.requests[0]
        assert body["guided_json"] == reply.SCHEMA
        assert not {"json_schema", "grammar", "guided_grammar"} & set(body)
        assert body["max_tokens"] == client.MAX_TOKENS and body["model"] == "fake/vllm-model"
    assert result["engine"] == "openai" and result["model"] == "fake/vllm-model"
    assert result["chunks"] == [{"lines": [1, 5], "summary": "Skye shows Mark her homepage.",
                                 "topics": ["homepage", "code"], "themes": ["pride", "humor"]}]


def test_a_garbage_judge_is_counted_and_the_analysis_completes(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN_A, folder)
    with FakeServer("openai", replies=["not json", REPLY]) as fake:
        result = write_analysis(folder, workers=1, judge=fake.url)
        asked = fake.generations
    written = json.loads((folder / "analysis.json").read_text())
    assert written == result
    assert len(written["conversations"]) == 3
    errors = sum(c["judge"]["errors"] for c in written["conversations"])
    good = sum(len(c["judge"]["chunks"]) for c in written["conversations"])
    assert errors + good == asked and errors == (asked + 1) // 2 and good == asked // 2
    bad = written["conversations"][0]["judge"]["garbage"][0]
    assert bad == {"lines": bad["lines"], "error": "not JSON", "reply": "not json"}
    assert written["judge"]["errors"] == errors and written["judge"]["chunks"] == good
    assert any(f"judge: {errors} of {asked} replies were unusable" in w for w in written["warnings"])
    # the rest of the analysis is all there
    assert all("loop_score" in c and "loops" in c for c in written["conversations"])


def test_a_judge_that_dies_is_given_up_and_the_rest_skipped(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN_A, folder)
    # every stream dropped after its first chunk
    with FakeServer("openai", replies=[REPLY], die_after={n: 1 for n in range(50)}) as fake:
        result = analyze_folder(folder, workers=1)
        warnings = folders.judge_folders([(folder, result)], fake.url)
        asked = fake.generations
    assert asked == client.GONE_AFTER
    total = sum(len(reply.chunk_turns(logs.read_log(folder / c["file"]).turns)) for c in result["conversations"])
    assert result["judge"]["skipped"] == total - asked and result["judge"]["errors"] == asked
    assert any("stopped answering" in w and fake.url in w for w in warnings)


# --- analyze.py --judge ------------------------------------------------------------------------


def test_cli_unreachable_judge_warns_once_and_still_writes(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN_A, folder)
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(str(folder), "--judge", url, "-j", "1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("analyze.py: warning: judge server ")
    assert url in result.stderr and "Traceback" not in result.stderr
    assert "Character Count:" in result.stdout
    written = json.loads((folder / "analysis.json").read_text())
    assert len(written["conversations"]) == 3
    assert written["judge"] == {"url": url, "error": written["judge"]["error"]}
    assert "unreachable" in written["judge"]["error"]
    assert all("judge" not in c for c in written["conversations"])


def test_cli_judge_end_to_end(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN_A, folder)
    with FakeServer("koboldcpp", replies=[REPLY, REPLY_2]) as fake:
        report = cli(str(folder), "--judge", fake.url, "--judge-lines", "4", "-j", "1")
        first = len(fake.requests)
        printed = cli(str(folder), "--judge", fake.url, "--judge-engine", "koboldcpp", "--json")
    assert report.returncode == 0 and printed.returncode == 0, report.stderr + printed.stderr
    assert report.stderr == ""
    assert all(body["grammar"] == reply.GRAMMAR for body in fake.requests)
    written = json.loads((folder / "analysis.json").read_text())
    assert json.loads(printed.stdout) == written
    markup = next(c for c in written["conversations"] if c["file"] == "parrot_markup_1.jsonl")
    # --judge-lines 4 in the report run; the default of 5 in the --json run
    assert [c["lines"] for c in markup["judge"]["chunks"]] == [[1, 5], [6, 9]]
    assert first > len(fake.requests) - first
    for conv in written["conversations"]:
        j = conv["judge"]
        assert j["errors"] == 0 and j["engine"] == "koboldcpp" and j["model"] == "koboldcpp/fake-model"
        assert set(j) >= {"chunks", "recurring_topics", "recurring_themes", "errors", "model", "engine"}
        for chunk in j["chunks"]:
            assert_judgement(chunk)
    assert written["judge"]["recurring_topics"][0] == ["homepage", written["judge"]["chunks"]]
    assert written["judge"]["lines_per_chunk"] == 5
    out = report.stdout
    assert "Judge: 2 chunk(s) summarised" in out or "Judge: 3 chunk(s) summarised" in out
    assert "  lines 1-4: Skye shows Mark her homepage." in out
    assert "recurring topics: homepage (" in out
    assert "recurring topics across the folder: homepage (" in out
    assert "Character Count:" in out and "Traceback" not in out


def test_cli_judge_embedded_starts_and_stops_its_server(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(TESTDATA / "quirks_clean.log", folder)   # 6 messages: one chunk
    result = cli(str(folder), "--judge", "embedded", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    j = data["conversations"][0]["judge"]
    assert j["errors"] == 0 and j["engine"] == "llama-server" and j["constraint"] == "json_schema"
    assert [c["lines"] for c in j["chunks"]] == [[0, 5]]
    assert_judgement(j["chunks"][0])
    assert data["judge"]["embedded"] is True
    # the judge's server is gone with the command
    with pytest.raises(requests.ConnectionError):
        requests.get(data["judge"]["url"] + "/health", timeout=5)


def test_cli_rejects_bad_judge_arguments(tmp_path):
    result = cli(str(tmp_path), "--judge", "embedded", "--judge-lines", "0")
    assert result.returncode == 2 and "--judge-lines" in result.stderr
    result = cli(str(tmp_path), "--judge", "x", "--judge-engine", "nope")
    assert result.returncode == 2 and "--judge-engine" in result.stderr
