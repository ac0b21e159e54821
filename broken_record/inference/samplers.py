"""Every sampler setting parrot knows, in one table: its JSON types and each engine's name for it.

The canonical names are llama-server's. A config's ``sampler`` and
``user_sampler`` are checked against the table (``conversation/config.py``),
and each engine adapter sends a setting under its own name from it
(``Engine.translate``). Take the row

    canonical name      types    llama-server  openai                vllm                  koboldcpp
    "repeat_penalty"    NUMBER   "="           "repetition_penalty"  "repetition_penalty"  "rep_pen"

A config may write ``"repeat_penalty": 1.1``, or the alias ``"rep_pen": 1.1``
(``ALIASES``), which loads as ``{"repeat_penalty": 1.1}``; it must be a
number. The llama-server adapter then sends ``"repeat_penalty": 1.1``, the
OpenAI-compatible one ``"repetition_penalty": 1.1`` and the koboldcpp one
``"rep_pen": 1.1``:

    spellings("koboldcpp")["repeat_penalty"] == "rep_pen"

``"="`` in a column: the canonical name. None: that server cannot honour the
setting; it is not sent, and the run says so (``Role.warnings``). A dotted
name nests: vLLM's ``"structured_outputs.regex"`` is sent as
``{"structured_outputs": {"regex": ...}}``. The OpenAI-compatible adapter
finds out which server is behind ``/v1`` and takes that server's dialect
(``OpenAICompatible.probe``: llama-server, vLLM, koboldcpp; any other gets
the "openai" column, aphrodite-engine's names). docs/ENGINES.md has each
engine's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

ENGINES = ("llama-server", "openai", "koboldcpp")   # the adapters (wire formats)
# The dialects sampler names come in: an OpenAI-compatible `/v1` is not one
# dialect. "openai" is aphrodite-engine's (and any unidentified server's),
# "vllm" vLLM's, "koboldcpp-v1" koboldcpp's `/v1` (its native names, but it
# reads `seed` and `mirostat_mode` there: DIALECT_OVERRIDES); llama-server's
# `/v1` takes its native names.
DIALECTS = ("llama-server", "openai", "vllm", "koboldcpp", "koboldcpp-v1")

Types = tuple[type, ...]
NUMBER: Types = (int, float)
INT: Types = (int,)
BOOL: Types = (bool,)
STR: Types = (str,)
LIST: Types = (list,)
OBJECT: Types = (dict,)

SAME = "="
# vLLM 0.32 takes constrained output only as `structured_outputs: {regex|json|grammar}`
# (its old guided_* fields are accepted and silently ignored): a dotted name nests.
SO = "structured_outputs."

Row = tuple[str, Types, str | None, str | None, str | None, str | None]
_ROWS: tuple[Row, ...] = (
    # canonical name         types        llama-server    openai                vllm                   koboldcpp
    ("temperature",           NUMBER,      SAME,           SAME,                 SAME,                  SAME),
    ("top_k",                 INT,         SAME,           SAME,                 SAME,                  SAME),
    ("top_p",                 NUMBER,      SAME,           SAME,                 SAME,                  SAME),
    ("min_p",                 NUMBER,      SAME,           SAME,                 SAME,                  SAME),
    ("typical_p",             NUMBER,      SAME,           SAME,                 None,                  "typical"),
    ("repeat_penalty",        NUMBER,      SAME,           "repetition_penalty", "repetition_penalty",  "rep_pen"),
    ("repeat_last_n",         INT,         SAME,           None,                 None,                  "rep_pen_range"),
    ("presence_penalty",      NUMBER,      SAME,           SAME,                 SAME,                  SAME),
    ("frequency_penalty",     NUMBER,      SAME,           SAME,                 SAME,                  None),
    ("dry_multiplier",        NUMBER,      SAME,           SAME,                 None,                  SAME),
    ("dry_base",              NUMBER,      SAME,           SAME,                 None,                  SAME),
    ("dry_allowed_length",    INT,         SAME,           SAME,                 None,                  SAME),
    ("dry_penalty_last_n",    INT,         SAME,           "dry_range",          None,                  SAME),
    ("dry_sequence_breakers", LIST,        SAME,           SAME,                 None,                  SAME),
    ("xtc_probability",       NUMBER,      SAME,           SAME,                 None,                  SAME),
    ("xtc_threshold",         NUMBER,      SAME,           SAME,                 None,                  SAME),
    ("mirostat",              INT,         SAME,           None,                 None,                  SAME),
    ("mirostat_tau",          NUMBER,      SAME,           None,                 None,                  SAME),
    ("mirostat_eta",          NUMBER,      SAME,           None,                 None,                  SAME),
    ("top_a",                 NUMBER,      None,           SAME,                 None,                  SAME),
    ("tfs",                   NUMBER,      None,           SAME,                 None,                  SAME),
    ("seed",                  INT,         SAME,           SAME,                 SAME,                  "sampler_seed"),
    ("ignore_eos",            BOOL,        SAME,           SAME,                 SAME,                  "ban_eos_token"),
    ("samplers",              LIST,        SAME,           None,                 None,                  None),
    ("n_probs",               INT,         SAME,           "logprobs",           "logprobs",            None),
    # llama-server: reuse cached chunks of at least this many tokens by KV shifting
    ("n_cache_reuse",         INT,         SAME,           None,                 None,                  None),
    # constrained output: llama-server's own names and aphrodite's guided_* ones
    ("grammar",               STR,         SAME,           "guided_grammar",     SO + "grammar",        SAME),
    ("json_schema",           OBJECT,      SAME,           "guided_json",        SO + "json",           None),
    ("guided_regex",          STR,         None,           SAME,                 SO + "regex",          None),
    ("guided_grammar",        STR,         "grammar",      SAME,                 SO + "grammar",        "grammar"),
    ("guided_json",           OBJECT,      "json_schema",  SAME,                 SO + "json",           None),
    ("logit_bias",            (dict, list), SAME,          SAME,                 SAME,                  SAME),
)
# koboldcpp's /v1/completions reads its native names, except that it sets the
# seed from `seed` and mirostat from `mirostat_mode` (overwriting the native ones).
DIALECT_OVERRIDES: Mapping[str, Mapping[str, str | None]] = MappingProxyType({
    "koboldcpp-v1": MappingProxyType({"seed": "seed", "mirostat": "mirostat_mode"}),
})
_COLUMNS = ("llama-server", "openai", "vllm", "koboldcpp")

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


def _sampler(row: Row) -> Sampler:
    name, types, *columns = row
    names = {dialect: name if spelled == SAME else spelled for dialect, spelled in zip(_COLUMNS, columns)}
    for dialect, overrides in DIALECT_OVERRIDES.items():
        base = names["koboldcpp"] if dialect.startswith("koboldcpp") else None
        names[dialect] = overrides.get(name, base)
    return Sampler(name, types, MappingProxyType(names))


SAMPLERS: Mapping[str, Sampler] = MappingProxyType({row[0]: _sampler(row) for row in _ROWS})


def canonical(name: str) -> str:
    """The canonical name for a config's name: "rep_pen" -> "repeat_penalty"; others as given."""
    return ALIASES.get(name, name)


def spellings(dialect: str) -> Mapping[str, str | None]:
    """Canonical name -> ``dialect``'s name for it, None where it has none (a read-only view)."""
    if dialect not in DIALECTS:
        raise ValueError(f"no sampler names for {dialect!r} (known: {', '.join(DIALECTS)})")
    return MappingProxyType({s.name: s.names[dialect] for s in SAMPLERS.values()})
