"""schema.py's records are what the files hold: every key written is declared, every required key written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import ROOT
from fakes import FakeServer

from broken_record.analysis.folder import analyze_folder
from broken_record.conversation.config import load_config
from broken_record.conversation.dialogue import Dialogue
from broken_record.conversation.roles import open_role
from broken_record.runs import schema
from broken_record.runs.writer import ConversationLog

RUN_A = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "run_a"


def fits(record: dict, typed_dict: type) -> None:
    """``record`` holds every required key of ``typed_dict`` and no key it does not declare."""
    required, optional = set(typed_dict.__required_keys__), set(typed_dict.__optional_keys__)
    assert required <= record.keys(), f"{typed_dict.__name__}: missing {sorted(required - record.keys())}"
    assert record.keys() <= required | optional, \
        f"{typed_dict.__name__}: undeclared {sorted(record.keys() - required - optional)}"


def all_keys(typed_dict: type) -> set[str]:
    return set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)


def conversation(tmp_path: Path, human=None, **overrides) -> list[dict]:
    """A conversation written by the turn loop against a fake server, as its .jsonl lines."""
    raw = json.loads((ROOT / "config.json").read_text())
    with FakeServer("openai", ["Juno says hello there\n", "Theo nods\n"]) as fake:
        raw.update({"api_url": fake.url, "template": "chatml", "total_tokens": 40, "turn_max_tokens": 10,
                    **overrides})
        path = tmp_path / "config.json"
        path.write_text(json.dumps(raw))
        cfg = load_config(path)
        a = open_role(cfg.assistant, fake.url, cfg)
        u = open_role(cfg.user, fake.url, cfg)
        log = ConversationLog(tmp_path / "out", "conv")
        Dialogue(cfg, a, u, log, human=human).talk()
    return [json.loads(line) for line in log.jsonl_path.read_text(encoding="utf-8").splitlines()]


def check_conversation(lines: list[dict]) -> None:
    header, *messages, footer = lines
    assert header["type"] == "header" and footer["type"] == "footer"
    assert all(m["type"] == "message" for m in messages)
    fits(header, schema.HeaderLine)
    fits(header["assistant"], schema.RoleInfo)
    fits(header["user"], schema.RoleInfo)
    for m in messages:
        fits(m, schema.MessageLine)
    fits(footer, schema.FooterLine)
    assert footer["end_reason"] in schema.END_REASONS
    assert {m["source"] for m in messages} <= set(schema.Source.__args__)


def test_a_written_conversation_fits_the_schema(tmp_path):
    lines = conversation(tmp_path)
    check_conversation(lines)
    header, *messages, footer = lines
    # every key the schema declares is one the turn loop writes
    assert header.keys() == all_keys(schema.HeaderLine)
    assert header["assistant"].keys() == all_keys(schema.RoleInfo)
    assert footer.keys() == all_keys(schema.FooterLine)
    assert header["version"] == schema.JSONL_VERSION
    generated = [m for m in messages if m["source"] == "model"]
    assert generated and all(m.keys() == all_keys(schema.MessageLine) - {"applied_settings"}
                             for m in generated)
    config = [m for m in messages if m["source"] == "config"]
    assert config and all(m.keys() == set(schema.MessageLine.__required_keys__) for m in config)


def test_a_typed_turn_fits_the_schema(tmp_path):
    typed = iter(["I am typing this", None, None, None])
    lines = conversation(tmp_path, human=lambda prefix: next(typed, None))
    check_conversation(lines)
    (human,) = [m for m in lines if m.get("source") == "human"]
    assert human.keys() == set(schema.MessageLine.__required_keys__) | {"tokens"}


def test_the_real_server_adds_only_declared_keys(small_config, tmp_path):
    """llama-server reports its settings: generation_settings on each role's first turn."""
    cfg = load_config(small_config(total_tokens=120))
    a = open_role(cfg.assistant, cfg.assistant.api_urls[0], cfg)
    u = open_role(cfg.user, cfg.user.api_urls[0], cfg)
    log = ConversationLog(tmp_path, "real")
    Dialogue(cfg, a, u, log).talk()
    lines = [json.loads(line) for line in log.jsonl_path.read_text(encoding="utf-8").splitlines()]
    check_conversation(lines)
    assert lines[0]["assistant"]["server_defaults"]
    firsts = [m for m in lines if m.get("applied_settings")]
    assert [m["role"] for m in firsts] == ["assistant", "user"]
    assert all(m.keys() == all_keys(schema.MessageLine) for m in firsts)


def test_analysis_fits_the_schema(tmp_path):
    folder = tmp_path / "run_a"
    shutil.copytree(RUN_A, folder)
    analysis = analyze_folder(folder, workers=1)
    fits(analysis, schema.AnalysisFile)
    fits(analysis["summary"], schema.AnalysisSummary)
    fits(analysis["summary"]["histograms"], schema.Histograms)
    assert len(analysis["conversations"]) == 3
    for entry in analysis["conversations"]:
        fits(entry, schema.ConversationAnalysis)
        fits(entry["metrics"], schema.TextMetrics)
        fits(entry["settings"], schema.Settings)
        fits(entry["settings"]["assistant"], schema.RoleSettings)
        fits(entry["settings"]["user"], schema.RoleSettings)
    structured = [e for e in analysis["conversations"] if e["format"] == "jsonl"]
    assert structured and structured[0].keys() == all_keys(schema.ConversationAnalysis) - {"judge"}
