"""Variable definitions, value checks and result-template checks: the one place the platform API asks.

The rules themselves live in ``finetune``: ``VariableSpec`` is a variable's one definition (it validates
definitions and values), ``ResultTemplate.compile`` checks a template against its variables. This module
turns stored rows into specs and back, reads Ximilar's ``choices`` leniently and turns the ``finetune``
errors into per-field problems for the platform's 400/409 answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from finetune.template_syntax import TemplateError, find_placeholders
from finetune.templates import ResultTemplate
from finetune.variables import VariableError, VariableSpec, VariableValueError, definition_of

# Which request field a definition error is about, by the first field name its message mentions.
_FIELDS = ("default_value", "step_size", "min_value", "max_value", "min_length", "max_length", "choices")


def definition(row: Any) -> VariableSpec:
    """The definition of a stored ``Variable`` row (or of anything with the definition's attributes)."""
    return VariableSpec(**definition_of(row))


def row_values(var: VariableSpec) -> dict[str, Any]:
    """A definition as the ``Variable`` row stores it: the type's name, ``choices`` joined with commas."""
    choices = ",".join(str(choice) for choice in var.choices) if var.choices else None
    return {**definition_of(var), "type": var.type.value, "choices": choices}


def stored_choices(choices: str | list[str] | None) -> str | None:
    """Ximilar's ``choices`` as stored: comma-separated, items stripped, empty ones dropped; None for none.

    A request may send the comma-separated string or a JSON list of strings.
    """
    if choices is None:
        return None
    items = choices.split(",") if isinstance(choices, str) else choices
    return ",".join(str(item).strip() for item in items if str(item).strip()) or None


def definition_problems(var: VariableSpec) -> dict[str, str]:
    """The problem of a definition, by the field it concerns (empty when the definition is sound)."""
    try:
        var.validate_definition()
    except VariableError as exc:
        message = exc.message.removeprefix(f"variable `{var.name}`: ")
        return {_field_of(message, var.name): message}
    return {}


def checked_value(var: VariableSpec, value: Any) -> Any:
    """``value`` in canonical form (floats on the step grid); ``ValueError`` says which rule it breaks."""
    try:
        return var.check(value)
    except VariableValueError as exc:
        raise ValueError(exc.message.removeprefix(f"variable `{var.name}`: ")) from None


def value_problem(var: VariableSpec, value: Any) -> str | None:
    try:
        checked_value(var, value)
    except ValueError as exc:
        return str(exc)
    return None


def template_problems(
    template: str, variables: Iterable[VariableSpec], *, allow_missing: bool = False
) -> dict[str, str]:
    """Why a dataset's ``result_template`` does not fit its variables (empty: it does, or no template).

    ``allow_missing``: a template may name variables that are not defined yet (a dataset must exist before
    its variables can be created); only its syntax is checked then, and the whole template once they exist.
    """
    if not template.strip():
        return {}
    variables = list(variables)
    if allow_missing:
        try:
            names = {placeholder.name for placeholder in find_placeholders(template)[1]}
        except TemplateError as exc:
            return {"result_template": str(exc)}
        if names - {v.name for v in variables}:
            return {}
    try:
        ResultTemplate.compile(template, variables)
    except (TemplateError, VariableError) as exc:
        return {"result_template": str(exc)}
    return {}


def template_variables(template: str) -> set[str]:
    """Names the template's placeholders use (nothing when it does not parse)."""
    try:
        return {placeholder.name for placeholder in find_placeholders(template)[1]}
    except TemplateError:
        return set()


def _field_of(message: str, name: str) -> str:
    if "name" in message.split(":", 1)[0] or message.startswith(("`", repr(name))) or "identifier" in message:
        return "name"
    found = [(message.find(field), field) for field in _FIELDS if field in message]
    return min(found)[1] if found else "type"
