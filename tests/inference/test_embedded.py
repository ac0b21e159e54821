"""The embedded llama-server launcher: loopback only, no collisions, no orphans."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from conftest import ROOT, pids_of_llama_servers, sigint_default

from broken_record.errors import ServerError
from broken_record.inference.embedded import EmbeddedServer


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port` (IPv4 and IPv6), from /proc."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


def test_binds_loopback_only(llama_server):
    assert listening_addresses(llama_server.port) == {"0100007F"}   # 127.0.0.1
    assert requests.get(llama_server.url + "/health").status_code == 200


def test_two_launches_side_by_side_do_not_collide():
    with EmbeddedServer(ctx=1024, name="a") as a, EmbeddedServer(ctx=512, name="b") as b:
        assert a.port != b.port
        na = requests.get(a.url + "/props").json()["default_generation_settings"]["n_ctx"]
        nb = requests.get(b.url + "/props").json()["default_generation_settings"]["n_ctx"]
        assert (na, nb) == (1024, 512)
        pids = {a.proc.pid, b.proc.pid}
    time.sleep(0.2)
    assert not (pids & pids_of_llama_servers())


def test_slots_split_the_context():
    with EmbeddedServer(ctx=1024, slots=2, name="slots") as s:
        props = requests.get(s.url + "/props").json()
        assert props["total_slots"] == 2
        assert props["default_generation_settings"]["n_ctx"] == 1024


def test_missing_model_is_one_clear_line(tmp_path):
    with pytest.raises(ServerError, match=r"model file not found: .*nope\.gguf"):
        EmbeddedServer(model=str(tmp_path / "nope.gguf")).start()


def test_port_in_use_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            EmbeddedServer(port=port).start()


def test_server_that_fails_to_start_shows_its_log(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF this is not a model" * 10)
    before = pids_of_llama_servers()
    with pytest.raises(ServerError) as err:
        EmbeddedServer(model=str(bad), name="bad").start()
    msg = str(err.value)
    assert msg.startswith("bad llama-server exited with code")
    assert "last log lines" in msg
    assert pids_of_llama_servers() <= before


SCRIPT = """
import time
from broken_record.inference.embedded import EmbeddedServer, install_signal_handlers
install_signal_handlers()
with EmbeddedServer(ctx=512, name="child") as s:
    print(s.proc.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphan_when_the_program_is_stopped(sig):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(root=str(ROOT))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    server_pid = int(proc.stdout.readline())
    assert server_pid in pids_of_llama_servers()
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while server_pid in pids_of_llama_servers() and time.time() < deadline:
        time.sleep(0.1)
    assert server_pid not in pids_of_llama_servers()


def test_a_context_beyond_the_trained_one_is_capped_and_said():
    # The bundled SmolLM2-135M was trained on 8192 tokens; llama-server caps a slot there.
    with EmbeddedServer(ctx=10000, name="capped") as s:
        assert s.slot_context() == 8192
        assert len(s.notes) == 1
        assert "trained on 8192 tokens" in s.notes[0] and "not the 10000 asked for" in s.notes[0]
        assert '"rope_scaling": "yarn"' in s.notes[0]
        assert "--rope-scaling" not in s.command()


def test_rope_scaling_stretches_a_short_trained_context():
    with EmbeddedServer(ctx=17408, name="stretched", rope_scaling="yarn") as s:
        assert s.slot_context() == 17408
        cmd = s.command()
        assert cmd[cmd.index("--rope-scaling") + 1] == "yarn" and cmd[cmd.index("--rope-scale") + 1] == "3"
        assert cmd[cmd.index("--yarn-orig-ctx") + 1] == "8192"
        assert s.notes == ["stretched llama-server: context stretched 3x by YaRN RoPE scaling "
                           "(trained on 8192 tokens; now 17408 per conversation)"]
        # it still talks
        r = requests.post(s.url + "/completion", json={"prompt": "Hello", "n_predict": 4}, timeout=60).json()
        assert r["tokens_predicted"] >= 1


def test_a_context_the_model_holds_is_left_alone():
    with EmbeddedServer(ctx=4096, name="fits", rope_scaling="yarn") as s:
        assert s.slot_context() == 4096 and s.notes == [] and "--rope-scaling" not in s.command()
