"""Visual grounding in vlm.run's form: beside each extracted value ``field`` sits ``field_metadata`` with
``bboxes``, each a normalised ``xywh`` box (every number between 0 and 1) and the ``page`` (image or frame
index) it was found on, and, filled in by the gateway, a ``confidence`` of ``hi``, ``med`` or ``low``.

``grounded_schema`` rewrites an answer schema so the model must produce those objects: every property whose
value is a scalar (string, number, integer, boolean, an enum) or an array of scalars gets its
``_metadata`` sibling, in objects at any depth (also inside arrays and ``$defs``). A property marked
``"x-grounding": false`` in a domain's schema is left alone (for values that have no place in the image).
The boxes are constrained by the schema itself (structured output), so they always parse and stay in range.
"""

from __future__ import annotations

import copy
from typing import Any

SUFFIX = "_metadata"
MAX_BOXES = 3
_SCALARS = {"string", "number", "integer", "boolean"}
_MAPS = ("$defs", "definitions")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
HIGH, MEDIUM = 0.8, 0.5

PROMPT = (
    " For every field `F` also give `F_metadata`: its `bboxes`, where the value appears, each with `xywh` "
    "(the box's left, top, width and height as fractions 0 to 1 of the image's width and height) and "
    "`page` (the index of the image, from 0)."
)


def metadata_schema(pages: int) -> dict[str, Any]:
    """The schema of one ``field_metadata`` object for an input of ``pages`` images or frames."""
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    box = {
        "type": "object",
        "properties": {
            "xywh": {"type": "array", "items": unit, "minItems": 4, "maxItems": 4},
            "page": {"type": "integer", "minimum": 0, "maximum": max(pages - 1, 0)},
        },
        "required": ["xywh", "page"],
        "additionalProperties": False,
    }
    bboxes = {"type": "array", "items": box, "minItems": 1, "maxItems": MAX_BOXES}
    return {"type": "object", "properties": {"bboxes": bboxes}, "required": ["bboxes"]}


def grounded_schema(schema: dict[str, Any], pages: int) -> dict[str, Any]:
    """A copy of ``schema`` in which every groundable property has its ``_metadata`` sibling."""
    return _rewrite(copy.deepcopy(schema), metadata_schema(pages), ground=True)


def without_markers(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` without the gateway's ``x-grounding`` markers (sent when grounding is off)."""
    return _rewrite(copy.deepcopy(schema), {}, ground=False)


def _rewrite(node: Any, meta: dict[str, Any], *, ground: bool) -> Any:
    if not isinstance(node, dict):
        return node
    node.pop("x-grounding", None)
    if isinstance(node.get("properties"), dict):
        _rewrite_object(node, meta, ground)
    if isinstance(node.get("items"), dict):
        node["items"] = _rewrite(node["items"], meta, ground=ground)
    for key in _MAPS:
        if isinstance(node.get(key), dict):
            node[key] = {k: _rewrite(v, meta, ground=ground) for k, v in node[key].items()}
    for key in _LISTS:
        if isinstance(node.get(key), list):
            node[key] = [_rewrite(v, meta, ground=ground) for v in node[key]]
    return node


def _rewrite_object(node: dict[str, Any], meta: dict[str, Any], ground: bool) -> None:
    """Insert ``name_metadata`` right after each groundable ``name`` (models write properties in order)."""
    props: dict[str, Any] = node["properties"]
    required = node.get("required")
    out: dict[str, Any] = {}
    new_required: list[str] = []
    for name, sub in props.items():
        wanted = ground and groundable(sub) and name + SUFFIX not in props
        out[name] = _rewrite(sub, meta, ground=ground)
        if isinstance(required, list) and name in required:
            new_required.append(name)
        if wanted:
            out[name + SUFFIX] = copy.deepcopy(meta)
            if isinstance(required, list) and name in required:
                new_required.append(name + SUFFIX)
    node["properties"] = out
    if isinstance(required, list):
        node["required"] = new_required + [r for r in required if r not in new_required]


def groundable(schema: Any) -> bool:
    """Whether a property's value can be pointed at in an image: a scalar or a list of scalars."""
    if not isinstance(schema, dict) or schema.get("x-grounding") is False:
        return False
    if _scalar(schema):
        return True
    return _types(schema) == {"array"} and isinstance(schema.get("items"), dict) and _scalar(schema["items"])


def _scalar(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return False
    if "enum" in schema or "const" in schema:
        return True
    types = _types(schema) - {"null"}
    return bool(types) and types <= _SCALARS


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    return {str(k) for k in kind} if isinstance(kind, list) else set()


def add_confidence_levels(answer: Any, confidence: dict[str, float], path: str = "") -> None:
    """Write ``confidence`` (hi/med/low) into each ``field_metadata`` from the field's own confidence."""
    if isinstance(answer, list):
        for i, item in enumerate(answer):
            add_confidence_levels(item, confidence, f"{path}[{i}]")
        return
    if not isinstance(answer, dict):
        return
    for key, value in answer.items():
        where = f"{path}.{key}" if path else key
        base = key.removesuffix(SUFFIX)
        if key.endswith(SUFFIX) and base in answer and isinstance(value, dict):
            score = confidence.get(f"{path}.{base}" if path else base)
            if score is not None:
                value["confidence"] = level(score)
        else:
            add_confidence_levels(value, confidence, where)


def level(score: float) -> str:
    return "hi" if score >= HIGH else "med" if score >= MEDIUM else "low"
