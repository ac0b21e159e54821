"""Config validation: every problem reported at once, with the file and key."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from broken_record.conversation.config import load_config, parse_config, template_from_tokenizer
from broken_record.errors import ConfigError

BASE = json.loads((ROOT / "config.json").read_text())


def problems(raw):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "c.json")
    return err.value.problems


def test_shipped_config_loads_on_the_embedded_default():
    cfg = load_config(ROOT / "config.json")
    assert cfg.assistant.api_urls == [] and cfg.user.api_urls == []
    assert cfg.agent_prefix == "Juno:" and cfg.user_prefix == "Theo:"
    roles = [m["role"] for m in cfg.conversation]
    assert roles == ["system", "assistant", "user"]
    assert cfg.user.sampler == cfg.assistant.sampler       # user_sampler defaults to sampler
    assert cfg.assistant.template == "chatml"              # from the original `tokenizer` key


def test_every_problem_is_reported_together():
    raw = {**BASE, "user_memory": 0, "temprature": 1, "total_tokens": "many",
           "turn_max_tokens": 300, "api_url": "localhost:8080", "engine": "ollama",
           "sampler": {"temperature": -1, "top_q": 2}}
    del raw["agent_prefix"]
    found = problems(raw)
    joined = "\n".join(found)
    for expected in ("unknown key 'temprature'", "agent_prefix: missing", "user_memory: must be at least 1",
                     "total_tokens: must be an integer", "api_url: \"localhost:8080\" is not an http",
                     "engine: must be one of", "sampler.temperature: must not be negative",
                     "sampler.top_q: unknown sampler setting"):
        assert expected in joined, expected
    assert len(found) == 8


def test_turn_limit_larger_than_total():
    assert problems({**BASE, "turn_max_tokens": 500, "total_tokens": 100}) == [
        "turn_max_tokens: 500 is larger than total_tokens (100)"]


def test_a_negative_total_is_one_problem_not_two():
    assert problems({**BASE, "total_tokens": -5}) == ["total_tokens: must be at least 1 (got -5)"]


def test_bad_conversation_message():
    found = problems({**BASE, "conversation": [{"role": "narrator", "content": "x"}, "hi"]})
    assert found == ['conversation[0]: must be {"role": system|user|assistant, "content": string}',
                     'conversation[1]: must be {"role": system|user|assistant, "content": string}']


def test_missing_model_file():
    assert problems({**BASE, "model": "/nowhere/m.gguf"}) == ["model: GGUF file not found: /nowhere/m.gguf"]


def test_sampler_aliases_and_user_sampler():
    cfg = parse_config({**BASE, "sampler": {"rep_pen": 1.2, "typical": 0.9},
                        "user_sampler": {"repetition_penalty": 1.0}, "seed": 5})
    assert cfg.assistant.sampler == {"repeat_penalty": 1.2, "typical_p": 0.9, "seed": 5}
    assert cfg.user.sampler == {"repeat_penalty": 1.0, "seed": 5}


def test_server_lists_and_user_servers():
    cfg = parse_config({**BASE, "api_url": ["http://a:1", "http://b:2/"],
                        "user_api_url": "http://c:3"})
    assert cfg.assistant.api_urls == ["http://a:1", "http://b:2"]
    assert cfg.user.api_urls == ["http://c:3"]


def test_a_user_on_the_assistants_server_takes_its_engine_and_template():
    # user_api_url set to the assistant's own URL is sharing, as when it is unset
    for user_url in (None, "http://a:1/", ["http://a:1"]):
        cfg = parse_config({**BASE, "api_url": "http://a:1", "user_api_url": user_url,
                            "engine": "koboldcpp", "tokenizer": "HuggingFaceTB/SmolLM2-135M-Instruct"})
        assert (cfg.user.engine, cfg.user.template) == ("koboldcpp", "chatml"), user_url
    other = parse_config({**BASE, "api_url": "http://a:1", "user_api_url": "http://c:3",
                          "engine": "koboldcpp", "tokenizer": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    assert (other.user.engine, other.user.template) == ("auto", None)
    assert parse_config({**BASE, "api_url": "http://a:1", "user_api_url": "http://c:3", "user_engine": "openai",
                         "user_tokenizer": "google/gemma-2-2b-it"}).user.engine == "openai"


@pytest.mark.parametrize("name, template", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "chatml"), ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
    ("google/gemma-2-2b-it", "gemma"), ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
    ("some/unknown-model", "server"), (None, None)])
def test_tokenizer_key_selects_a_template(name, template):
    assert template_from_tokenizer(name) == template


@pytest.mark.parametrize("content, expected", [
    ("{", "not valid JSON at line 1"),
    ("[]", "the top level must be a JSON object"),
    ('{"conversation": [], "agent_prefix": "A:", "user_memory": -2}', "user_memory: must be at least 1"),
])
def test_cli_reports_bad_config_in_one_line_each_exit_2(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    r = subprocess.run([sys.executable, str(ROOT / "parrot.py"), str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert all(line.startswith(f"parrot.py: {path}: ") or line.startswith(f"{path}: ")
               for line in r.stderr.strip().splitlines())


def test_cli_missing_config_file(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "parrot.py"), str(tmp_path / "none.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "none.json: file not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_rope_scaling_is_yarn_linear_or_null():
    assert parse_config({**BASE, "rope_scaling": "yarn"}, "c.json").rope_scaling == "yarn"
    assert parse_config(BASE, "c.json").rope_scaling is None
    assert problems({**BASE, "rope_scaling": "ntk"}) == [
        'rope_scaling: must be null or one of yarn (got "ntk")']


def test_a_byte_order_mark_is_accepted(tmp_path):
    # Notepad saves UTF-8 with a BOM by default
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (ROOT / "config.json").read_bytes())
    assert load_config(path).agent_prefix == "Juno:"


@pytest.mark.parametrize("encode", ["latin-1", "utf-16"])
def test_a_config_in_another_encoding_is_one_line_naming_the_file(tmp_path, encode):
    path = tmp_path / "other.json"
    text = (ROOT / "config.json").read_text().replace("Juno", "Jün")
    path.write_bytes(text.encode(encode))
    r = subprocess.run([sys.executable, str(ROOT / "parrot.py"), str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"parrot.py: {path}: not UTF-8 text (byte 0x"), r.stderr
    assert r.stderr.strip().endswith("save it as UTF-8") and len(r.stderr.strip().splitlines()) == 1


def test_a_template_file_in_another_encoding_is_one_line(tmp_path):
    from broken_record.errors import ParrotError
    from broken_record.inference import templates
    path = tmp_path / "t.jinja"
    path.write_bytes("{{ 'é' }}".encode("latin-1"))
    with pytest.raises(ParrotError, match=r"t.jinja: not UTF-8 text \(byte 0xe9 at offset 4\): save it as UTF-8"):
        templates.load(str(path))
    path.write_bytes(b"\xef\xbb\xbf{{ 'x' }}")
    assert templates.load(str(path)).source == "{{ 'x' }}"
