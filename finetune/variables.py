"""Typed variables of a result template (Ximilar's dataset variables): definition, value rules, JSON Schema.

A variable has one of six types (string, integer, float, boolean, array, object) and optional rules:
``choices``, ``min_value``/``max_value``/``step_size`` (numbers), ``min_length``/``max_length`` (characters of
a string, items of an array), ``required`` and ``default_value``. ``VariableSpec.check`` returns the value in
its canonical form (floats snapped to the step grid, ints widened to float) or raises ``VariableValueError``
naming the rule that broke. Strings may not hold control characters other than tab, newline and carriage
return, because every output format must be able to carry them and parse them back unchanged.

Arrays hold JSON scalars (string, number, boolean, null), or, with ``choices``, values from the choices.
Objects are JSON objects whose values are scalars, arrays of scalars or objects of those (two levels), so
that every output format can constrain them with a finite regular expression.
"""

from __future__ import annotations

import enum
import keyword
import math
import re
import unicodedata
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

MAX_OBJECT_DEPTH = 2
# Numbers a template can carry when its variable sets no bounds, and decimals kept per float; the same
# limits bound generated numbers (finetune.numeric_regex), so a model cannot write digits forever.
NUMBER_LIMIT = 10**15
FRACTION_DIGITS = 6
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class VariableType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class NamesVariable(ValueError):
    """An error whose ``message`` may concern one variable, named by ``variable``."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.variable = variable


class VariableError(NamesVariable):
    """Base of variable errors; ``variable`` names the variable concerned."""


class VariableDefinitionError(VariableError):
    """A variable's definition is inconsistent (min above max, choices of the wrong type, bad name...)."""


class VariableValueError(VariableError):
    """A value breaks its variable's rules; the message says which rule."""


def validate_variable_name(name: str) -> str:
    """Return ``name`` if it is a valid identifier usable as ``{{name}}``; raise otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise VariableDefinitionError(
            f"variable name {name!r} is not a valid identifier (letters, digits and _, not starting "
            "with a digit)",
            variable=str(name),
        )
    if keyword.iskeyword(name):
        raise VariableDefinitionError(f"variable name {name!r} is a reserved word", variable=name)
    return name


def forbidden_control_char(text: str) -> str | None:
    """The first control character other than tab, newline and carriage return in ``text``, if any."""
    for ch in text:
        if ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def canonical_float_text(value: float) -> str:
    """A float as decimal text without exponent that reads back the same (``1e-05`` -> ``0.00001``)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text


Number = int | float


def _means(text: str) -> Meta:
    return Meta(description=text)


class VariableSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One variable of a result template, with the rules its values obey.

    Its fields are the one definition of a variable: the platform API's wire types, the database row's
    conversion and the trainer's specs are derived from them (``DEFINITION_FIELDS``), and each field's
    ``Meta`` says what it means (the API documents it with that text).
    """

    name: Annotated[str, _means("Variable name, used as {{name}} in the result template (an identifier).")]
    type: Annotated[VariableType, _means("Value type: string, integer, float, boolean, array or object.")]
    required: Annotated[bool, _means("Whether every sample must have a value.")] = True
    description: Annotated[str, _means("Human-readable description.")] = ""
    choices: Annotated[
        list[Any] | None,
        _means("Allowed values (of the items, for an array); Ximilar's comma-separated string is accepted."),
    ] = None
    min_value: Annotated[Number | None, _means("Minimum value (integer and float).")] = None
    max_value: Annotated[Number | None, _means("Maximum value (integer and float).")] = None
    step_size: Annotated[
        Number | None, _means("Values are min_value (or 0) plus a multiple of this (integer and float).")
    ] = None
    min_length: Annotated[int | None, _means("Minimum characters of a string, items of an array.")] = None
    max_length: Annotated[int | None, _means("Maximum characters of a string, items of an array.")] = None
    default_value: Annotated[Any, _means("The value a sample without one is given.")] = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, VariableType):  # built in Python with a plain string
            try:
                self.type = VariableType(self.type)
            except ValueError:
                allowed = ", ".join(t.value for t in VariableType)
                raise VariableDefinitionError(
                    f"variable `{self.name}`: unknown type {self.type!r} (one of {allowed})", self.name
                ) from None
        if isinstance(self.choices, str):  # Ximilar sends choices as one comma-separated string
            self.choices = [c.strip() for c in self.choices.split(",") if c.strip()]

    # ------------------------------------------------------------ definition

    def validate_definition(self) -> VariableSpec:
        """Raise ``VariableDefinitionError`` when the rules contradict each other or the type; else self."""
        validate_variable_name(self.name)
        kind = self.type
        numeric = kind in (VariableType.INTEGER, VariableType.FLOAT)
        if not numeric and (self.min_value, self.max_value, self.step_size) != (None, None, None):
            self._bad(f"min_value/max_value/step_size apply to integer and float, not {kind}")
        if kind not in (VariableType.STRING, VariableType.ARRAY) and (self.min_length, self.max_length) != (
            None,
            None,
        ):
            self._bad(f"min_length/max_length apply to string and array, not {kind}")
        for field in ("min_value", "max_value", "step_size"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                self._bad(f"{field} must be a finite number, got {value!r}")
        if kind is VariableType.INTEGER:
            for field in ("min_value", "max_value", "step_size"):
                value = getattr(self, field)
                if value is not None and value != int(value):
                    self._bad(f"{field} of an integer variable must be a whole number, got {value!r}")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            self._bad(f"min_value {self.min_value} is greater than max_value {self.max_value}")
        if self.step_size is not None and self.step_size <= 0:
            self._bad(f"step_size must be positive, got {self.step_size}")
        if self.step_size is not None and _decimals(self.step_size) > FRACTION_DIGITS:
            self._bad(f"step_size {self.step_size} has more than {FRACTION_DIGITS} decimals")
        for field in ("min_length", "max_length"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or value < 0):
                self._bad(f"{field} must be a non-negative integer, got {value!r}")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            self._bad(f"min_length {self.min_length} is greater than max_length {self.max_length}")
        self._validate_choices()
        if self.default_value is not None:
            try:
                self.check(self.default_value)
            except VariableValueError as exc:
                self._bad(f"default_value is invalid: {exc.message}")
        return self

    def _validate_choices(self) -> None:
        if self.choices is None:
            return
        if self.type in (VariableType.BOOLEAN, VariableType.OBJECT):
            self._bad(f"choices are not allowed for {self.type} variables")
        if not self.choices:
            self._bad("choices must not be empty")
        item_type = VariableType.STRING if self.type is VariableType.ARRAY else self.type
        scalar = VariableSpec(name=self.name, type=item_type)
        for choice in self.choices:
            if self.type is VariableType.ARRAY and not isinstance(choice, str | int | float):
                self._bad(f"choice {choice!r} of an array variable must be a string or a number")
            if self.type is not VariableType.ARRAY:
                try:
                    scalar.check(choice)
                except VariableValueError as exc:
                    self._bad(f"choice {choice!r} does not fit type {self.type}: {exc.message}")
            elif isinstance(choice, str) and forbidden_control_char(choice) is not None:
                self._bad(f"choice {choice!r} contains a control character")
        if len({msgspec.json.encode(c) for c in self.choices}) != len(self.choices):
            self._bad("choices contain duplicates")
        rules = VariableSpec(
            name=self.name,
            type=self.type,
            min_value=self.min_value,
            max_value=self.max_value,
            step_size=self.step_size,
            min_length=self.min_length if self.type is VariableType.STRING else None,
            max_length=self.max_length if self.type is VariableType.STRING else None,
        )
        if self.type is not VariableType.ARRAY:
            for choice in self.choices:
                try:
                    rules.check(choice)
                except VariableValueError as exc:
                    self._bad(f"choice {choice!r} breaks the variable's own rules: {exc.message}")

    def _bad(self, message: str) -> None:
        raise VariableDefinitionError(f"variable `{self.name}`: {message}", variable=self.name)

    # ------------------------------------------------------------ values

    def check(self, value: Any) -> Any:
        """The value in canonical form if it obeys every rule; else ``VariableValueError`` naming the rule."""
        if value is None:
            if self.required:
                self._fail("is required but missing")
            return None
        checker = _CHECKERS[self.type]
        value = checker(self, value)
        if self.choices is not None and self.type is not VariableType.ARRAY and value not in self.choices:
            self._fail(f"{value!r} is not one of the choices {self.choices}")
        return value

    def _fail(self, message: str) -> Any:
        raise VariableValueError(f"variable `{self.name}`: {message}", variable=self.name)

    def _check_string(self, value: Any) -> str:
        if not isinstance(value, str):
            self._fail(f"expected a string, got {type(value).__name__}")
        bad = forbidden_control_char(value)
        if bad is not None:
            self._fail(f"contains the control character {bad!r}, which is not allowed")
        self._check_length(len(value), "characters")
        return str(value)

    def _check_length(self, size: int, unit: str) -> None:
        if self.min_length is not None and size < self.min_length:
            self._fail(f"has {size} {unit}, fewer than min_length {self.min_length}")
        if self.max_length is not None and size > self.max_length:
            self._fail(f"has {size} {unit}, more than max_length {self.max_length}")

    def _check_integer(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self._fail(f"expected an integer, got {value!r}")
        self._check_range(value)
        self._check_limit(value)
        if self.step_size is not None:
            base = int(self.min_value or 0)
            if (value - base) % int(self.step_size):
                self._fail(f"{value} is not {base} plus a multiple of step_size {int(self.step_size)}")
        return int(value)

    def _check_float(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(f"expected a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number):
            self._fail(f"{number} is not a finite number")
        self._check_range(number)
        self._check_limit(number)
        number = self._snap(number) if self.step_size is not None else round(number, FRACTION_DIGITS)
        return number + 0.0 if number else 0.0  # no negative zero: "-0.0" would break range regexes

    def _check_limit(self, number: Number) -> None:
        """Without explicit bounds, a number must stay below ``NUMBER_LIMIT`` in size."""
        if self.min_value is None and number <= -NUMBER_LIMIT:
            self._fail(f"{number} is below -{NUMBER_LIMIT} (set min_value to allow more)")
        if self.max_value is None and number >= NUMBER_LIMIT:
            self._fail(f"{number} is above {NUMBER_LIMIT} (set max_value to allow more)")

    def _snap(self, number: float) -> float:
        base = Decimal(repr(float(self.min_value or 0)))
        step = Decimal(repr(float(self.step_size or 1)))
        exact = Decimal(repr(number))
        k = ((exact - base) / step).to_integral_value()
        snapped = base + k * step
        if abs(snapped - exact) > Decimal("1e-9") * max(Decimal(1), abs(exact)):
            self._fail(f"{number} is not {base} plus a multiple of step_size {step}")
        return float(snapped)

    def _check_range(self, number: Number) -> None:
        if self.min_value is not None and number < self.min_value:
            self._fail(f"{number} is below min_value {self.min_value}")
        if self.max_value is not None and number > self.max_value:
            self._fail(f"{number} is above max_value {self.max_value}")

    def _check_boolean(self, value: Any) -> bool:
        if not isinstance(value, bool):
            self._fail(f"expected true or false, got {value!r}")
        return bool(value)

    def _check_array(self, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            self._fail(f"expected an array, got {type(value).__name__}")
        items = [self._check_scalar(item, f"item {i}") for i, item in enumerate(value)]
        self._check_length(len(items), "items")
        if self.choices is not None:
            for i, item in enumerate(items):
                if item not in self.choices or isinstance(item, bool):
                    self._fail(f"item {i} ({item!r}) is not one of the choices {self.choices}")
        return items

    def _check_object(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self._fail(f"expected an object, got {type(value).__name__}")
        return self._check_json_object(value, "", MAX_OBJECT_DEPTH)

    def _check_json_object(self, value: dict[Any, Any], where: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or forbidden_control_char(key) is not None:
                self._fail(f"key {key!r}{where} must be a string without control characters")
            path = f" at `{where.strip(' at`')}.{key}`" if where else f" at `{key}`"
            if isinstance(item, dict):
                if depth <= 1:
                    self._fail(f"object nested deeper than {MAX_OBJECT_DEPTH} levels{path}")
                out[key] = self._check_json_object(item, path, depth - 1)
            elif isinstance(item, list | tuple):
                out[key] = [self._check_scalar(x, f"item {i}{path}") for i, x in enumerate(item)]
            else:
                out[key] = self._check_scalar(item, path.strip())
        return out

    def _check_scalar(self, item: Any, where: str) -> Any:
        if item is None or isinstance(item, bool):
            return item
        if isinstance(item, int | float):
            if not math.isfinite(item) or abs(item) >= NUMBER_LIMIT:
                self._fail(f"{where}: {item} is not a finite number below {NUMBER_LIMIT} in size")
            if isinstance(item, int):
                return item
            item = round(item, FRACTION_DIGITS)
            return item + 0.0 if item else 0.0
        if isinstance(item, str):
            bad = forbidden_control_char(item)
            if bad is not None:
                self._fail(f"{where}: contains the control character {bad!r}")
            return item
        return self._fail(
            f"{where}: {type(item).__name__} is not allowed here (string, number, boolean, null)"
        )

    # ------------------------------------------------------------ schema

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of one (present) value: type, choices, bounds and lengths."""
        kind = self.type
        schema: dict[str, Any]
        if kind is VariableType.STRING:
            schema = {"type": "string"}
            _put(schema, minLength=self.min_length, maxLength=self.max_length)
        elif kind in (VariableType.INTEGER, VariableType.FLOAT):
            schema = {"type": "integer" if kind is VariableType.INTEGER else "number"}
            _put(schema, minimum=self.min_value, maximum=self.max_value, multipleOf=self.step_size)
            if self.step_size is not None and self.min_value not in (None, 0):
                schema.pop("multipleOf")  # the grid starts at min_value; checked by `check`, not the schema
        elif kind is VariableType.BOOLEAN:
            schema = {"type": "boolean"}
        elif kind is VariableType.ARRAY:
            items = {"enum": list(self.choices)} if self.choices else {"type": list(_SCALAR_TYPES)}
            schema = {"type": "array", "items": items}
            _put(schema, minItems=self.min_length, maxItems=self.max_length)
        else:
            schema = {"type": "object"}
        if self.choices is not None and kind is not VariableType.ARRAY:
            schema = {"enum": list(self.choices)}
        if self.description:
            schema["description"] = self.description
        return schema


DEFINITION_FIELDS: tuple[str, ...] = VariableSpec.__struct_fields__


def definition_of(record: Any) -> dict[str, Any]:
    """The definition fields of any object that carries them as attributes (a database row, a request body).

    ``VariableSpec(**definition_of(row))`` is the spec of a stored variable: Ximilar's comma-separated
    ``choices`` are split by ``VariableSpec`` itself.
    """
    return {name: getattr(record, name) for name in DEFINITION_FIELDS}


_SCALAR_TYPES = ("string", "number", "boolean", "null")

_CHECKERS = {
    VariableType.STRING: VariableSpec._check_string,
    VariableType.INTEGER: VariableSpec._check_integer,
    VariableType.FLOAT: VariableSpec._check_float,
    VariableType.BOOLEAN: VariableSpec._check_boolean,
    VariableType.ARRAY: VariableSpec._check_array,
    VariableType.OBJECT: VariableSpec._check_object,
}


def _decimals(number: Number) -> int:
    exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _put(schema: dict[str, Any], **values: Any) -> None:
    schema.update({k: v for k, v in values.items() if v is not None})
