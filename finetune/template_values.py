"""How one variable's value is written, constrained and read back in each template context.

Non-string values are written as compact JSON (floats without exponent, see ``canonical_float_text``), then
escaped for the context: quoted and with ``""`` inside a CSV field, XML-escaped in element text. Strings are
JSON-escaped in JSON contexts, quoted with ``""`` doubling in CSV, XML-escaped in XML and raw in free text,
where a string that is followed by more text cannot contain that text's first character (else the split
would be ambiguous). The regex of each context matches exactly what rendering can produce for valid
values, so a generated answer always reads back; the variable's own ``check`` is the final word.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import unescape as xml_unescape

import msgspec

from finetune.numeric_regex import number_regex
from finetune.template_syntax import Context
from finetune.variables import MAX_OBJECT_DEPTH, VariableSpec, VariableType, canonical_float_text

_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # control characters other than tab, LF, CR
_JSON_ATOM = r'(?:[^"\\\x00-\x1f\x7f-\x9f]|\\["\\/nrt])'
_CSV_JSON_ATOM = r'(?:[^"\\\x00-\x1f\x7f-\x9f]|\\(?:""|[\\/nrt]))'
_XML_JSON_ATOM = r'(?:[^"\\<&\x00-\x1f\x7f-\x9f]|\\["\\/nrt]|&(?:amp|lt|gt|quot|apos);)'
_CSV_ATOM = rf'(?:[^"{_CONTROL}]|"")'
_XML_ENTITIES = r"&(?:amp|lt|gt|quot|apos);"
_SCALAR_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,6})?"  # the limits of finetune.variables
_REGEX_META = set(".^$*+?()[]{}|\\")
_XML_UNESCAPE = {"&quot;": '"', "&apos;": "'"}

# ---------------------------------------------------------------- writing


def json_text(value: Any) -> str:
    """Compact JSON with floats in canonical decimal form (never ``1e-05``, always a ``.``)."""
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, float):
        return canonical_float_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_text(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    return "[" + ",".join(json_text(v) for v in value) + "]"


def render_value(var: VariableSpec, context: Context, value: Any) -> str:
    """Text of a checked value at a spot of the given context (``None``: the variable is absent)."""
    if value is None:
        return "null" if context is Context.JSON_VALUE else ""
    is_string = var.type is VariableType.STRING
    if context is Context.JSON_VALUE:
        return json_text(value)
    if context is Context.JSON_STRING:
        return json_text(value)[1:-1]
    if context is Context.CSV_QUOTED:
        return value.replace('"', '""')
    if context is Context.CSV_FIELD:
        if is_string or var.type in (VariableType.ARRAY, VariableType.OBJECT):
            text = value if is_string else json_text(value)
            return '"' + text.replace('"', '""') + '"'
        return json_text(value)
    text = value if is_string else json_text(value)
    return xml_escape(text) if context is Context.XML_TEXT else text


# ---------------------------------------------------------------- constraining


def escape_literal(text: str) -> str:
    """Regex for literal text, in syntax that Python, Rust (outlines_core), xgrammar and guidance share."""
    out = []
    for ch in text:
        if ch in _REGEX_META:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append(r"\n")
        elif ch == "\t":
            out.append(r"\t")
        elif ch == "\r":
            out.append(r"\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _class_member(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x80 and not ch.isalnum() else ch


def _repeat(atom: str, low: int | None, high: int | None) -> str:
    low = low or 0
    if high is None:
        return f"{atom}*" if low == 0 else f"{atom}{{{low},}}"
    return f"{atom}{{{low}}}" if low == high else f"{atom}{{{low},{high}}}"


def _alternatives(texts: list[str]) -> str:
    return "(?:" + "|".join(escape_literal(t) for t in sorted(texts, key=len, reverse=True)) + ")"


def value_regex(var: VariableSpec, context: Context, terminator: str | None) -> str:
    """Regex of a present value; ``terminator`` is the first character of the text that follows, if any."""
    if var.type is VariableType.STRING:
        return _string_regex(var, context, terminator)
    if var.choices is not None and var.type is not VariableType.ARRAY:
        return _alternatives([render_value(var, context, c) for c in var.choices])
    if var.type in (VariableType.INTEGER, VariableType.FLOAT):
        return number_regex(var.min_value, var.max_value, var.step_size, var.type is VariableType.INTEGER)
    if var.type is VariableType.BOOLEAN:
        return "(?:true|false)"
    quote, atom = {
        Context.CSV_FIELD: ('""', _CSV_JSON_ATOM),
        Context.XML_TEXT: ('"', _XML_JSON_ATOM),
    }.get(context, ('"', _JSON_ATOM))
    body = (
        _array_regex(var, quote, atom, context)
        if var.type is VariableType.ARRAY
        else _object_regex(quote, atom)
    )
    return f'"{body}"' if context is Context.CSV_FIELD else body


def _string_regex(var: VariableSpec, context: Context, terminator: str | None) -> str:
    if var.choices is not None:
        return _alternatives([render_value(var, context, c) for c in var.choices])
    if context in (Context.JSON_VALUE, Context.JSON_STRING):
        body = _repeat(_JSON_ATOM, var.min_length, var.max_length)
        return f'"{body}"' if context is Context.JSON_VALUE else body
    if context in (Context.CSV_FIELD, Context.CSV_QUOTED):
        body = _repeat(_CSV_ATOM, var.min_length, var.max_length)
        return f'"{body}"' if context is Context.CSV_FIELD else body
    stop = ""
    if terminator:
        stop = {"\t": r"\t", "\n": r"\n", "\r": r"\r"}.get(terminator) or _class_member(terminator)
    if context is Context.XML_TEXT:
        return _repeat(f"(?:[^<&{_CONTROL}{stop}]|{_XML_ENTITIES})", var.min_length, var.max_length)
    return _repeat(f"[^{_CONTROL}{stop}]", var.min_length, var.max_length)


def _scalar_regex(quote: str, atom: str) -> str:
    return f"(?:{quote}{atom}*{quote}|{_SCALAR_NUMBER}|true|false|null)"


def _array_regex(var: VariableSpec, quote: str, atom: str, context: Context) -> str:
    if var.choices is not None:
        texts = [json_text(c) for c in var.choices]
        if context is Context.CSV_FIELD:
            texts = [t.replace('"', '""') for t in texts]
        if context is Context.XML_TEXT:
            texts = [xml_escape(t) for t in texts]
        item = _alternatives(texts)
    else:
        item = _scalar_regex(quote, atom)
    return _list_regex(item, var.min_length or 0, var.max_length)


def _list_regex(item: str, low: int, high: int | None) -> str:
    if high == 0:
        return r"\[\]"
    rest = _repeat(f"(?:,{item})", max(low - 1, 0), None if high is None else high - 1)
    inner = f"{item}{rest}"
    return rf"\[{inner}\]" if low > 0 else rf"\[(?:{inner})?\]"


def json_object_regex() -> str:
    """Any JSON object up to ``MAX_OBJECT_DEPTH`` levels, compact. outlines_core's own ``{"type": "object"}``
    regex takes about 10 s to index on a 2k-token vocabulary (over vLLM's 5 s limit); this one about 1 s."""
    return _object_regex('"', _JSON_ATOM)


def _object_regex(quote: str, atom: str) -> str:
    key = f"{quote}{atom}*{quote}"
    scalar = _scalar_regex(quote, atom)
    value = f"(?:{scalar}|{_list_regex(scalar, 0, None)})"
    for _ in range(MAX_OBJECT_DEPTH):
        obj = rf"\{{(?:{key}:{value}(?:,{key}:{value})*)?\}}"
        value = f"(?:{scalar}|{_list_regex(scalar, 0, None)}|{obj})"
    return obj


def optional_regex(regex: str, context: Context) -> str:
    """Regex of a value that may be absent: ``null`` for a bare JSON value, nothing elsewhere."""
    return f"(?:{regex}|null)" if context is Context.JSON_VALUE else f"(?:{regex})?"


# ---------------------------------------------------------------- reading


def read_value(var: VariableSpec, context: Context, text: str) -> Any:
    """The raw value written as ``text`` (before ``check``); ``None`` when the spot is empty or null."""
    is_string = var.type is VariableType.STRING
    if context is Context.JSON_VALUE:
        return msgspec.json.decode(text)
    if context is Context.JSON_STRING:
        return msgspec.json.decode(f'"{text}"')
    if context is Context.CSV_QUOTED:
        return _empty_string(var, text.replace('""', '"'))
    if context is Context.CSV_FIELD:
        if text == "":
            return None
        if text.startswith('"'):
            inner = text[1:-1].replace('""', '"')
            return inner if is_string else msgspec.json.decode(inner)
        return msgspec.json.decode(text)
    if context is Context.XML_TEXT:
        text = xml_unescape(text, _XML_UNESCAPE)
    if is_string:
        return _empty_string(var, text)
    return None if text == "" else msgspec.json.decode(text)


def _empty_string(var: VariableSpec, text: str) -> str | None:
    """Where an empty string and an absent value look alike, "" counts as a value only if it is valid."""
    if text == "" and (var.min_length or (var.choices is not None and "" not in var.choices)):
        return None
    return text
