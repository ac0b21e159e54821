"""parrot.py conversations on the other engines: the real vLLM and the koboldcpp replay."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

PARROT = [sys.executable, str(ROOT / "parrot.py")]


def converse(tmp_path, timeout: float = 900, **overrides) -> tuple[subprocess.CompletedProcess, list[dict]]:
    raw = json.loads((ROOT / "config.json").read_text())
    raw.update(overrides)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "out"
    r = subprocess.run(PARROT + [str(cfg), "--out", str(out), "--name", "conv"],
                       capture_output=True, text=True, timeout=timeout)
    records = [json.loads(line) for line in (out / "conv.jsonl").open()] if (out / "conv.jsonl").exists() else []
    if r.returncode == 0:
        assert r.stdout == (out / "conv.log").read_text()
    return r, records


def model_turns(records: list[dict]) -> list[dict]:
    return [m for m in records if m["type"] == "message" and m.get("source") == "model"]


def test_a_conversation_on_the_real_vllm(tmp_path, vllm_server):
    r, records = converse(tmp_path, api_url=vllm_server, total_tokens=400, turn_max_tokens=48, seed=42)
    assert r.returncode == 0, r.stderr
    header, footer, turns = records[0], records[-1], model_turns(records)
    assert header["assistant"]["engine"] == "openai" and header["user"]["engine"] == "openai"
    assert footer["complete"] and footer["end_reason"] == "total_tokens"
    assert len(turns) >= 4 and all(isinstance(t["tokens"], int) and t["tokens"] > 0 for t in turns)
    # the running total is the sum of the server's counts, turn by turn
    for before, after in zip(turns, turns[1:]):
        assert after["tokens_before"] >= before["tokens_before"] + before["tokens"]
    assert footer["total_tokens"] == turns[-1]["tokens_before"] + turns[-1]["tokens"]
    for t in turns:
        assert t["stop"] in ("word", "eos", "limit")
        assert "\n" not in t["generated"]
        if t["stop"] == "limit":
            assert t["tokens"] == 48
        else:
            assert t["tokens"] < 48 or t["stop"] == "word"
        assert t["ttft_ms"] < t["wall_ms"]
    print(json.dumps([{k: t[k] for k in ("index", "role", "tokens", "stop", "ttft_ms", "wall_ms")} for t in turns]))


def test_a_conversation_on_the_koboldcpp_replay_streams_turn_by_turn(tmp_path, kobold_tokenizer):
    from replay import KoboldReplay
    script = ["stream-a-newline-stop", "stream-b-eos", "stream-c-limit16", "stream-d-stop-in-multichar-token"]
    with KoboldReplay(script=script, tokenizer=kobold_tokenizer) as replay:
        r, records = converse(tmp_path, api_url=replay.url, total_tokens=160, turn_max_tokens=48, seed=42,
                              timeout=300)
        served = list(replay.served)
        unmatched = list(replay.unmatched)
    assert r.returncode == 0, r.stderr
    assert not unmatched
    header, footer, turns = records[0], records[-1], model_turns(records)
    assert header["assistant"]["engine"] == header["user"]["engine"] == "koboldcpp"
    assert footer["complete"] and len(turns) == len(served) >= 5
    expected = {"stream-a-newline-stop": ("word", 33), "stream-b-eos": ("eos", 28),
                "stream-c-limit16": ("limit", 16), "stream-d-stop-in-multichar-token": ("word", 7)}
    for turn, name in zip(turns, served):
        assert (turn["stop"], turn["tokens"]) == expected[name], (name, turn)
        assert "\n" not in turn["generated"]
        if name in ("stream-a-newline-stop", "stream-b-eos"):
            # many events: the first arrives well before the turn ends
            assert turn["ttft_ms"] < 0.75 * turn["wall_ms"], turn
    print(json.dumps([{k: t[k] for k in ("index", "role", "tokens", "stop", "ttft_ms", "wall_ms")} for t in turns]))
