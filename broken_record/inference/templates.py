"""Chat templates without `transformers`: render messages into one prompt string.

    render("chatml", [{"role": "user", "content": "Hi"}])
    -> "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"

A template is a built-in name, a Jinja file, or "server" (the server's own
template, e.g. llama-server's /props `chat_template`). All are rendered in a
sandboxed Jinja2 environment: a template from a server is code from outside.
The servers add the BOS token when they tokenize a prompt, so `bos_token`
renders as "" to avoid a doubled BOS.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from broken_record.errors import ParrotError

BUILTIN = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    # Gemma has no system role: the system text opens the first user turn.
    "gemma": (
        "{{ bos_token }}{% set ns = namespace(sys='') %}"
        "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = ns.sys + m.content + '\n\n' %}"
        "{% else %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
        "{{ ns.sys if m.role == 'user' else '' }}{{ m.content | trim }}<end_of_turn>\n"
        "{% if m.role == 'user' %}{% set ns.sys = '' %}{% endif %}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% set ns = namespace(sys='') %}"
        "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = ns.sys + m.content + '\n\n' %}"
        "{% elif m.role == 'user' %}[INST] {{ ns.sys }}{{ m.content | trim }} [/INST]{% set ns.sys = '' %}"
        "{% else %}{{ m.content | trim }}</s>{% endif %}{% endfor %}"
    ),
    "alpaca": (
        "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
        "{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n"
        "{% else %}### Response:\n{{ m.content }}\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}"
    ),
}


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda v, indent=None, **kw: json.dumps(v, indent=indent, ensure_ascii=False)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


_ENV = _environment()
_BUILTIN_ENV = ImmutableSandboxedEnvironment()


class ChatTemplate:
    """A compiled template: `render(messages)` -> prompt with the generation prompt."""

    def __init__(self, source: str, name: str, builtin: bool = False):
        self.name = name
        self.source = source
        env = _BUILTIN_ENV if builtin else _ENV
        try:
            self._template = env.from_string(source)
        except TemplateError as err:
            raise ParrotError(f"chat template {name}: {err}")

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token="", eos_token="", tools=None)
        except TemplateError as err:
            raise ParrotError(f"chat template {self.name} failed to render: {err}")


def builtin(name: str) -> ChatTemplate:
    return ChatTemplate(BUILTIN[name], name, builtin=True)


def load(spec: str | None, server_template: str | None = None) -> ChatTemplate:
    """A template from a config value: None/"server", a built-in name, or a file."""
    if spec in BUILTIN:
        return builtin(spec)
    if spec and spec != "server":
        path = Path(spec)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ParrotError(f"chat template file {spec}: {err.strerror}")
        try:
            return ChatTemplate(data.decode("utf-8-sig"), str(path))
        except UnicodeDecodeError as err:
            raise ParrotError(f"chat template file {spec}: not UTF-8 text (byte 0x{data[err.start]:02x} "
                              f"at offset {err.start}): save it as UTF-8")
    if server_template:
        return ChatTemplate(server_template, "server")
    # A server that does not publish its template (koboldcpp, most OpenAI-compatible
    # servers): ChatML is the most common format among small instruct models.
    return builtin("chatml")


def swap_roles(messages: list[dict]) -> list[dict]:
    """The user model's view: [{"role": "assistant", ...}] -> [{"role": "user", ...}]."""
    swap = {"assistant": "user", "user": "assistant"}
    return [{"role": swap.get(m["role"], m["role"]), "content": m["content"]} for m in messages]
