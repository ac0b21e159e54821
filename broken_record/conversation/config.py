"""Load and validate a parrot config file into typed objects.

Every problem in a file is collected and reported together, each naming the
key, so one run of `parrot.py` shows everything to fix:

    config.json: user_memory: must be at least 1 (got 0)
    config.json: unknown key 'temprature'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from broken_record.errors import ConfigError
from broken_record.inference import ADAPTERS, templates
from broken_record.inference.samplers import SAMPLERS, canonical

ENGINES = ("auto", *ADAPTERS)  # "llama-server", "openai", "koboldcpp"
ROLES = ("system", "user", "assistant")
ROPE_SCALING = ("yarn",)
SEED_RANGE = 2 ** 31  # seeds below it mean the same on every engine (llama-server reads -1 as "random")  # llama-server caps at the trained context unless it is YaRN-stretched
# Sampler settings, their types and aliases: inference/samplers.py (check_sampler).


def conversation_seed(base: int, number: int) -> int:
    """The seed of a batch's conversation ``number`` (0, 1, ...) from a role's base seed.

    ``conversation_seed(42, 0)`` -> 42, ``conversation_seed(42, 2)`` -> 44: a batch with
    a fixed seed is reproducible and its conversations differ; conversation 2 is
    reproduced alone by ``parrot.py`` with seed 44.
    """
    return (base + number) % SEED_RANGE


def pick_seed() -> int:
    """A random seed for a run whose config fixes none: used, and recorded, so it can be repeated."""
    import secrets
    return secrets.randbelow(SEED_RANGE)


def _num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class RoleConfig:
    """What one role (assistant or user) talks to and how it samples."""

    name: str
    api_urls: list[str]            # empty: the embedded llama-server
    engine: str
    template: str | None           # "server", a built-in name, or a file path
    sampler: dict[str, Any]
    prefix: str
    model: str | None              # GGUF path for the embedded server
    api_model: str | None          # model id for OpenAI-compatible servers
    context: int                   # per-slot context of the embedded server

    @property
    def seed(self) -> int | None:
        """The role's configured seed (``sampler.seed``, or the top-level ``seed``); None: none fixed."""
        seed = self.sampler.get("seed")
        return seed if isinstance(seed, int) and seed >= 0 else None


@dataclass
class Config:
    path: str
    raw: dict[str, Any]
    conversation: list[dict[str, str]]
    agent_prefix: str
    user_prefix: str
    user_system: str
    user_memory: int
    total_tokens: int
    turn_max_tokens: int
    initial_tokens: int
    assistant: RoleConfig
    user: RoleConfig
    stop: list[str]
    seed: int | None
    retries: int
    retry_backoff: float
    timeout: float
    startup_timeout: float
    threads: int | None
    rope_scaling: str | None = None  # embedded servers: stretch a too-short trained context


# key -> (accepted types, default). None in types means null is accepted.
KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "conversation": ((list,), None),
    "agent_prefix": ((str,), None),
    "total_tokens": ((int,), 2048),
    "turn_max_tokens": ((int,), 256),
    "initial_tokens": ((int,), 0),
    "sampler": ((dict,), {}),
    "user_sampler": ((dict, type(None)), None),
    "api_url": ((str, list, type(None)), None),
    "user_api_url": ((str, list, type(None)), None),
    "tokenizer": ((str, type(None)), None),
    "user_tokenizer": ((str, type(None)), None),
    "template": ((str, type(None)), None),
    "user_template": ((str, type(None)), None),
    "user_prefix": ((str,), ""),
    "user_system": ((str,), ""),
    "user_memory": ((int,), 6),
    "engine": ((str,), "auto"),
    "user_engine": ((str, type(None)), None),
    "model": ((str, type(None)), None),
    "user_model": ((str, type(None)), None),
    "api_model": ((str, type(None)), None),
    "user_api_model": ((str, type(None)), None),
    "context": ((int, type(None)), None),
    "user_context": ((int,), 2048),
    "stop": ((list,), ["\n"]),
    "seed": ((int, type(None)), None),
    "retries": ((int,), 3),
    "retry_backoff": ((int, float), 1.0),
    "timeout": ((int, float), 300),
    "startup_timeout": ((int, float), 120),
    "threads": ((int, type(None)), None),
    "rope_scaling": ((str, type(None)), None),
}
REQUIRED = ("conversation", "agent_prefix")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list",
               dict: "an object", bool: "true or false", type(None): "null"}


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _describe(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def check_sampler(key: str, sampler: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Canonical names, checked types (inference/samplers.py): {"rep_pen": 1.1} -> {"repeat_penalty": 1.1}."""
    out: dict[str, Any] = {}
    for name, value in sampler.items():
        canon = canonical(name)
        if canon not in SAMPLERS:
            problems.append(f"{key}.{name}: unknown sampler setting (known: "
                            f"{', '.join(sorted(SAMPLERS))})")
            continue
        types = SAMPLERS[canon].types
        if not _type_ok(value, types):
            problems.append(f"{key}.{name}: must be {_describe(types)} (got {json.dumps(value)})")
            continue
        out[canon] = value
    for name in ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty"):
        v = out.get(name)
        if _num(v) and v < 0:
            problems.append(f"{key}.{name}: must not be negative (got {v})")
    for name in ("top_p", "min_p", "typical_p", "xtc_probability"):
        v = out.get(name)
        if _num(v) and v > 1:
            problems.append(f"{key}.{name}: must be between 0 and 1 (got {v})")
    return out


def _urls(key: str, value: Any, problems: list[str]) -> list[str]:
    if value is None:
        return []
    urls = [value] if isinstance(value, str) else value
    good = []
    for u in urls:
        if not isinstance(u, str) or not u.startswith(("http://", "https://")):
            problems.append(f"{key}: {json.dumps(u)} is not an http:// or https:// URL")
        else:
            good.append(u.rstrip("/"))
    if isinstance(value, list) and not value:
        problems.append(f"{key}: the list of servers is empty (use null for the embedded server)")
    return good


def template_from_tokenizer(name: str | None) -> str | None:
    """The original configs named a Hugging Face tokenizer; map it to a template.

    "HuggingFaceTB/SmolLM2-135M-Instruct" -> "chatml"; unknown names -> "server".
    """
    if not name:
        return None
    low = name.lower()
    if Path(name).suffix in (".jinja", ".j2", ".txt") or low in BUILTIN_NAMES:
        return name
    for needle, template in (("llama-3", "llama3"), ("llama3", "llama3"), ("gemma", "gemma"),
                             ("mistral", "mistral"), ("mixtral", "mistral"),
                             ("alpaca", "alpaca"), ("smollm", "chatml"), ("qwen", "chatml"),
                             ("chatml", "chatml")):
        if needle in low:
            return template
    return "server"


BUILTIN_NAMES = ("server", *templates.BUILTIN)  # "server", "chatml", "llama3", ...


def decode_utf8(data: bytes, path: str | Path, fix: str) -> str:
    """``data`` as UTF-8 text, a leading byte-order mark (Notepad's) dropped.

    Any other encoding is a ``ConfigError`` naming the file, the first bad
    byte and its line: ``config.json: not UTF-8 text (byte 0xe9 at line 3): save it as UTF-8``.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(path, [f"not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}): {fix}"])


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, ["file not found (give the path of a config JSON file)"])
    except IsADirectoryError:
        raise ConfigError(path, ["is a folder, not a config file (give the path of a config JSON file)"])
    except OSError as err:
        raise ConfigError(path, [f"cannot read: {err.strerror}"])
    text = decode_utf8(data, path, "save it as UTF-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(path, [f"not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"])
    return parse_config(raw, path)


def parse_config(raw: Any, path: str | Path = "<config>") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(path, ["the top level must be a JSON object"])
    problems: list[str] = []
    for key in raw:
        if key not in KEYS:
            problems.append(f"unknown key '{key}'")
    for key in REQUIRED:
        if key not in raw:
            problems.append(f"{key}: missing (required)")
    v: dict[str, Any] = {}
    for key, (types, default) in KEYS.items():
        if key not in raw:
            v[key] = default
            continue
        if not _type_ok(raw[key], types):
            problems.append(f"{key}: must be {_describe(types)} (got {json.dumps(raw[key])[:60]})")
            v[key] = default
        else:
            v[key] = raw[key]

    conversation = []
    for i, msg in enumerate(v["conversation"] or []):
        if not isinstance(msg, dict) or set(msg) - {"role", "content"} or \
                not isinstance(msg.get("content"), str) or msg.get("role") not in ROLES:
            problems.append(f"conversation[{i}]: must be {{\"role\": system|user|assistant, "
                            f"\"content\": string}}")
        else:
            conversation.append({"role": msg["role"], "content": msg["content"]})
    if "conversation" in raw and isinstance(raw["conversation"], list) and not raw["conversation"]:
        problems.append("conversation: must hold at least one message")

    for key in ("total_tokens", "turn_max_tokens", "user_memory", "retries", "user_context",
                "context", "threads"):
        val = v[key]
        low = 0 if key == "retries" else 1
        if isinstance(val, int) and val < low:
            problems.append(f"{key}: must be at least {low} (got {val})")
    if v["initial_tokens"] < 0:
        problems.append(f"initial_tokens: must not be negative (got {v['initial_tokens']})")
    if v["total_tokens"] >= 1 and v["turn_max_tokens"] > v["total_tokens"]:   # else said above
        problems.append(f"turn_max_tokens: {v['turn_max_tokens']} is larger than "
                        f"total_tokens ({v['total_tokens']})")
    for key in ("timeout", "startup_timeout"):
        if v[key] <= 0:
            problems.append(f"{key}: must be positive (got {v[key]})")
    if v["retry_backoff"] < 0:
        problems.append(f"retry_backoff: must not be negative (got {v['retry_backoff']})")
    if v["rope_scaling"] is not None and v["rope_scaling"] not in ROPE_SCALING:
        problems.append(f"rope_scaling: must be null or one of {', '.join(ROPE_SCALING)} "
                        f"(got {json.dumps(v['rope_scaling'])})")
    for key in ("engine", "user_engine"):
        if v[key] is not None and v[key] not in ENGINES:
            problems.append(f"{key}: must be one of {', '.join(ENGINES)} (got {json.dumps(v[key])})")
    if not all(isinstance(s, str) and s for s in v["stop"]):
        problems.append("stop: must be a list of non-empty strings")
    for key in ("model", "user_model"):
        if v[key] is not None and not Path(v[key]).expanduser().is_file():
            problems.append(f"{key}: GGUF file not found: {v[key]}")
    for key in ("template", "user_template", "tokenizer", "user_tokenizer"):
        t = v[key]
        if t and key.endswith("template") and t not in BUILTIN_NAMES and not Path(t).is_file():
            problems.append(f"{key}: {json.dumps(t)} is neither a built-in template "
                            f"({', '.join(BUILTIN_NAMES)}) nor an existing file")

    sampler = check_sampler("sampler", v["sampler"], problems)
    user_sampler = (check_sampler("user_sampler", v["user_sampler"], problems)
                    if v["user_sampler"] is not None else dict(sampler))
    if v["seed"] is not None:
        sampler.setdefault("seed", v["seed"])
        user_sampler.setdefault("seed", v["seed"])
    api_urls = _urls("api_url", v["api_url"], problems)
    user_urls = _urls("user_api_url", v["user_api_url"], problems)

    if problems:
        raise ConfigError(path, problems)

    context = v["context"] or max(2048, v["total_tokens"] + v["initial_tokens"] + 2 * v["turn_max_tokens"] + 512)
    assistant = RoleConfig(
        name="assistant", api_urls=api_urls, engine=v["engine"],
        template=v["template"] or template_from_tokenizer(v["tokenizer"]),
        sampler=sampler, prefix=v["agent_prefix"],
        model=v["model"], api_model=v["api_model"], context=context)
    # the user shares the assistant's servers when user_api_url is unset or names the same ones:
    # then it takes the assistant's engine and template unless its own keys say otherwise
    shared = not user_urls or [u.rstrip("/") for u in user_urls] == [u.rstrip("/") for u in api_urls]
    user = RoleConfig(
        name="user", api_urls=user_urls or list(api_urls),
        engine=v["user_engine"] or (v["engine"] if shared else "auto"),
        template=v["user_template"] or template_from_tokenizer(v["user_tokenizer"])
        or (assistant.template if shared else None),
        sampler=user_sampler, prefix=v["user_prefix"],
        model=v["user_model"] or v["model"], api_model=v["user_api_model"] or v["api_model"],
        context=v["user_context"])
    return Config(
        path=str(path), raw=raw, conversation=conversation, agent_prefix=v["agent_prefix"],
        user_prefix=v["user_prefix"], user_system=v["user_system"], user_memory=v["user_memory"],
        total_tokens=v["total_tokens"], turn_max_tokens=v["turn_max_tokens"],
        initial_tokens=v["initial_tokens"], assistant=assistant, user=user,
        stop=list(v["stop"]), seed=v["seed"], retries=v["retries"],
        retry_backoff=float(v["retry_backoff"]), timeout=float(v["timeout"]),
        startup_timeout=float(v["startup_timeout"]), threads=v["threads"],
        rope_scaling=v["rope_scaling"])
