"""Where each field's value lies in an answer, and its confidence from the tokens' log-probabilities.

``json_value_spans`` walks a JSON text and returns the character span of every value by path (``grade``,
``meta.size``, ``tags[0]``). ``field_confidence`` maps the tokens of an answer (their bytes, from OpenAI's
``logprobs.content``) onto those spans: a field's confidence is the geometric mean of the probabilities of
the tokens that overlap its value, so it does not shrink merely because a value is long.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from gateway.openai_api.protocol import TokenLogprob

_WHITESPACE = " \t\n\r"
_scan_string = json.decoder.scanstring  # type: ignore[attr-defined]
_decoder = json.JSONDecoder()


def json_value_spans(text: str) -> dict[str, tuple[int, int]]:
    """Character spans of every value below the root of a JSON document, by path. ValueError if not JSON."""
    spans: dict[str, tuple[int, int]] = {}
    end = _value(text, _skip(text, 0), "", spans)
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON value")
    return spans


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _value(text: str, pos: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    start = pos
    if text.startswith("{", pos):
        pos = _object(text, pos + 1, path, spans)
    elif text.startswith("[", pos):
        pos = _array(text, pos + 1, path, spans)
    else:
        _, pos = _decoder.raw_decode(text, pos)
    if path:
        spans[path] = (start, pos)
    return pos


def _object(text: str, pos: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    pos = _skip(text, pos)
    if text.startswith("}", pos):
        return pos + 1
    while True:
        if not text.startswith('"', pos):
            raise ValueError(f"expected a key at {pos}")
        key, pos = _scan_string(text, pos + 1)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise ValueError(f"expected ':' at {pos}")
        pos = _value(text, _skip(text, pos + 1), f"{path}.{key}" if path else key, spans)
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            return pos + 1
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or '}}' at {pos}")
        pos = _skip(text, pos + 1)


def _array(text: str, pos: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    pos = _skip(text, pos)
    if text.startswith("]", pos):
        return pos + 1
    index = 0
    while True:
        pos = _skip(text, _value(text, pos, f"{path}[{index}]", spans))
        if text.startswith("]", pos):
            return pos + 1
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or ']' at {pos}")
        pos, index = _skip(text, pos + 1), index + 1


def field_confidence(
    text: str, tokens: Sequence[TokenLogprob], spans: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Confidence in [0, 1] per field; empty when the tokens do not spell the text (nothing to map).

    Tokens after the text (vLLM lists the end-of-sequence token, e.g. ``<|im_end|>``) are left out.
    """
    token_bytes = [bytes(t.bytes) if t.bytes is not None else t.token.encode() for t in tokens]
    target = text.encode()
    kept, size = 0, 0
    while kept < len(token_bytes) and size < len(target):
        size += len(token_bytes[kept])
        kept += 1
    token_bytes, tokens = token_bytes[:kept], tokens[:kept]
    if b"".join(token_bytes) != target:
        return {}
    bounds, offset = [], 0
    for chunk in token_bytes:
        bounds.append((offset, offset + len(chunk)))
        offset += len(chunk)
    out: dict[str, float] = {}
    for path, (start, end) in spans.items():
        lo, hi = len(text[:start].encode()), len(text[:end].encode())
        picked = [t.logprob for t, (a, b) in zip(tokens, bounds, strict=True) if a < hi and b > lo]
        if picked:
            out[path] = round(math.exp(sum(picked) / len(picked)), 6)
    return out
