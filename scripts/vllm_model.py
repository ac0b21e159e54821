"""Convert the bundled SmolLM2 GGUF file to the Hugging Face layout vLLM loads.

Run with the vLLM virtual environment's Python (it has torch, transformers
and gguf):

    .venv-vllm/bin/python scripts/vllm_model.py GGUF_FILE OUT_DIR

The weights are dequantised to bfloat16 (~260 MB for the 135M model). The
tokenizer, with its ChatML chat template (chat_template.jinja), is written to
the same folder. The output is written to a temporary sibling folder first and
renamed into place, so an interrupted conversion never leaves a folder that
looks complete.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.bfloat16
    )
    # The weights are plain bfloat16 now; the GGUF quantiser left behind makes
    # save_pretrained refuse ("... is not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} GGUF_FILE OUT_DIR", file=sys.stderr)
        return 2
    gguf, out = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    if not gguf.is_file():
        print(f"vllm_model: no GGUF file at {gguf}", file=sys.stderr)
        return 1
    convert(gguf, out)
    missing = [
        f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (out / f).is_file()
    ]
    if missing:
        print(f"vllm_model: {out} lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"vllm_model: wrote {out} ({size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
