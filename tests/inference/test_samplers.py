"""The one sampler table: the config's checks and every adapter's names come from it."""

import pytest

from broken_record.conversation.config import check_sampler
from broken_record.inference import ADAPTERS
from broken_record.inference.samplers import ALIASES, DIALECTS, ENGINES, SAMPLERS, canonical, spellings

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
# vLLM 0.32 honours only these; the rest it would ignore without a word (recorded)
RENAMED["vllm"] = {
    **{name: None for name in ("typical_p", "repeat_last_n", "dry_multiplier", "dry_base", "dry_allowed_length",
                               "dry_penalty_last_n", "dry_sequence_breakers", "xtc_probability", "xtc_threshold",
                               "mirostat", "mirostat_tau", "mirostat_eta", "top_a", "tfs", "samplers",
                               "n_cache_reuse")},
    "repeat_penalty": "repetition_penalty", "n_probs": "logprobs", "grammar": "structured_outputs.grammar",
    "json_schema": "structured_outputs.json", "guided_regex": "structured_outputs.regex",
    "guided_grammar": "structured_outputs.grammar", "guided_json": "structured_outputs.json"}
# koboldcpp's /v1 reads its native names, but its seed from `seed` and mirostat from `mirostat_mode`
RENAMED["koboldcpp-v1"] = {**{k: v for k, v in RENAMED["koboldcpp"].items() if k != "seed"},
                           "mirostat": "mirostat_mode"}
SAMPLE = {int: 3, float: 0.5, bool: True, str: "root ::= \"a\"", list: ["x"], dict: {"type": "object"}}


def test_the_table_has_a_column_for_each_adapter():
    assert set(ENGINES) == set(ADAPTERS)


@pytest.mark.parametrize("engine", DIALECTS)
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


def test_a_dotted_name_nests():
    adapter = ADAPTERS["openai"]("http://127.0.0.1:9")
    adapter.sampler_names = spellings("vllm")
    assert adapter.translate({"guided_regex": "[0-9]+", "temperature": 0.5, "dry_multiplier": 0.8}) == (
        {"structured_outputs": {"regex": "[0-9]+"}, "temperature": 0.5}, ["dry_multiplier"])


def test_spellings_are_read_only_and_known_engines_only():
    with pytest.raises(TypeError):
        spellings("openai")["seed"] = "x"
    with pytest.raises(ValueError, match="known: llama-server, openai, vllm, koboldcpp, koboldcpp-v1"):
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
