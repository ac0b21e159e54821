"""The one sampler table: the config's checks and every adapter's names come from it."""

import pytest

from broken_record.conversation.config import check_sampler
from broken_record.inference import ADAPTERS
from broken_record.inference.samplers import ALIASES, ENGINES, SAMPLERS, canonical, spellings

# Where each engine's name differs from the canonical (llama-server) one; None: not supported.
RENAMED = {
    "llama-server": {"top_a": None, "tfs": None, "guided_regex": None, "guided_grammar": "grammar",
                     "guided_json": "json_schema"},
    "openai": {"repeat_penalty": "repetition_penalty", "repeat_last_n": None,
               "dry_penalty_last_n": "dry_range", "mirostat": None, "mirostat_tau": None,
               "mirostat_eta": None, "samplers": None, "n_probs": "logprobs", "n_cache_reuse": None,
               "grammar": "guided_grammar", "json_schema": "guided_json"},
    "koboldcpp": {"typical_p": "typical", "repeat_penalty": "rep_pen", "repeat_last_n": "rep_pen_range",
                  "frequency_penalty": None, "seed": "sampler_seed", "ignore_eos": "ban_eos_token",
                  "samplers": None, "n_probs": None, "n_cache_reuse": None, "json_schema": None,
                  "guided_regex": None, "guided_grammar": "grammar", "guided_json": None},
}
SAMPLE = {int: 3, float: 0.5, bool: True, str: "root ::= \"a\"", list: ["x"], dict: {"type": "object"}}


def test_the_table_has_a_column_for_each_adapter():
    assert set(ENGINES) == set(ADAPTERS)


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_names_every_setting(engine):
    names = spellings(engine)
    assert list(names) == list(SAMPLERS)
    assert {k: v for k, v in names.items() if v != k} == RENAMED[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_each_adapter_translates_with_its_column(engine):
    adapter = ADAPTERS[engine]("http://127.0.0.1:9")
    assert dict(adapter.sampler_names) == dict(spellings(engine))
    for name, s in SAMPLERS.items():
        value = SAMPLE[s.types[-1]]
        target = spellings(engine)[name]
        assert adapter.translate({name: value}) == (({}, [name]) if target is None else ({target: value}, []))
    sampler = {name: SAMPLE[s.types[-1]] for name, s in SAMPLERS.items()}
    _, dropped = adapter.translate(sampler)
    assert dropped == [k for k in SAMPLERS if RENAMED[engine].get(k, k) is None]
    assert adapter.translate({"not_a_sampler": 1}) == ({}, ["not_a_sampler"])


def test_spellings_are_read_only_and_known_engines_only():
    with pytest.raises(TypeError):
        spellings("openai")["seed"] = "x"
    with pytest.raises(ValueError, match="known: llama-server, openai, koboldcpp"):
        spellings("ollama")


def test_config_checks_the_table_types_and_aliases():
    problems: list[str] = []
    good = {name: SAMPLE[s.types[-1]] for name, s in SAMPLERS.items()}
    assert check_sampler("sampler", good, problems) == good and problems == []
    for alias, name in ALIASES.items():
        assert canonical(alias) == name and name in SAMPLERS
        assert check_sampler("sampler", {alias: SAMPLE[SAMPLERS[name].types[-1]]}, problems) == {
            name: SAMPLE[SAMPLERS[name].types[-1]]}
    check_sampler("sampler", {"top_k": 1.5, "grammar": 3, "logit_bias": "x", "bogus": 1}, problems)
    assert problems[:3] == ["sampler.top_k: must be an integer (got 1.5)",
                            "sampler.grammar: must be a string (got 3)",
                            'sampler.logit_bias: must be an object or a list (got "x")']
    assert problems[3].startswith("sampler.bogus: unknown sampler setting (known: dry_allowed_length, ")
