"""v0/: the first design, one long completion with EOS ignored, and its page.

The run tests start the real embedded llama-server through `bash v0/run.sh`
and write to a temporary folder, never over the committed sample.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
V0 = ROOT / "v0"
SAMPLE = V0 / "output" / "generation.json"


def load_generate():
    spec = importlib.util.spec_from_file_location("v0_generate", V0 / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_v0(out_dir: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LLAMA_URL", "V0_OUTPUT")}
    env.update(PYTHON=sys.executable, V0_OUTPUT=str(out_dir), **env_extra)
    return subprocess.run(["bash", str(V0 / "run.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


# run.sh's default is 1000 tokens; 400 show the same collapse in a third of
# the time on a busy 2-core machine.
N_PREDICT = 400


@pytest.fixture(scope="module")
def v0_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("v0")
    proc = run_v0(out, "--n-predict", str(N_PREDICT))
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((out / "generation.json").read_text(encoding="utf-8")), out


# --- the measurement, on plain text -----------------------------------------

def test_speaker_lines_and_switches():
    g = load_generate()
    text = "Luna: hi\nTheo: oh\n<|im_start|>assistant\nLuna: so\nLuna: and"
    assert g.speaker_lines(text) == ["Luna", "Theo", "Luna", "Luna"]
    assert g.switches(["Luna", "Theo", "Luna", "Luna"]) == 2
    assert g.chatml_roles(text) == ["assistant"]


def test_measure_tells_alternation_from_collapse():
    g = load_generate()
    prompt = g.PROMPT_FILE.read_text(encoding="utf-8").removesuffix("\n")
    alternating = " fine.<|im_end|>\n<|im_start|>user\nTheo: ok.<|im_end|>\n<|im_start|>assistant\nLuna: yes."
    m = g.measure(prompt, alternating, 300, 20)
    assert m["output_turns"] == 3 and m["output_chatml_roles"] == ["user", "assistant"]
    assert m["output_switches"] == 2 and not m["collapsed"]  # Luna (open turn) -> Theo -> Luna
    m = g.measure(prompt, " He loves you. He loves you. He loves you.", 300, 12)
    assert m["output_turns"] == 1 and m["output_switches"] == 0 and m["collapsed"]
    assert (m["top_sentence"], m["top_sentence_count"]) == ("He loves you.", 3)


def test_prompt_is_an_alternating_chatml_transcript_left_open():
    g = load_generate()
    prompt = g.PROMPT_FILE.read_text(encoding="utf-8").removesuffix("\n")
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>assistant\nLuna:")
    speakers = [t.split(":")[0] for t in g.dialogue_turns(prompt)]
    assert speakers == ["Luna", "Theo"] * 3 + ["Luna"]


# --- the real run -------------------------------------------------------------

def test_run_sh_generates_one_long_completion(v0_run):
    proc, data, _ = v0_run
    assert data["request"]["ignore_eos"] is True and data["request"]["seed"] == 42
    assert data["stop_type"] == "limit"
    tokens = data["tokens"]
    assert len(tokens) == data["tokens_predicted"] == data["request"]["n_predict"] == N_PREDICT
    assert all(isinstance(t, int) for t in tokens)
    # every generated id has its text, looked up on the server
    assert set(data["token_text"]) == {str(t) for t in tokens}
    joined = "".join(data["token_text"][str(t)] for t in tokens)
    if "\ufffd" not in joined:  # a token holding part of a UTF-8 character has no text of its own
        assert joined == data["text"]
    assert "collapsed into a single turn" in proc.stdout


def test_run_shows_the_collapse_into_one_speaker(v0_run):
    _, data, _ = v0_run
    m = data["measurement"]
    assert m["prompt_turns"] == 7 and m["prompt_switches"] == 6
    # EOS (<|im_end|>) is banned, so the open turn can never be handed over
    assert m["output_im_end"] == 0
    assert m["output_turns"] == 1 and m["output_switches"] == 0 and m["collapsed"]
    assert m["output_words"] > 10 * m["prompt_words_per_turn"]
    # the control run, EOS honoured, ends the turn early instead
    assert data["control"]["stop_type"] == "eos"
    assert data["control"]["tokens_predicted"] < N_PREDICT


def test_committed_sample_matches_its_measurement_and_the_readme():
    g = load_generate()
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    prompt = g.PROMPT_FILE.read_text(encoding="utf-8").removesuffix("\n")
    assert sample["request"]["n_predict"] == len(sample["tokens"]) == 1000
    m = sample["measurement"]
    recomputed = g.measure(prompt, sample["text"], sample["prompt_tokens"], len(sample["tokens"]))
    assert {k: v for k, v in m.items() if k != "loop_from_token"} == \
        {k: v for k, v in recomputed.items() if k != "loop_from_token"}
    assert m["collapsed"] and m["output_turns"] == 1
    readme = (V0 / "README.md").read_text(encoding="utf-8")
    for figure in (f"from token {m['loop_from_token']} on", f"{m['top_sentence_count']} times",
                   f"after {sample['control']['tokens_predicted']} tokens", f"| {m['output_words']} |",
                   f"| {sample['prompt_tokens']} |"):
        assert figure in readme


def test_run_is_reproducible_with_the_fixed_seed(v0_run, tmp_path):
    _, data, _ = v0_run
    proc = run_v0(tmp_path, "--n-predict", "48")
    assert proc.returncode == 0, proc.stderr
    short = json.loads((tmp_path / "generation.json").read_text(encoding="utf-8"))
    assert short["tokens"] == data["tokens"][:48]


def test_unreachable_server_is_one_line_and_exit_2(tmp_path):
    proc = run_v0(tmp_path, LLAMA_URL="http://127.0.0.1:9")
    assert proc.returncode == 2
    assert proc.stderr.startswith("v0: cannot reach llama-server at http://127.0.0.1:9")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "generation.json").exists()


# --- the page -------------------------------------------------------------------

def bar_chart_rows(at: AppTest):
    import pyarrow as pa

    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    proto = charts[0].proto
    assert json.loads(proto.spec)["mark"]["type"] == "bar"
    return pa.ipc.open_stream(proto.datasets[0].data.data).read_all().to_pandas()


def test_page_shows_the_committed_sample(monkeypatch):
    monkeypatch.delenv("V0_OUTPUT", raising=False)
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    at = AppTest.from_file(str(V0 / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error
    rows = bar_chart_rows(at)
    assert len(rows) == 25
    top_id = max(set(sample["tokens"]), key=sample["tokens"].count)
    assert rows.iloc[0]["id"] == top_id
    assert rows.iloc[0]["text"] == sample["token_text"][str(top_id)]
    assert at.metric[1].value == "1"  # one speaker turn in the output


def test_page_shows_a_fresh_run(v0_run, monkeypatch):
    monkeypatch.setenv("V0_OUTPUT", str(v0_run[2]))
    at = AppTest.from_file(str(V0 / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error
    assert bar_chart_rows(at)["count"].sum() <= 1000


def test_page_without_output_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("V0_OUTPUT", str(tmp_path))
    at = AppTest.from_file(str(V0 / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "bash v0/run.sh" in at.error[0].value
    assert not at.get("vega_lite_chart")
