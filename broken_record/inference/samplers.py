"""Every sampler setting parrot knows, in one table: its JSON types and each engine's name for it.

The canonical names are llama-server's. A config's ``sampler`` and
``user_sampler`` are checked against the table (``conversation/config.py``),
and each engine adapter sends a setting under its own name from it
(``Engine.translate``). Take the row

    canonical name      types    llama-server   openai                koboldcpp
    "repeat_penalty"    NUMBER   "="            "repetition_penalty"  "rep_pen"

A config may write ``"repeat_penalty": 1.1``, or the alias ``"rep_pen": 1.1``
(``ALIASES``), which loads as ``{"repeat_penalty": 1.1}``; it must be a
number. The llama-server adapter then sends ``"repeat_penalty": 1.1``, the
OpenAI-compatible one ``"repetition_penalty": 1.1`` and the koboldcpp one
``"rep_pen": 1.1``:

    spellings("koboldcpp")["repeat_penalty"] == "rep_pen"

``"="`` in an engine's column: the canonical name. None: the engine cannot
honour the setting; it is not sent, and the run says so (``Role.warnings``).
An OpenAI-compatible server that turns out to be llama-server takes the
llama-server names (``OpenAICompatible.probe``). docs/ENGINES.md has each
engine's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

ENGINES = ("llama-server", "openai", "koboldcpp")

Types = tuple[type, ...]
NUMBER: Types = (int, float)
INT: Types = (int,)
BOOL: Types = (bool,)
STR: Types = (str,)
LIST: Types = (list,)
OBJECT: Types = (dict,)

SAME = "="

_ROWS: tuple[tuple[str, Types, str | None, str | None, str | None], ...] = (
    # canonical name         types        llama-server    openai                koboldcpp
    ("temperature",           NUMBER,      SAME,           SAME,                 SAME),
    ("top_k",                 INT,         SAME,           SAME,                 SAME),
    ("top_p",                 NUMBER,      SAME,           SAME,                 SAME),
    ("min_p",                 NUMBER,      SAME,           SAME,                 SAME),
    ("typical_p",             NUMBER,      SAME,           SAME,                 "typical"),
    ("repeat_penalty",        NUMBER,      SAME,           "repetition_penalty", "rep_pen"),
    ("repeat_last_n",         INT,         SAME,           None,                 "rep_pen_range"),
    ("presence_penalty",      NUMBER,      SAME,           SAME,                 SAME),
    ("frequency_penalty",     NUMBER,      SAME,           SAME,                 None),
    ("dry_multiplier",        NUMBER,      SAME,           SAME,                 SAME),
    ("dry_base",              NUMBER,      SAME,           SAME,                 SAME),
    ("dry_allowed_length",    INT,         SAME,           SAME,                 SAME),
    ("dry_penalty_last_n",    INT,         SAME,           "dry_range",          SAME),
    ("dry_sequence_breakers", LIST,        SAME,           SAME,                 SAME),
    ("xtc_probability",       NUMBER,      SAME,           SAME,                 SAME),
    ("xtc_threshold",         NUMBER,      SAME,           SAME,                 SAME),
    ("mirostat",              INT,         SAME,           None,                 SAME),
    ("mirostat_tau",          NUMBER,      SAME,           None,                 SAME),
    ("mirostat_eta",          NUMBER,      SAME,           None,                 SAME),
    ("top_a",                 NUMBER,      None,           SAME,                 SAME),
    ("tfs",                   NUMBER,      None,           SAME,                 SAME),
    ("seed",                  INT,         SAME,           SAME,                 "sampler_seed"),
    ("ignore_eos",            BOOL,        SAME,           SAME,                 "ban_eos_token"),
    ("samplers",              LIST,        SAME,           None,                 None),
    ("n_probs",               INT,         SAME,           "logprobs",           None),
    # llama-server: reuse cached chunks of at least this many tokens by KV shifting
    ("n_cache_reuse",         INT,         SAME,           None,                 None),
    # constrained output: llama-server's own names and vLLM's guided_* ones
    ("grammar",               STR,         SAME,           "guided_grammar",     SAME),
    ("json_schema",           OBJECT,      SAME,           "guided_json",        None),
    ("guided_regex",          STR,         None,           SAME,                 None),
    ("guided_grammar",        STR,         "grammar",      SAME,                 "grammar"),
    ("guided_json",           OBJECT,      "json_schema",  SAME,                 None),
    ("logit_bias",            (dict, list), SAME,          SAME,                 SAME),
)

# Other engines' names, accepted in configs for the canonical ones.
ALIASES: Mapping[str, str] = MappingProxyType({
    "repetition_penalty": "repeat_penalty", "rep_pen": "repeat_penalty",
    "rep_pen_range": "repeat_last_n", "typical": "typical_p", "sampler_seed": "seed",
})


@dataclass(frozen=True)
class Sampler:
    """One row of the table: ``names[engine]`` is that engine's name, None if it has none."""

    name: str
    types: Types
    names: Mapping[str, str | None]


def _sampler(row: tuple[str, Types, str | None, str | None, str | None]) -> Sampler:
    name, types, *columns = row
    names = {engine: name if spelled == SAME else spelled for engine, spelled in zip(ENGINES, columns)}
    return Sampler(name, types, MappingProxyType(names))


SAMPLERS: Mapping[str, Sampler] = MappingProxyType({row[0]: _sampler(row) for row in _ROWS})


def canonical(name: str) -> str:
    """The canonical name for a config's name: "rep_pen" -> "repeat_penalty"; others as given."""
    return ALIASES.get(name, name)


def spellings(engine: str) -> Mapping[str, str | None]:
    """Canonical name -> ``engine``'s name for it, None where it has none (a read-only view)."""
    if engine not in ENGINES:
        raise ValueError(f"no sampler names for engine {engine!r} (known: {', '.join(ENGINES)})")
    return MappingProxyType({s.name: s.names[engine] for s in SAMPLERS.values()})
