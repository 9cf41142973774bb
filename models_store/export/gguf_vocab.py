"""A byte-level BPE tokenizer (tokenizer.json) as llama.cpp's ``gpt2``-model vocabulary in GGUF metadata.

Tokens keep their byte-level spelling; added tokens that are special (or look it, ``<|...|>``) become
CONTROL tokens so llama.cpp neither splits nor prints them; ids the embedding has beyond the tokenizer
become unused ``[PADn]`` entries. ``tokenizer.ggml.pre`` names the pre-tokenizer split (``gpt2`` or
``qwen2``), which llama.cpp must reproduce to tokenize text as transformers does. Special ids and whether a
BOS token is prepended come from the model's own tokenizer; the chat template goes along.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from models_store.export.gguf_support import pre_tokenizer_name
from models_store.export.source import ExportRefused


def add_vocabulary(writer: gguf.GGUFWriter, base_dir: Path, text: dict[str, Any]) -> None:
    """Vocabulary, merges, special tokens and chat template of the base model's tokenizer; ``text`` is the
    language model's config (its vocabulary size, and the BOS id when the tokenizer names none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    raw = json.loads((base_dir / "tokenizer.json").read_text())
    pre = pre_tokenizer_name(raw.get("pre_tokenizer"))
    if pre is None:
        raise ExportRefused("the tokenizer's pre-tokenizer is not one llama.cpp implements (gpt2, qwen2)")
    tokens, types = token_table(tokenizer, int(text["vocab_size"]))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges(raw))
    add_special_tokens(writer, tokenizer, text.get("bos_token_id"))
    template = chat_template(tokenizer, base_dir)
    if template:
        writer.add_chat_template(template)


def token_table(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    vocab: dict[str, int] = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ExportRefused(f"the tokenizer has ids beyond the model's vocabulary of {vocab_size}")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            special = decoder[i].special or (token.startswith("<|") and token.endswith("|>"))
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def merges(raw: dict[str, Any]) -> list[str]:
    """BPE merges as ``"a b"`` strings (tokenizer.json stores pairs, or such strings in older files)."""
    out = []
    for merge in raw["model"].get("merges") or []:
        out.append(" ".join(merge) if isinstance(merge, list) else str(merge))
    return out


def add_special_tokens(writer: gguf.GGUFWriter, tokenizer: Any, config_bos: int | None) -> None:
    ids = {
        "bos": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else config_bos,
        "eos": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "unk": tokenizer.unk_token_id,
    }
    if ids["bos"] is not None:
        writer.add_bos_token_id(int(ids["bos"]))
    if ids["eos"] is not None:
        writer.add_eos_token_id(int(ids["eos"]))
    if ids["pad"] is not None:
        writer.add_pad_token_id(int(ids["pad"]))
    if ids["unk"] is not None:
        writer.add_unk_token_id(int(ids["unk"]))
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(tokenizer.bos_token_id is not None and probe[:1] == [ids["bos"]])
    writer.add_add_eos_token(ids["eos"] is not None and probe[-1:] == [ids["eos"]])


def chat_template(tokenizer: Any, base_dir: Path) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        return template
    path = base_dir / "chat_template.jinja"
    if path.is_file():
        return path.read_text()
    config = base_dir / "chat_template.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("chat_template")
        return value if isinstance(value, str) else None
    return None
