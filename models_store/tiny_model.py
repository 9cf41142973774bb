"""Build the tiny offline Qwen2-VL-architecture model used by every test and the offline quick start.

The model has random (seeded) weights, a byte-level BPE tokenizer trained in a second on generated text,
Qwen's special tokens and chat template, and a small image processor. Nothing is downloaded. Building is
deterministic: the same options give the same files, so built models are cached by a key of the options
and each is built once per machine (see ``cached_tiny_model``).

``pretrain_steps > 0`` briefly fine-tunes the whole random model on generated image captions
(``tiny_pretrain``, which also holds the ``COLOURS`` it knows), so that it looks at images and emits
structured text. LoRA on a purely random base learns almost nothing (FACTS.md); fine-tuning work and its
tests want a pre-trained base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models_store.tiny_pretrain import COLOURS, pretrain_captions

# Bump when the build recipe changes, so stale cached models are not reused.
BUILD_VERSION = 4

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# One vision placeholder per image / video part; string content passes through unchanged.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or part['type'] == 'image_url' -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' or part['type'] == 'video_url' -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)

# Image pixel bounds of the processor: small so that prompts stay short on a CPU engine.
MIN_PIXELS = 28 * 28
MAX_PIXELS = 224 * 224


@dataclass(frozen=True)
class TinyModelSpec:
    """Everything that determines the built files; its hash is the cache key."""

    seed: int = 0
    pretrain_steps: int = 0
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    vision_depth: int = 2
    vision_embed_dim: int = 64
    max_position_embeddings: int = 4096

    def cache_key(self) -> str:
        blob = json.dumps({"v": BUILD_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _corpus(seed: int) -> list[str]:
    """Generated text for the tokenizer: captions, JSON/YAML/CSV/XML shapes, digits and common words."""
    import random

    rng = random.Random(seed)
    words = (
        "the image is a of and or in on with this that what which colour color shape describe "
        "answer json yaml csv xml true false null yes no count number name label grade explain "
        "object objects photo picture video frame frames text value values item items result "
        "red green blue yellow black white purple orange circle square triangle cat dog car"
    ).split()
    lines: list[str] = []
    for name in COLOURS:
        lines += [
            f"The image is {name}.",
            f'{{"colour": "{name}"}}',
            f"colour: {name}",
            f"<colour>{name}</colour>",
        ]
    for _ in range(3000):
        n = rng.randint(3, 12)
        lines.append(" ".join(rng.choice(words) for _ in range(n)))
        lines.append(json.dumps({rng.choice(words): rng.randint(-1000, 100000), "x": rng.random()}))
        lines.append(f"{rng.choice(words)},{rng.randint(0, 99)},{rng.choice(words)}")
    lines.append("".join(chr(c) for c in range(32, 127)))
    return lines


def build_tokenizer(seed: int, vocab_size: int) -> Any:
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _model_config(spec: TinyModelSpec, tok: Any) -> Any:
    from transformers import Qwen2VLConfig

    head_dim = spec.hidden_size // spec.num_heads
    quarter = head_dim // 2
    # mrope sections (temporal, height, width) must sum to head_dim / 2.
    mrope = [quarter - 2 * (quarter * 3 // 8), quarter * 3 // 8, quarter * 3 // 8]
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tok),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_scaling": {"type": "mrope", "mrope_section": mrope},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": spec.vision_depth,
        "embed_dim": spec.vision_embed_dim,
        "hidden_size": spec.hidden_size,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_processor(tok: Any) -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    image_proc = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    video_proc = Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return Qwen2VLProcessor(
        image_processor=image_proc, tokenizer=tok, video_processor=video_proc, chat_template=CHAT_TEMPLATE
    )


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    spec: TinyModelSpec | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the model into ``out_dir`` (created; must not hold another model). Returns the path."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    spec = spec or TinyModelSpec()
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    tok = build_tokenizer(spec.seed, spec.vocab_size)
    processor = build_processor(tok)
    model = Qwen2VLForConditionalGeneration(_model_config(spec, tok))
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tok.convert_tokens_to_ids("<|endoftext|>")
    if spec.pretrain_steps > 0:
        pretrain_captions(model, processor, steps=spec.pretrain_steps, seed=spec.seed, progress=say)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / "tiny_model.json").write_text(
        json.dumps({"build_version": BUILD_VERSION, **asdict(spec)}, indent=2)
    )
    return out


def default_cache_dir() -> Path:
    """``$VLMGW_CACHE_DIR`` or ``~/.cache/vlm-gateway``."""
    env = os.environ.get("VLMGW_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "vlm-gateway"


def cached_tiny_model(
    spec: TinyModelSpec | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return the cached build for ``spec``, building it first if needed (atomic: never a half-built dir)."""
    spec = spec or TinyModelSpec()
    root = (cache_dir or default_cache_dir()) / "tiny-models"
    target = root / f"tiny-qwen2vl-{spec.cache_key()}"
    if (target / "tiny_model.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        build_tiny_model(tmp, spec, progress)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep its build
            if not (target / "tiny_model.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def install_tiny_model(
    out_dir: str | os.PathLike[str],
    spec: TinyModelSpec | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Copy the (cached) tiny model into ``out_dir``; what ``vlmgw tiny-model DIR`` does."""
    src = cached_tiny_model(spec, progress=progress)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "tiny_model.json").exists():
        raise FileExistsError(f"{out} exists and is not a tiny model directory; choose an empty directory")
    shutil.copytree(src, out, dirs_exist_ok=True)
    return out
