"""JSON Schema -> regular expression, with outlines_core plus what it lacks.

outlines_core's ``build_regex_from_schema`` turns objects, arrays (with item counts), strings (with lengths,
patterns, formats, no raw control characters), enums, consts, ``anyOf``/``oneOf`` and ``$ref`` into a regex,
but it ignores ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``/``multipleOf``: vLLM's
Outlines backend then lets a model answer 3898989883 to ``maximum: 9``. This module first checks the schema
(JSON Schema 2020-12 meta-schema plus contradictions such as minimum > maximum, naming the path), swaps every
bounded number for a unique placeholder constant, lets outlines_core compile the result and puts an exact
range regex (``finetune.numeric_regex``) where each placeholder landed.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from decimal import Decimal
from typing import Any

from outlines_core.json_schema import build_regex_from_schema

from finetune.numeric_regex import number_regex

_MARKER = "VLMGWNUMBER{}X"
_OUTLINES_ESCAPES = r'\\["\\/bfnrt]'
_PRINTABLE_ESCAPES = r'\\["\\/nrt]'
_NUMERIC_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


class SchemaError(ValueError):
    """An invalid or unsupported JSON Schema; ``path`` is where in the schema (``$.properties.age``)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{message} (at {path})")
        self.message = message
        self.path = path


def check_schema(schema: Any) -> None:
    """Raise ``SchemaError`` if ``schema`` is not a valid JSON Schema or contradicts itself."""
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema must be an object, got {type(schema).__name__}")
    error = next(iter(_meta_validator().iter_errors(schema)), None)
    if error is not None:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise SchemaError(f"invalid JSON Schema: {error.message}", path)
    _check_consistency(schema, "$", schema)


@functools.cache
def _meta_validator() -> Any:
    """One validator of the 2020-12 meta-schema, built once (building it costs milliseconds)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _check_consistency(node: Any, path: str, root: dict[str, Any]) -> None:
    if not isinstance(node, dict):
        return
    for low, high in (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems")):
        if low in node and high in node and node[low] > node[high]:
            raise SchemaError(f"`{low}` {node[low]} is greater than `{high}` {node[high]}", path)
    if (
        "required" in node
        and isinstance(node.get("properties"), dict)
        and node.get("additionalProperties") is False
    ):
        missing = [name for name in node["required"] if name not in node["properties"]]
        if missing:
            raise SchemaError(f"required properties {missing} are not defined in `properties`", path)
    ref = node.get("$ref")
    if isinstance(ref, str):
        _resolve(ref, root, path)
    for key, child in _children(node):
        _check_consistency(child, f"{path}.{key}", root)


def _resolve(ref: str, root: dict[str, Any], path: str) -> Any:
    if not ref.startswith("#"):
        raise SchemaError(f"only local references (#/...) are supported, got `{ref}`", path)
    target: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise SchemaError(f"reference `{ref}` points nowhere", path)
        target = target[part]
    return target


def _children(node: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out += [(f"{key}.{name}", child) for name, child in node[key].items()]
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out += [(f"{key}[{i}]", child) for i, child in enumerate(node[key])]
    out += [(key, node[key]) for key in _SUBSCHEMA_ONE if isinstance(node.get(key), dict)]
    return out


def compile_json_schema(
    schema: dict[str, Any],
    whitespace_pattern: str | None = None,
    *,
    checked: bool = False,
    printable_strings: bool = False,
) -> str:
    """The regex of every JSON text valid for ``schema`` that the generator may produce.

    ``printable_strings`` drops the ``\\b`` and ``\\f`` escapes from strings (they decode to control
    characters, which result-template variables refuse). Raises ``SchemaError`` for an invalid schema or
    one outlines_core cannot compile.
    """
    if not checked:
        check_schema(schema)
    markers: dict[str, str] = {}
    rewritten = _swap_numbers(copy.deepcopy(schema), markers, "$")
    try:
        regex = build_regex_from_schema(json.dumps(rewritten), whitespace_pattern)
    except Exception as exc:  # outlines_core raises ValueError/RuntimeError subclasses with a message
        raise SchemaError(f"cannot compile the schema to a constraint: {exc}") from None
    for marker, number in markers.items():
        regex = regex.replace(f'"{marker}"', f"(?:{number})")
    if printable_strings:
        regex = regex.replace(_OUTLINES_ESCAPES, _PRINTABLE_ESCAPES)
    return regex


def _swap_numbers(node: Any, markers: dict[str, str], path: str) -> Any:
    if not isinstance(node, dict):
        return node
    for key, child in _children(node):
        _replace_child(node, key, _swap_numbers(child, markers, f"{path}.{key}"))
    types = node.get("type")
    type_list = [types] if isinstance(types, str) else list(types or [])
    numeric = [t for t in type_list if t in ("integer", "number")]
    if not numeric or "enum" in node or "const" in node:
        return node
    marker = _MARKER.format(len(markers))
    markers[marker] = _bounded_number(node, integer="number" not in numeric, path=path)
    others = [t for t in type_list if t not in ("integer", "number")]
    rest = {k: v for k, v in node.items() if k not in (*_NUMERIC_KEYS, "type")}
    replacement: dict[str, Any] = {"const": marker}
    if others:
        return {"anyOf": [replacement, {**rest, "type": others}]}
    return {**{k: v for k, v in rest.items() if k in ("description", "title")}, **replacement}


def _replace_child(node: dict[str, Any], key: str, value: Any) -> None:
    if "." in key:
        group, name = key.split(".", 1)
        node[group][name] = value
    elif key.endswith("]"):
        group, index = key[:-1].split("[")
        node[group][int(index)] = value
    else:
        node[key] = value


def _bounded_number(node: dict[str, Any], *, integer: bool, path: str) -> str:
    lo, hi = node.get("minimum"), node.get("maximum")
    ex_lo, ex_hi = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if integer:
        if ex_lo is not None:
            lo = max(lo, math.floor(ex_lo) + 1) if lo is not None else math.floor(ex_lo) + 1
        if ex_hi is not None:
            hi = min(hi, math.ceil(ex_hi) - 1) if hi is not None else math.ceil(ex_hi) - 1
    else:  # exclusive float bounds: the regex keeps the bound itself; validation refuses it
        lo = ex_lo if lo is None else (lo if ex_lo is None else max(lo, ex_lo))
        hi = ex_hi if hi is None else (hi if ex_hi is None else min(hi, ex_hi))
    step = node.get("multipleOf")
    if step is not None and lo is not None and hi is not None:
        size = Decimal(repr(step))
        start = size * math.ceil(Decimal(repr(lo)) / size)
        lo = int(start) if integer else float(start)
    try:
        return number_regex(lo, hi, step, integer)
    except ValueError as exc:
        raise SchemaError(f"no number satisfies the bounds: {exc}", path) from None
