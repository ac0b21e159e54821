"""Engine adapters behind one streaming interface, and detection from the server.

    engine = connect("http://127.0.0.1:8080", "auto", role="assistant")
    params, dropped = engine.translate({"temperature": 0.7, "repeat_penalty": 1.1})
    text = engine.stream(prompt, params, max_tokens=256, stop=["\\n"]).text()

base.py holds the interface and the streaming loop; llamacpp.py, openai.py and
kobold.py each supply one wire format (docs/ENGINES.md); samplers.py is the one
table of sampler settings and each engine's names for them; templates.py
renders chat templates; embedded.py starts and stops the embedded llama-server.
"""

from __future__ import annotations

from broken_record.inference.base import (
    Completion,
    ConnectionLost,
    ContextOverflow,
    Engine,
    EngineError,
    ServerInfo,
    Stream,
    unreachable,
)
from broken_record.inference.kobold import KoboldCpp
from broken_record.inference.llamacpp import LlamaServer
from broken_record.inference.openai import OpenAICompatible

ADAPTERS: dict[str, type[Engine]] = {cls.kind: cls for cls in (LlamaServer, OpenAICompatible, KoboldCpp)}

__all__ = ["ADAPTERS", "Completion", "ConnectionLost", "ContextOverflow", "Engine",
           "EngineError", "ServerInfo", "Stream", "connect", "detect"]


def detect(url: str, timeout: float = 10.0, role: str = "assistant") -> str:
    """Which engine serves `url`: koboldcpp, llama-server, or openai."""
    probe = Engine(url, timeout=timeout, role=role)
    try:
        kind = probe.native_kind(timeout)
        if kind:
            return kind
        if probe.probe_json("/v1/models", timeout) is not None:
            return "openai"
    except ConnectionLost:
        raise unreachable(role, url)
    raise EngineError(f"{role} server {url} is not llama-server, koboldcpp or OpenAI-compatible "
                      f"(no /props, /api/extra/version or /v1/models): set \"engine\" in the config")


def connect(url: str, kind: str = "auto", role: str = "assistant", timeout: float = 300.0,
            api_model: str | None = None) -> Engine:
    """An adapter for `url`, probed and ready; errors name the URL and role."""
    if kind == "auto":
        kind = detect(url, role=role)
    engine = ADAPTERS[kind](url, timeout=timeout, api_model=api_model, role=role)
    try:
        engine.probe()
    except ConnectionLost:
        raise unreachable(role, url)
    return engine
