"""Variable definitions, value checks and result-template checks: the one place the platform API asks.

The rules themselves live in ``finetune`` (``VariableSpec`` validates definitions and values,
``ResultTemplate.compile`` checks a template against its variables); this module turns stored rows into
specs and the ``finetune`` errors into per-field problems for the platform's 400/409 answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from finetune.template_syntax import TemplateError, find_placeholders
from finetune.templates import ResultTemplate
from finetune.variables import VariableError, VariableSpec, VariableValueError

# Which request field a definition error is about, by the first field name its message mentions.
_FIELDS = ("default_value", "step_size", "min_value", "max_value", "min_length", "max_length", "choices")


@dataclass(frozen=True)
class VariableDef:
    """A variable's definition as stored (``choices`` already split)."""

    name: str
    type: str
    required: bool = False
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    step_size: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    default_value: Any = None

    def spec(self) -> VariableSpec:
        return VariableSpec(
            name=self.name, type=self.type, required=self.required,  # type: ignore[arg-type]
            choices=list(self.choices) if self.choices else None, min_value=self.min_value,
            max_value=self.max_value, step_size=self.step_size, min_length=self.min_length,
            max_length=self.max_length, default_value=self.default_value,
        )  # fmt: skip


def definition(row: Any) -> VariableDef:
    """The definition of a stored ``Variable`` row."""
    return VariableDef(
        name=row.name, type=row.type, required=row.required, choices=split_choices(row.choices),
        min_value=row.min_value, max_value=row.max_value, step_size=row.step_size,
        min_length=row.min_length, max_length=row.max_length, default_value=row.default_value,
    )  # fmt: skip


def split_choices(choices: str | list[str] | None) -> tuple[str, ...]:
    """Ximilar's comma-separated ``choices`` (a JSON list is accepted too) as a tuple."""
    if choices is None:
        return ()
    items = choices.split(",") if isinstance(choices, str) else choices
    return tuple(str(item).strip() for item in items if str(item).strip())


def definition_problems(var: VariableDef) -> dict[str, str]:
    """The problem of a definition, by the field it concerns (empty when the definition is sound)."""
    try:
        var.spec().validate_definition()
    except VariableError as exc:
        message = exc.message.removeprefix(f"variable `{var.name}`: ")
        return {_field_of(message, var.name): message}
    return {}


def checked_value(var: VariableDef, value: Any) -> Any:
    """``value`` in canonical form (floats on the step grid); ``ValueError`` says which rule it breaks."""
    try:
        return var.spec().check(value)
    except VariableValueError as exc:
        raise ValueError(exc.message.removeprefix(f"variable `{var.name}`: ")) from None


def value_problem(var: VariableDef, value: Any) -> str | None:
    try:
        checked_value(var, value)
    except ValueError as exc:
        return str(exc)
    return None


def template_problems(template: str, variables: Iterable[VariableDef]) -> dict[str, str]:
    """Why a dataset's ``result_template`` does not fit its variables (empty: it does, or no template)."""
    if not template.strip():
        return {}
    try:
        ResultTemplate.compile(template, [v.spec() for v in variables])
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
