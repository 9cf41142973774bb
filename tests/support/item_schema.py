"""The JSON Schema of the structured-output tests and benchmark: an enum, an integer range, an array of short
strings and a nested object with an integer and a bounded float."""

from __future__ import annotations

from typing import Any


def item_schema(third_colour: str = "blue") -> dict[str, Any]:
    """The schema; ``third_colour`` is the enum's last value (the benchmark varies it to defeat caches)."""
    return {
        "type": "object",
        "properties": {
            "color": {"type": "string", "enum": ["red", "green", third_colour]},
            "count": {"type": "integer", "minimum": 0, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
            "size": {
                "type": "object",
                "properties": {
                    "width": {"type": "integer", "minimum": 1, "maximum": 640},
                    "ratio": {"type": "number", "minimum": -1.5, "maximum": 2.25},
                },
                "required": ["width", "ratio"],
            },
        },
        "required": ["color", "count", "tags", "size"],
    }
