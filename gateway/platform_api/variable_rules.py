"""Variable definitions, value checks and result-template checks: the one place the platform API asks.

The structured-output work (``finetune/variables.py``, ``finetune/templates.py``: ``VariableSpec.check``,
``validate_variable_name``, ``ResultTemplate.compile`` raising ``TemplateError``) will own these rules; until
it lands this module implements the checks the platform needs itself, behind the same three functions, so
switching is a change here only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NUMERIC = ("integer", "float")
SIZED = ("string", "array")


@dataclass(frozen=True)
class VariableDef:
    """A variable's definition as stored (choices already split)."""

    name: str
    type: str
    required: bool = False
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    step_size: float | None = None
    min_length: int | None = None
    max_length: int | None = None


def split_choices(choices: str | list[str] | None) -> tuple[str, ...]:
    """Ximilar's comma-separated ``choices`` (a JSON list is accepted too) as a tuple."""
    if choices is None:
        return ()
    items = choices.split(",") if isinstance(choices, str) else choices
    return tuple(item.strip() for item in items if item.strip())


def name_problem(name: str) -> str | None:
    if not IDENTIFIER.match(name):
        return "must be an identifier: letters, digits and `_`, not starting with a digit"
    return None


def definition_problems(var: VariableDef) -> dict[str, str]:
    """Every problem of a definition, by field (constraints that do not fit the type or each other)."""
    problems: dict[str, str] = {}
    if (problem := name_problem(var.name)) is not None:
        problems["name"] = problem
    numeric = {"min_value": var.min_value, "max_value": var.max_value, "step_size": var.step_size}
    for field, value in numeric.items():
        if value is not None and var.type not in NUMERIC:
            problems[field] = f"applies to integer and float variables, not {var.type}"
        elif value is not None and not math.isfinite(value):
            problems[field] = "must be a finite number"
    for field, size in {"min_length": var.min_length, "max_length": var.max_length}.items():
        if size is not None and var.type not in SIZED:
            problems[field] = f"applies to string and array variables, not {var.type}"
        elif size is not None and size < 0:
            problems[field] = "must be 0 or more"
    if var.choices and var.type not in SIZED:
        problems["choices"] = f"applies to string and array variables, not {var.type}"
    elif len(set(var.choices)) != len(var.choices):
        problems["choices"] = "lists a value twice"
    if var.step_size is not None and var.step_size <= 0 and "step_size" not in problems:
        problems["step_size"] = "must be greater than 0"
    if _both(var.min_value, var.max_value) and var.min_value > var.max_value:  # type: ignore[operator]
        problems["max_value"] = "must not be less than min_value"
    if _both(var.min_length, var.max_length) and var.min_length > var.max_length:  # type: ignore[operator]
        problems["max_length"] = "must not be less than min_length"
    return problems


def value_problem(var: VariableDef, value: Any) -> str | None:
    """Why ``value`` does not fit the variable, or None when it does (``None`` fits optional ones)."""
    if value is None:
        return "is required" if var.required else None
    check = _CHECKS[var.type]
    return check(var, value)


def template_problems(template: str, variables: list[str]) -> dict[str, str]:
    """Problems of a result template: placeholders that are not identifiers or not defined variables."""
    unknown, bad = [], []
    for name in PLACEHOLDER.findall(template):
        if not IDENTIFIER.match(name):
            bad.append(name)
        elif name not in variables:
            unknown.append(name)
    if bad:
        return {"result_template": f"placeholders must be variable names: {', '.join(map(repr, bad))}"}
    if unknown:
        names = ", ".join(sorted(set(unknown)))
        return {"result_template": f"uses variables the dataset does not define: {names}"}
    return {}


def template_variables(template: str) -> set[str]:
    return {name for name in PLACEHOLDER.findall(template) if IDENTIFIER.match(name)}


def _both(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None


def _check_string(var: VariableDef, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if var.choices and value not in var.choices:
        return f"must be one of: {', '.join(var.choices)}"
    return _length_problem(var, len(value), "characters")


def _check_number(var: VariableDef, value: Any) -> str | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if var.type == "integer" and not is_int:
        return f"must be an integer, not {type(value).__name__}"
    if not is_int and not (isinstance(value, float) and math.isfinite(value)):
        return f"must be a number, not {type(value).__name__}"
    if var.min_value is not None and value < var.min_value:
        return f"must be at least {var.min_value:g}"
    if var.max_value is not None and value > var.max_value:
        return f"must be at most {var.max_value:g}"
    if var.step_size is not None:
        steps = (value - (var.min_value or 0.0)) / var.step_size
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            return f"must be a multiple of step_size {var.step_size:g} from {var.min_value or 0.0:g}"
    return None


def _check_boolean(_var: VariableDef, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {type(value).__name__}"


def _check_array(var: VariableDef, value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be an array, not {type(value).__name__}"
    if var.choices:
        outside = [item for item in value if item not in var.choices]
        if outside:
            return f"items must be among: {', '.join(var.choices)}"
    return _length_problem(var, len(value), "items")


def _check_object(_var: VariableDef, value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, not {type(value).__name__}"


def _length_problem(var: VariableDef, size: int, unit: str) -> str | None:
    if var.min_length is not None and size < var.min_length:
        return f"must have at least {var.min_length} {unit}"
    if var.max_length is not None and size > var.max_length:
        return f"must have at most {var.max_length} {unit}"
    return None


_CHECKS = {
    "string": _check_string,
    "integer": _check_number,
    "float": _check_number,
    "boolean": _check_boolean,
    "array": _check_array,
    "object": _check_object,
}
