"""CONFIG.md stays true: its examples load, and it documents every key."""

import json
import re

import pytest
from conftest import ROOT

from broken_record.conversation.config import KEYS, parse_config
from broken_record.inference.samplers import ALIASES, SAMPLERS

DOC = (ROOT / "CONFIG.md").read_text()
EXAMPLES = re.findall(r"```json\n(.*?)```", DOC, re.S)


def test_there_are_three_examples():
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize("i", range(3))
def test_example_loads(i):
    cfg = parse_config(json.loads(EXAMPLES[i]), f"CONFIG.md example {i + 1}")
    assert cfg.agent_prefix == "Juno:"


def test_koboldcpp_example_sets_the_engines():
    cfg = parse_config(json.loads(EXAMPLES[1]))
    assert cfg.assistant.engine == "llama-server" and cfg.user.engine == "koboldcpp"
    assert cfg.user.sampler["repeat_penalty"] == 1.1 and cfg.user.sampler["repeat_last_n"] == 1024


def test_openai_example_spreads_over_two_servers():
    cfg = parse_config(json.loads(EXAMPLES[2]))
    assert cfg.assistant.api_urls == ["http://gpu-a:2242", "http://gpu-b:2242"]
    assert cfg.user.api_urls == cfg.assistant.api_urls and cfg.assistant.template == "mistral"


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_key_is_documented(key):
    assert f"`{key}`" in DOC


@pytest.mark.parametrize("name", sorted(SAMPLERS) + sorted(ALIASES))
def test_every_sampler_setting_is_documented(name):
    assert f"`{name}`" in DOC
