"""Result templates: text with ``{{variable}}`` placeholders -> training target, constraint and parser.

``ResultTemplate.compile(text, variables, format=None)`` reads the template (JSON, YAML, XML, CSV or free
text; guessed when ``format`` is None) and checks it against the variables. Then:

- ``render(values)`` writes the training target for a sample's values;
- ``constraint()`` is the generation constraint: a JSON Schema for a JSON template, else a regex built from
  each variable's type, choices, range, step, lengths and required/default; ``regex()`` is always a regex
  (for JSON, the schema compiled by outlines_core plus numeric bounds, see ``finetune.schema_regex``);
- ``parse(text)`` reads generated text back into typed values, each checked against its variable.

Every text that ``regex()`` matches parses, and every rendered value matches ``regex()``; the property tests
in ``tests/unit/test_templates_properties.py`` hold the module to that. Importing this module does not
import torch (the gateway uses it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finetune.schema_regex import SchemaError, compile_json_schema
from finetune.template_syntax import (
    Context,
    Placeholder,
    TemplateError,
    TemplateFormat,
    assign_contexts,
    detect_format,
    find_placeholders,
    position,
)
from finetune.template_values import escape_literal, optional_regex, read_value, render_value, value_regex
from finetune.variables import NamesVariable, VariableError, VariableSpec, VariableType, VariableValueError

__all__ = [
    "Placeholder",
    "ResultTemplate",
    "TemplateError",
    "TemplateFormat",
    "TemplateParseError",
]

_SENTINEL = re.compile("\ue000([0-9]+)\ue001")
_WHITESPACE_RUN = re.compile(r"[ \t\n\r]+")
_QUOTED_CONTEXTS = (Context.JSON_STRING, Context.CSV_QUOTED)
_DIGITS = "0123456789"


class TemplateParseError(NamesVariable):
    """Generated text that does not read back into valid values; ``variable`` names the one at fault."""


@dataclass(frozen=True, eq=False)
class ResultTemplate:
    """A compiled result template; build it with ``ResultTemplate.compile``."""

    text: str
    format: TemplateFormat
    variables: Mapping[str, VariableSpec]
    placeholders: tuple[Placeholder, ...]
    literals: tuple[str, ...]
    _regex: str
    _schema: dict[str, Any] | None = None
    _paths: tuple[tuple[str | int, ...], ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    # ------------------------------------------------------------ compiling

    @classmethod
    def compile(
        cls,
        text: str,
        variables: Iterable[VariableSpec] | Mapping[str, VariableSpec],
        format: TemplateFormat | str | None = None,
    ) -> ResultTemplate:
        """Read and check a template; ``TemplateError`` says what is wrong, where, and which variable."""
        if not text.strip():
            raise TemplateError("the template is empty")
        specs = _variables_by_name(variables)
        literals, found = find_placeholders(text)
        _check_names(found, specs)
        fmt = _format(format, text)
        placed = assign_contexts(fmt, literals, found)
        _check_types(placed, literals, specs)
        if fmt is TemplateFormat.JSON:
            schema, paths = _json_schema_of(text, literals, placed, specs)
            regex = _json_regex(schema, literals)
            return cls(text, fmt, specs, tuple(placed), tuple(literals), regex, schema, paths)
        regex, pattern = _plain_regex(literals, placed, specs)
        return cls(text, fmt, specs, tuple(placed), tuple(literals), regex, _pattern=pattern)

    # ------------------------------------------------------------ using

    def constraint(self) -> dict[str, Any] | str:
        """The generation constraint: a JSON Schema (JSON templates) or a regex (other formats)."""
        return json.loads(json.dumps(self._schema)) if self._schema is not None else self._regex

    def regex(self) -> str:
        """The constraint as a regex, for every format (what the gateway sends to the engine)."""
        return self._regex

    def render(self, values: Mapping[str, Any]) -> str:
        """The training target for ``values``; ``VariableValueError`` for a value that breaks a rule."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise VariableValueError(f"unknown variable `{unknown[0]}`", variable=unknown[0])
        out = [self.literals[0]]
        for ph, literal in zip(self.placeholders, self.literals[1:], strict=True):
            var = self.variables[ph.name]
            value = values.get(ph.name)
            value = var.check(var.default_value if value is None else value)
            text = render_value(var, ph.context, value)
            self._check_terminator(ph, var, text)
            out += [text, literal]
        return "".join(out)

    def _check_terminator(self, ph: Placeholder, var: VariableSpec, text: str) -> None:
        """In free text and XML a string cannot hold the character that ends its placeholder."""
        if ph.context not in (Context.TEXT, Context.XML_TEXT) or var.type is not VariableType.STRING:
            return
        index = self.placeholders.index(ph)
        stop = _terminator(self.literals, index, len(self.placeholders))
        if stop and var.choices is None and stop in text:
            raise VariableValueError(
                f"variable `{ph.name}`: the value contains {stop!r}, which ends this placeholder in the "
                "template; change the template's text after the placeholder or the value",
                variable=ph.name,
            )

    def parse(self, text: str) -> dict[str, Any]:
        """Typed values of the template's variables read from ``text``; ``TemplateParseError`` if not."""
        raw = self._read_json(text) if self._schema is not None else self._read_plain(text)
        return {ph.name: self._finish(ph, raw[ph.name]) for ph in self.placeholders}

    def value_spans(self, text: str) -> dict[str, tuple[int, int]]:
        """Character span of each placeholder's value in ``text`` (non-JSON formats; {} if no match)."""
        match = self._pattern.fullmatch(text) if self._pattern is not None else None
        if match is None:
            return {}
        return {ph.name: match.span(f"v{i}") for i, ph in enumerate(self.placeholders)}

    def _finish(self, ph: Placeholder, value: Any) -> Any:
        var = self.variables[ph.name]
        if value is None:
            value = var.default_value
        try:
            return var.check(value)
        except VariableValueError as exc:
            raise TemplateParseError(exc.message, variable=ph.name) from None

    def _read_plain(self, text: str) -> dict[str, Any]:
        assert self._pattern is not None
        match = self._pattern.fullmatch(text)
        if match is None:
            raise TemplateParseError(self._mismatch(text))
        out: dict[str, Any] = {}
        for i, ph in enumerate(self.placeholders):
            raw = match.group(f"v{i}") or ""
            try:
                out[ph.name] = read_value(self.variables[ph.name], ph.context, raw)
            except ValueError as exc:
                raise TemplateParseError(
                    f"variable `{ph.name}`: cannot read {raw!r}: {exc}", ph.name
                ) from None
        return out

    def _mismatch(self, text: str) -> str:
        """Say where the text leaves the template: the first literal part that no longer follows."""
        assert self._pattern is not None
        pieces = [escape_literal(self.literals[0])]
        if not re.match(pieces[0], text):
            return f"the text does not start with {self.literals[0][:40]!r} as the template does"
        for i, ph in enumerate(self.placeholders):
            var = self.variables[ph.name]
            regex = value_regex(var, ph.context, _terminator(self.literals, i, len(self.placeholders)))
            pieces.append(regex if var.required else optional_regex(regex, ph.context))
            pieces.append(escape_literal(self.literals[i + 1]))
            if not re.match("".join(pieces), text):
                return f"no valid value for `{ph.name}` followed by {self.literals[i + 1][:40]!r}"
        return "the text goes on after the end of the template"

    def _read_json(self, text: str) -> dict[str, Any]:
        try:
            document = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise TemplateParseError(f"the text is not valid JSON: {exc}") from None
        from jsonschema import Draft202012Validator

        error = next(iter(Draft202012Validator(self._schema or {}).iter_errors(document)), None)
        if error is not None:
            path = tuple(error.absolute_path)
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            names = [ph.name for ph, at in zip(self.placeholders, self._paths, strict=True) if at == path]
            variable = names[0] if names else None
            about = f" (variable `{variable}`)" if variable else ""
            message = f"the JSON does not fit the template at {where}{about}: {error.message}"
            raise TemplateParseError(message, variable=variable)
        out: dict[str, Any] = {}
        for ph, path in zip(self.placeholders, self._paths, strict=True):
            node: Any = document
            for step in path:
                node = node[step]
            var = self.variables[ph.name]
            empty_means_absent = ph.context is Context.JSON_STRING and node == ""
            out[ph.name] = None if empty_means_absent and _empty_is_absent(var) else node
        return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _empty_is_absent(var: VariableSpec) -> bool:
    return bool(var.min_length) or (var.choices is not None and "" not in var.choices)


# ---------------------------------------------------------------- compile steps


def _variables_by_name(
    variables: Iterable[VariableSpec] | Mapping[str, VariableSpec],
) -> dict[str, VariableSpec]:
    specs = list(variables.values()) if isinstance(variables, Mapping) else list(variables)
    out: dict[str, VariableSpec] = {}
    for spec in specs:
        try:
            spec.validate_definition()
        except VariableError as exc:
            raise TemplateError(exc.message, variable=exc.variable) from None
        if spec.name in out:
            raise TemplateError(f"variable `{spec.name}` is defined twice", variable=spec.name)
        out[spec.name] = spec
    return out


def _check_names(found: list[Placeholder], specs: Mapping[str, VariableSpec]) -> None:
    seen: set[str] = set()
    for ph in found:
        if ph.name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise TemplateError(
                f"unknown variable `{ph.name}` (defined: {known})",
                line=ph.line,
                column=ph.column,
                variable=ph.name,
            )
        if ph.name in seen:
            raise TemplateError(
                f"variable `{ph.name}` appears twice; each variable may appear once",
                line=ph.line,
                column=ph.column,
                variable=ph.name,
            )
        seen.add(ph.name)
    for name, spec in specs.items():
        if spec.required and name not in seen:
            raise TemplateError(f"required variable `{name}` does not appear in the template", variable=name)


def _format(format: TemplateFormat | str | None, text: str) -> TemplateFormat:
    if format is None:
        return detect_format(text)
    try:
        return TemplateFormat(str(format).lower())
    except ValueError:
        allowed = ", ".join(f.value for f in TemplateFormat)
        raise TemplateError(f"unknown template format {format!r} (one of {allowed})") from None


def _check_types(placed: list[Placeholder], literals: list[str], specs: Mapping[str, VariableSpec]) -> None:
    for i, ph in enumerate(placed):
        var = specs[ph.name]
        if ph.context in _QUOTED_CONTEXTS and var.type is not VariableType.STRING:
            raise TemplateError(
                f"variable `{ph.name}` is {var.type.value}: write it without quotes around the placeholder",
                line=ph.line,
                column=ph.column,
                variable=ph.name,
            )
        after = literals[i + 1]
        numeric = var.type in (VariableType.INTEGER, VariableType.FLOAT)
        if numeric and ph.context in (Context.TEXT, Context.XML_TEXT) and _continues_number(after):
            raise TemplateError(
                f"`{{{{{ph.name}}}}}` is followed by {after[:1]!r}, which could be read as part of "
                "the number",
                line=ph.line,
                column=ph.column,
                variable=ph.name,
            )


def _continues_number(after: str) -> bool:
    """Whether the text after a number could be read as more of it (a digit, or a point and a digit)."""
    first, second = after[:1], after[1:2]
    return (first != "" and first in _DIGITS) or (first == "." and second != "" and second in _DIGITS)


def _terminator(literals: tuple[str, ...] | list[str], index: int, count: int) -> str | None:
    """First character after placeholder ``index``; None for the last one (the end anchors it)."""
    return None if index == count - 1 else literals[index + 1][:1] or None


def _plain_regex(
    literals: list[str], placed: list[Placeholder], specs: Mapping[str, VariableSpec]
) -> tuple[str, re.Pattern[str]]:
    constraint, named = [escape_literal(literals[0])], [escape_literal(literals[0])]
    for i, ph in enumerate(placed):
        var = specs[ph.name]
        regex = value_regex(var, ph.context, _terminator(literals, i, len(placed)))
        if not var.required:
            regex = optional_regex(regex, ph.context)
        constraint += [regex, escape_literal(literals[i + 1])]
        named += [f"(?P<v{i}>{regex})", escape_literal(literals[i + 1])]
    return "".join(constraint), re.compile("".join(named), re.DOTALL)


# ---------------------------------------------------------------- JSON templates


def _json_schema_of(
    text: str, literals: list[str], placed: list[Placeholder], specs: Mapping[str, VariableSpec]
) -> tuple[dict[str, Any], tuple[tuple[str | int, ...], ...]]:
    """Fill each placeholder with a sentinel, read the JSON, and build the schema around the variables."""
    filled, spans = [literals[0]], [(0, 0)]  # (offset in filled text, offset in template) per literal
    length = len(literals[0])
    for i, ph in enumerate(placed):
        sentinel = f"\ue000{i}\ue001"
        piece = sentinel if ph.context is Context.JSON_STRING else f'"{sentinel}"'
        filled.append(piece)
        length += len(piece)
        spans.append((length, ph.end))
        filled.append(literals[i + 1])
        length += len(literals[i + 1])
    try:
        document = json.loads("".join(filled), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        offset = _template_offset(exc.pos, spans)
        line, column = position(text, offset)
        raise TemplateError(f"not valid JSON once filled: {exc.msg}", line=line, column=column) from None
    paths: dict[int, tuple[str | int, ...]] = {}
    schema = _schema_node(document, (), placed, specs, paths)
    return schema, tuple(paths[i] for i in range(len(placed)))


def _template_offset(pos: int, spans: list[tuple[int, int]]) -> int:
    best = (0, 0)
    for filled_at, template_at in spans:
        if filled_at <= pos:
            best = (filled_at, template_at)
    return best[1] + (pos - best[0])


def _schema_node(
    node: Any,
    path: tuple[str | int, ...],
    placed: list[Placeholder],
    specs: Mapping[str, VariableSpec],
    paths: dict[int, tuple[str | int, ...]],
) -> dict[str, Any]:
    if isinstance(node, dict):
        for key in node:
            if _SENTINEL.search(key):
                raise TemplateError("a placeholder cannot be an object key")
        properties = {k: _schema_node(v, (*path, k), placed, specs, paths) for k, v in node.items()}
        return {
            "type": "object",
            "properties": properties,
            "required": list(node),
            "additionalProperties": False,
        }
    if isinstance(node, list):
        items = [_schema_node(v, (*path, i), placed, specs, paths) for i, v in enumerate(node)]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if isinstance(node, str):
        match = _SENTINEL.fullmatch(node)
        if match is None:
            return {"const": node}
        index = int(match.group(1))
        paths[index] = path
        return _placeholder_schema(specs[placed[index].name], placed[index].context)
    return {"const": node}


def _placeholder_schema(var: VariableSpec, context: Context) -> dict[str, Any]:
    schema = var.json_schema()
    schema.pop("description", None)
    if var.required:
        return schema
    if context is Context.JSON_VALUE:
        return {"anyOf": [schema, {"type": "null"}]}
    return {"anyOf": [schema, {"const": ""}]} if _empty_is_absent(var) else schema


def _json_regex(schema: dict[str, Any], literals: list[str]) -> str:
    """Compile the schema, letting whitespace take the shapes the template itself uses (bounded)."""
    runs = [run for lit in literals for run in _WHITESPACE_RUN.findall(lit)]
    longest = max((len(r) for r in runs), default=1)
    chars = sorted({" ", *"".join(runs)})
    char_class = "".join({"\n": r"\n", "\t": r"\t", "\r": r"\r"}.get(c, c) for c in chars)
    whitespace = f"[{char_class}]{{0,{max(longest, 1)}}}"
    try:
        body = compile_json_schema(schema, whitespace, checked=True, printable_strings=True)
    except SchemaError as exc:
        raise TemplateError(f"cannot build a constraint for this template: {exc.message}") from None
    head = literals[0][: len(literals[0]) - len(literals[0].lstrip())]
    tail = literals[-1][len(literals[-1].rstrip()) :]
    return escape_literal(head) + body + escape_literal(tail)
