"""Does the GGUF export load in llama.cpp and answer like the model in transformers?

On the pre-trained tiny Qwen2-VL base (the one the integration tests use), a LoRA adapter is trained on the
colour-JSON task (tests/support/colour_task.py, 60 steps, as tests/integration/conftest.py does), then
exported as ``merged`` and as ``gguf`` (F32 and F16). For each held-out image (new jittered solid colours),
the greedy answer of the merged model in transformers is compared with the greedy answer of
``llama-cpp-python`` (llama.cpp with its multimodal ``mtmd`` library) given the two GGUF files; the next-token
logits of a text-only prompt are compared too.

llama-cpp-python is not a project dependency (it builds llama.cpp from source: about 26 minutes on the
2-core development machine), so it runs from its own virtual environment:

    python3 -m venv /tmp/llama-venv && /tmp/llama-venv/bin/pip install llama-cpp-python==0.3.36
    uv run python benchmarks/gguf_llama_cpp.py --llama-python /tmp/llama-venv/bin/python

Image sizes: llama.cpp's Qwen2-VL preprocessing gives an image at least 8 visual tokens, transformers'
processor (min_pixels 28x28 here) does not, so 56x56 images (4 tokens in transformers) are scaled up by
llama.cpp; 112x112 images (16 tokens) are the same size in both. Both are measured.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_TEXT = (
    "<|im_start|>user\nClassify the image colour. Reply with JSON.<|im_end|>\n<|im_start|>assistant\n"
)

# Runs inside the llama-cpp-python environment: answers every image, and the text prompt's logits.
LLAMA_DRIVER = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_chat_format import MTMDChatHandler
job = json.load(open(sys.argv[1]))
handler = MTMDChatHandler(clip_model_path=job["mmproj"], verbose=False)
llm = Llama(model_path=job["model"], chat_handler=handler, n_ctx=1024, n_threads=2, verbose=False,
            logits_all=True)
answers, started = [], time.perf_counter()
for uri in job["images"]:
    out = llm.create_chat_completion(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}},
                                               {"type": "text", "text": job["prompt"]}]}],
        max_tokens=16, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
    answers.append(out["choices"][0]["message"]["content"] or "")
seconds = (time.perf_counter() - started) / max(1, len(job["images"]))
llm.reset()
tokens = llm.tokenize(job["text"].encode(), add_bos=False, special=True)
llm.eval(tokens)
print(json.dumps({"answers": answers, "s_per_answer": seconds, "tokens": tokens,
                  "logits": [float(x) for x in llm.scores[len(tokens) - 1]]}))
"""


def train_adapter(base: Path, root: Path) -> Path:
    import msgspec

    from finetune.spec import HyperParameters, TrainSpec
    from tests.support import colour_task

    spec = TrainSpec(
        base_model=str(base),
        served_base_name="tiny",
        output_dir=str(root / "out"),
        examples=colour_task.examples(root / "train", 4, seed=1),
        hyperparameters=HyperParameters(max_steps=60),
    )
    (root / "spec.json").write_bytes(msgspec.json.encode(spec))
    cmd = [sys.executable, "-m", "finetune", "run", str(root / "spec.json"), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
    return root / "out" / "adapter"


def transformers_answers(merged: Path, images: list[Path]) -> tuple[list[str], float, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tests.support.export_model import PROMPT, greedy, image_inputs

    model = AutoModelForImageTextToText.from_pretrained(str(merged)).eval()
    processor = AutoProcessor.from_pretrained(str(merged))
    started = time.perf_counter()
    answers = [greedy(model, processor, image_inputs(processor, p, PROMPT), 16).strip() for p in images]
    seconds = (time.perf_counter() - started) / len(images)
    ids = processor.tokenizer(PROMPT_TEXT, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1].float()
    return answers, seconds, (ids["input_ids"][0].tolist(), logits)


def llama_answers(llama_python: str, gguf_dir: Path, images: list[Path]) -> dict[str, Any]:
    from tests.support.export_model import PROMPT

    stem = next(p.name for p in gguf_dir.glob("*.gguf") if not p.name.startswith("mmproj-"))
    uris = ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for p in images]
    job = {"model": str(gguf_dir / stem), "mmproj": str(gguf_dir / f"mmproj-{stem}"), "images": uris,
           "prompt": PROMPT, "text": PROMPT_TEXT}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        (Path(tmp) / "driver.py").write_text(LLAMA_DRIVER)
        done = subprocess.run(
            [llama_python, str(Path(tmp) / "driver.py"), str(Path(tmp) / "job.json")],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"llama-cpp-python failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--llama-python", required=True, help="python of a venv with llama-cpp-python")
    parser.add_argument("--per-colour", type=int, default=2, help="held-out images per colour (6 colours)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers.utils import logging as hf_logging

    from models_store.export import ExportProgress, ExportSource
    from models_store.export.exporter import export_folder
    from models_store.tiny_model import TinyModelSpec, cached_tiny_model
    from tests.support import colour_task

    hf_logging.disable_progress_bar()
    base = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        adapter = train_adapter(base, root / "train")
        source = ExportSource(adapter_dir=adapter, base_dir=base, name="colours")
        export_folder(source, "merged", root / "merged", ExportProgress())
        for gguf_type in ("f32", "f16"):
            export_folder(source, "gguf", root / f"gguf-{gguf_type}", ExportProgress(), gguf_type=gguf_type)
        print(f"{'images':>8} {'GGUF':>5} {'same answer':>12} {'task right (hf / llama.cpp)':>28} "
              f"{'s/answer (hf / llama.cpp)':>26}")  # fmt: skip
        for size in (112, 56):
            pairs = colour_task.write_images(root / f"held-out-{size}", args.per_colour, seed=2, size=size)
            images, want = [p for p, _ in pairs], [colour_task.target_for(c) for _, c in pairs]
            hf, hf_s, (hf_tokens, hf_logits) = transformers_answers(root / "merged", images)
            for gguf_type in ("f32", "f16"):
                got = llama_answers(args.llama_python, root / f"gguf-{gguf_type}", images)
                same = sum(a == b.strip() for a, b in zip(hf, got["answers"], strict=True))
                right_hf = sum(a == w for a, w in zip(hf, want, strict=True))
                right_ll = sum(a.strip() == w for a, w in zip(got["answers"], want, strict=True))
                n = len(images)
                print(f"{size:>5} px {gguf_type:>5} {same:>6}/{n:<5} {right_hf:>12}/{n} / {right_ll}/{n:<8} "
                      f"{hf_s:>14.3f} / {got['s_per_answer']:.3f}")  # fmt: skip
                if size == 112:
                    logits = torch.tensor(got["logits"])
                    diff = (logits - hf_logits).abs().max().item()
                    top = int(logits.argmax()) == int(hf_logits.argmax())
                    print(f"         text prompt: tokens equal {got['tokens'] == hf_tokens}, "
                          f"max |logit difference| {diff:.2e}, top token equal {top}")  # fmt: skip
                mismatches = [(a, b) for a, b in zip(hf, got["answers"], strict=True) if a != b.strip()]
                for a, b in mismatches[:3]:
                    print(f"         differs: transformers {a!r} vs llama.cpp {b!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
