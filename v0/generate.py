"""v0, the first design: the whole date as ONE long completion, EOS ignored.

    python v0/generate.py [--url URL] [--out DIR] [--n-predict N] [--seed S]

Sends v0/roleplay.txt (a ChatML transcript that stops mid-dialogue) to
llama-server's native /completion with "ignore_eos": true, so the model
cannot end its turn, and saves the generated token ids, their text and a
measurement of how many speaker turns the output contains to
DIR/generation.json. A second, short request with EOS honoured is the
control: it shows where the model would have ended its turn.

The server is $LLAMA_URL (or --url) if set, otherwise an embedded
llama-server with the bundled SmolLM2-135M-Instruct, started and stopped here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from broken_record.errors import ParrotError

HERE = Path(__file__).resolve().parent

PROMPT_FILE = HERE / "roleplay.txt"
OUTPUT_NAME = "generation.json"
SPEAKERS = ("Luna", "Theo")
SAMPLER = {  # llama-server's defaults, written out so the run is reproducible
    "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
}


class V0Error(ParrotError):
    """The server refused or answered something unexpected."""


# ---------------------------------------------------------------------------
# the measurement: pure functions over text

CHATML_HEADER = re.compile(r"<\|im_start\|>(\w+)\n")


def chatml_roles(text: str) -> list[str]:
    """Roles of the ChatML turns that start in text.

    "<|im_start|>user\\nTheo: hi<|im_end|>\\n<|im_start|>assistant\\n" -> ["user", "assistant"]
    """
    return CHATML_HEADER.findall(text)


def speaker_lines(text: str, speakers=SPEAKERS) -> list[str]:
    """Who speaks, line by line, for lines that start with a speaker's name.

    "Luna: hi\\nTheo: oh\\nLuna: so" -> ["Luna", "Theo", "Luna"]
    """
    names = "|".join(re.escape(s) for s in speakers)
    return re.findall(rf"^(?:<\|im_start\|>\w+\n)?\s*({names}):", text, flags=re.MULTILINE)


def switches(sequence: list[str]) -> int:
    """How often the speaker changes: ["a", "a", "b", "a"] -> 2."""
    return sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)


def dialogue_turns(prompt: str) -> list[str]:
    """Texts of the prompt's user and assistant turns, in order (the system turn left out).

    "<|im_start|>system\\nS<|im_end|>\\n<|im_start|>user\\nTheo: hi<|im_end|>" -> ["Theo: hi"]
    """
    return re.findall(r"<\|im_start\|>(?:user|assistant)\n(.*?)(?=<\|im_end\|>|$)", prompt, flags=re.DOTALL)


def repeated_sentence(text: str) -> tuple[str, int]:
    """The most frequent sentence and how often it occurs.

    "Hi. He loves you. He loves you." -> ("He loves you.", 2)
    """
    sentences = [s.strip() for s in re.findall(r"[^.!?\n]+[.!?]*", text) if s.strip()]
    if not sentences:
        return "", 0
    return Counter(sentences).most_common(1)[0]


def loop_tail(text: str, sentence: str, min_repeats: int = 3) -> int | None:
    """Where the text turns into nothing but `sentence` over and over, to the end.

    ("Hi. Yes. Yes. Yes. Ye", "Yes.") -> 4; None if fewer than min_repeats.
    """
    if not sentence:
        return None
    end = len(text.rstrip())
    for k in range(len(sentence) - 1, 0, -1):  # the last repetition may be cut off
        if text[:end].endswith(sentence[:k]):
            end -= k
            break
    repeats = 0
    while text[:end].rstrip().endswith(sentence):
        end = len(text[:end].rstrip()) - len(sentence)
        repeats += 1
    while end < len(text) and text[end].isspace():
        end += 1
    return end if repeats >= min_repeats else None


def measure(prompt: str, generated: str, prompt_tokens: int, output_tokens: int,
            speakers=SPEAKERS) -> dict:
    """Does the continuation keep alternating speakers the way the prompt does?"""
    turns = dialogue_turns(prompt)
    prompt_speakers = [t.split(":", 1)[0].strip() for t in turns]
    closed = turns[:-1]  # the last turn is the open one the model continues
    # the output starts inside the open turn, so its speaker comes first
    lines = speaker_lines(generated, speakers)
    sequence = prompt_speakers[-1:] + lines
    roles = chatml_roles(generated)
    # The output continues the prompt's open turn: that is one turn, plus one
    # for every ChatML header the model writes itself.
    output_turns = 1 + len(roles)
    sentence, count = repeated_sentence(generated)
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_turns": len(turns),
        "prompt_speakers": prompt_speakers,
        "prompt_switches": switches(prompt_speakers),
        "prompt_words_per_turn": round(sum(len(t.split()) for t in closed) / max(1, len(closed)), 1),
        "output_tokens": output_tokens,
        "output_words": len(generated.split()),
        "output_im_start": generated.count("<|im_start|>"),
        "output_im_end": generated.count("<|im_end|>"),
        "output_chatml_roles": roles,
        "output_turns": output_turns,
        "output_tokens_per_turn": round(output_tokens / output_turns, 1),
        "output_speaker_lines": dict(Counter(lines)),
        "output_switches": switches(sequence),
        "output_newlines": generated.count("\n"),
        "top_sentence": sentence,
        "top_sentence_count": count,
        "top_sentence_share": round(len(sentence) * count / max(1, len(generated)), 3),
        "loop_from_char": loop_tail(generated, sentence),
        "loop_from_token": None,  # filled in where the token texts are known
        "collapsed": output_turns == 1 and switches(sequence) == 0,
    }


# ---------------------------------------------------------------------------
# talking to llama-server


def post(url: str, endpoint: str, body: dict, timeout: float = 600) -> dict:
    try:
        r = requests.post(url + endpoint, json=body, timeout=timeout)
    except requests.RequestException as err:
        raise V0Error(f"cannot reach llama-server at {url}: {err.__class__.__name__}") from None
    try:
        data = r.json()
    except ValueError:
        raise V0Error(f"{url}{endpoint} answered HTTP {r.status_code} without JSON: is it a llama-server?") \
            from None
    if r.status_code != 200 or "error" in data:
        message = data.get("error", {}).get("message", r.text[:200]) if isinstance(data, dict) else r.text[:200]
        raise V0Error(f"{url}{endpoint} answered HTTP {r.status_code}: {message}")
    return data


def server_info(url: str) -> dict:
    try:
        props = requests.get(url + "/props", timeout=10).json()
    except (requests.RequestException, ValueError):
        return {}
    return {
        "model": Path(props.get("model_path", "") or "").name or None,
        "build_info": props.get("build_info"),
        "n_ctx": (props.get("default_generation_settings") or {}).get("n_ctx"),
    }


def token_pieces(url: str, ids: list[int]) -> dict[str, str]:
    """The text of each distinct token id, from the server's /detokenize."""
    pieces = {}
    for tid in sorted(set(ids)):
        pieces[str(tid)] = post(url, "/detokenize", {"tokens": [tid]}, timeout=30).get("content", "")
    return pieces


def complete(url: str, prompt: str, n_predict: int, seed: int, ignore_eos: bool) -> dict:
    body = {"prompt": prompt, "n_predict": n_predict, "seed": seed, "ignore_eos": ignore_eos,
            "stream": False, "cache_prompt": False, "return_tokens": True, **SAMPLER}
    data = post(url, "/completion", body)
    if not isinstance(data.get("tokens"), list) or not data["tokens"]:
        # older servers leave out the ids: tokenize the text instead
        data["tokens"] = post(url, "/tokenize", {"content": data.get("content", ""), "add_special": False,
                                                   "parse_special": True})["tokens"]
    return data


def generate(url: str, prompt: str, n_predict: int, seed: int) -> dict:
    started = time.time()
    main = complete(url, prompt, n_predict, seed, ignore_eos=True)
    control = complete(url, prompt, n_predict, seed, ignore_eos=False)
    ids = [int(t) for t in main["tokens"]]
    text = main.get("content", "")
    prompt_tokens = len(post(url, "/tokenize", {"content": prompt, "add_special": False,
                                                "parse_special": True}).get("tokens", []))
    result = {
        "version": 1,
        "what": "v0: one long completion of v0/roleplay.txt with EOS ignored",
        "server": {"url": url, **server_info(url)},
        "request": {"n_predict": n_predict, "seed": seed, "ignore_eos": True, **SAMPLER},
        "prompt_file": "v0/roleplay.txt",
        "prompt_tokens": prompt_tokens,
        "tokens_predicted": main.get("tokens_predicted", len(ids)),
        "stop_type": main.get("stop_type"),
        "tokens": ids,
        "text": text,
        "token_text": token_pieces(url, ids),
        "measurement": measure(prompt, text, prompt_tokens, len(ids)),
        "control": {
            "ignore_eos": False,
            "tokens_predicted": control.get("tokens_predicted", len(control["tokens"])),
            "stop_type": control.get("stop_type"),
            "text": control.get("content", ""),
        },
        "seconds": round(time.time() - started, 1),
    }
    loop_char = result["measurement"]["loop_from_char"]
    if loop_char is not None:
        offset = 0
        for index, tid in enumerate(ids):
            offset += len(result["token_text"][str(tid)])
            if offset > loop_char:
                result["measurement"]["loop_from_token"] = index
                break
    return result


def report(result: dict, out_file: Path) -> str:
    m, c = result["measurement"], result["control"]
    lines = [
        f"v0: {result['tokens_predicted']} tokens generated in one completion "
        f"(stop: {result['stop_type']}, seed {result['request']['seed']}), saved to {out_file}",
        f"  prompt: {m['prompt_turns']} dialogue turns, {m['prompt_switches']} speaker switches, "
        f"{m['prompt_words_per_turn']} words per finished turn",
        f"  output: {m['output_turns']} turn(s) of {m['output_words']} words; "
        f"{m['output_im_start']} <|im_start|>, {m['output_im_end']} <|im_end|> markers",
        f"  name-labelled lines in the output: {m['output_speaker_lines'] or 'none'}, "
        f"speaker switches {m['output_switches']}",
        f"  most repeated sentence: {m['top_sentence']!r} x{m['top_sentence_count']} "
        f"({m['top_sentence_share']:.0%} of the text)"
        + (f", nothing else from token {m['loop_from_token']} on" if m["loop_from_token"] is not None else ""),
        f"  control (EOS honoured): stopped after {c['tokens_predicted']} tokens ({c['stop_type']})",
        "  collapsed into a single turn: " + ("yes" if m["collapsed"] else "no"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("LLAMA_URL"),
                        help="a running llama-server (default: $LLAMA_URL, else start the embedded one)")
    parser.add_argument("--out", default=os.environ.get("V0_OUTPUT", str(HERE / "output")),
                        help="folder for generation.json (default: $V0_OUTPUT or v0/output)")
    parser.add_argument("--prompt", default=str(PROMPT_FILE), help="the ChatML prompt file")
    parser.add_argument("--n-predict", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    try:
        prompt = Path(args.prompt).read_text(encoding="utf-8").removesuffix("\n")
    except OSError as err:
        print(f"v0: cannot read the prompt {args.prompt}: {err.strerror}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    try:
        if args.url:
            result = generate(args.url.rstrip("/"), prompt, args.n_predict, args.seed)
        else:
            from broken_record.inference.embedded import EmbeddedServer, install_signal_handlers

            install_signal_handlers()
            print("v0: starting the embedded llama-server (SmolLM2-135M-Instruct)", file=sys.stderr)
            with EmbeddedServer(ctx=4096, slots=1, name="v0") as srv:
                result = generate(srv.url, prompt, args.n_predict, args.seed)
            result["server"]["url"] = "embedded"
    except ParrotError as err:
        print(f"v0: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("v0: interrupted", file=sys.stderr)
        return 130
    result["prompt_file"] = os.path.relpath(args.prompt, HERE.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / OUTPUT_NAME
    out_file.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(report(result, out_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
