"""Shared fixtures: one real llama-server with the bundled model for the session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broken_record.inference.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def llama_server():
    """The real llama-server, bundled SmolLM2-135M, 2 slots of 4096 tokens."""
    with EmbeddedServer(ctx=4096, slots=2, name="test") as srv:
        yield srv


@pytest.fixture
def small_config(tmp_path, llama_server):
    """A short conversation config against the session server, for both roles."""
    def make(**overrides):
        raw = json.loads((ROOT / "config.json").read_text())
        raw.update({"api_url": llama_server.url, "total_tokens": 200, "turn_max_tokens": 48,
                    "seed": 42})
        raw.update(overrides)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(raw))
        return path
    return make


def sigint_default():
    """preexec_fn for a child the test will Ctrl-C: a shell without job control
    (CI runners, `cmd &` in a script) starts it with SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
