"""Reading a result template: ``{{name}}`` placeholders, the output format, and each placeholder's context.

The context says how a value is written at that spot, which decides its rendering, its regex and how it is
read back: a bare JSON value, the inside of a quoted JSON/YAML string, a CSV field (bare or quoted), XML
element text, or free text. Every rule a template breaks is a ``TemplateError`` with line and column.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class TemplateFormat(enum.StrEnum):
    JSON = "json"
    YAML = "yaml"
    XML = "xml"
    CSV = "csv"
    TEXT = "text"


class Context(enum.StrEnum):
    JSON_VALUE = "json_value"  # a whole JSON value; strings are written with their quotes
    JSON_STRING = "json_string"  # between the quotes of a JSON (or YAML double-quoted) string
    CSV_FIELD = "csv_field"  # a whole CSV field; strings are written quoted
    CSV_QUOTED = "csv_quoted"  # between the quotes of a quoted CSV field
    XML_TEXT = "xml_text"  # element text, XML-escaped
    TEXT = "text"  # free text, strings as they are


class TemplateError(ValueError):
    """A template that cannot be used; says what, where (1-based line and column) and which variable."""

    def __init__(
        self, message: str, *, line: int | None = None, column: int | None = None, variable: str | None = None
    ) -> None:
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(message + where)
        self.message = message
        self.line = line
        self.column = column
        self.variable = variable


@dataclass(frozen=True)
class Placeholder:
    """One ``{{name}}`` in a template: where it is and how its value is written there."""

    name: str
    start: int
    end: int
    line: int
    column: int
    context: Context = Context.TEXT


_OPEN, _CLOSE = "{{", "}}"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_LINE = re.compile(r"""\s*(?:-\s+)?(?:(?:[A-Za-z_][\w.-]*|"[^"\n]*"|'[^'\n]*')\s*:(?:\s|$)|-\s|-$|#)""")


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def find_placeholders(text: str) -> tuple[list[str], list[Placeholder]]:
    """Split ``text`` into literals and placeholders (``len(literals) == len(placeholders) + 1``)."""
    literals: list[str] = []
    found: list[Placeholder] = []
    cursor = 0
    while True:
        start = text.find(_OPEN, cursor)
        if start < 0:
            break
        while text.startswith("{", start + 2):  # `{{{x}}}`: the placeholder is the innermost `{{`
            start += 1
        end = text.find(_CLOSE, start + 2)
        newline = text.find("\n", start + 2)
        if end < 0 or (0 <= newline < end):
            line, column = position(text, start)
            raise TemplateError("unterminated placeholder: `{{` without `}}`", line=line, column=column)
        raw = text[start + 2 : end]
        name = raw.strip()
        line, column = position(text, start)
        if not name:
            raise TemplateError("empty placeholder `{{}}`", line=line, column=column)
        if not _NAME.fullmatch(name):
            raise TemplateError(
                f"`{{{{{raw}}}}}` is not a valid placeholder: a name is letters, digits and _",
                line=line,
                column=column,
                variable=name,
            )
        literals.append(text[cursor:start])
        found.append(Placeholder(name, start, end + 2, line, column))
        cursor = end + 2
    literals.append(text[cursor:])
    return literals, found


def detect_format(text: str) -> TemplateFormat:
    """Guess the format: JSON (starts with ``{``/``[``), XML (``<``), YAML (key: lines), CSV, else text."""
    body = text.strip()
    if (body.startswith("{") and not body.startswith(_OPEN)) or body.startswith("["):
        return TemplateFormat.JSON
    if body.startswith("<"):
        return TemplateFormat.XML
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if lines and all(_YAML_LINE.match(ln) for ln in lines) and any(":" in ln for ln in lines):
        return TemplateFormat.YAML
    commas = [_unquoted_commas(ln) for ln in lines]
    if len(lines) >= 2 and commas[0] > 0 and all(c == commas[0] for c in commas):
        return TemplateFormat.CSV
    return TemplateFormat.TEXT


def _unquoted_commas(line: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            count += 1
    return count


def assign_contexts(fmt: TemplateFormat, literals: list[str], found: list[Placeholder]) -> list[Placeholder]:
    """Each placeholder with its context; refuses spots where a value cannot be written unambiguously."""
    for i, ph in enumerate(found):
        if literals[i + 1] == "" and i + 1 < len(found):
            _fail(ph, "placeholders must be separated by some text (`{{a}}{{b}}` cannot be read back)")
    if fmt is TemplateFormat.JSON:
        return _json_contexts(literals, found)
    if fmt is TemplateFormat.YAML:
        return _yaml_contexts(literals, found)
    if fmt is TemplateFormat.CSV:
        return _csv_contexts(literals, found)
    if fmt is TemplateFormat.XML:
        return _xml_contexts(literals, found)
    return [_with(ph, Context.TEXT) for ph in found]


def _with(ph: Placeholder, context: Context) -> Placeholder:
    return Placeholder(ph.name, ph.start, ph.end, ph.line, ph.column, context)


def _fail(ph: Placeholder, message: str) -> None:
    raise TemplateError(message, line=ph.line, column=ph.column, variable=ph.name)


def _json_contexts(literals: list[str], found: list[Placeholder]) -> list[Placeholder]:
    out = []
    in_string = False
    for i, ph in enumerate(found):
        in_string, opened_at = _scan_json_string_state(literals[i], in_string)
        before, after = literals[i], literals[i + 1]
        if in_string:
            if opened_at != len(before) - 1 or not after.startswith('"'):
                _fail(ph, 'a placeholder inside a JSON string must be the whole string: "{{name}}"')
            out.append(_with(ph, Context.JSON_STRING))
        else:
            if after.lstrip().startswith(":"):
                _fail(ph, "a placeholder cannot be an object key")
            out.append(_with(ph, Context.JSON_VALUE))
    return out


def _scan_json_string_state(segment: str, in_string: bool) -> tuple[bool, int]:
    """String state after ``segment`` and the offset of the quote that opened the current string (-1)."""
    opened_at, escaped = -1, False
    for pos, ch in enumerate(segment):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string, opened_at = True, pos
    return in_string, opened_at


def _yaml_contexts(literals: list[str], found: list[Placeholder]) -> list[Placeholder]:
    out = []
    for i, ph in enumerate(found):
        line_before = literals[i].rsplit("\n", 1)[-1]
        after = literals[i + 1]
        if after.startswith(":"):
            _fail(ph, "a placeholder cannot be a mapping key")
        if line_before.endswith("'") and after.startswith("'"):
            _fail(ph, 'use double quotes around a placeholder in YAML ("{{name}}"), not single quotes')
        quoted = line_before.count('"') % 2 == 1
        if quoted and not (line_before.endswith('"') and after.startswith('"')):
            _fail(ph, 'a placeholder inside a quoted YAML string must be the whole string: "{{name}}"')
        out.append(_with(ph, Context.JSON_STRING if quoted else Context.JSON_VALUE))
    return out


def _csv_contexts(literals: list[str], found: list[Placeholder]) -> list[Placeholder]:
    out = []
    for i, ph in enumerate(found):
        before, after = literals[i], literals[i + 1]
        field_start = before == "" or before[-1] in ",\n"
        field_end = after == "" or after[0] in ",\r\n"
        if before.endswith('"') and after.startswith('"') and (len(before) == 1 or before[-2] in ",\n"):
            out.append(_with(ph, Context.CSV_QUOTED))
        elif field_start and field_end:
            out.append(_with(ph, Context.CSV_FIELD))
        else:
            _fail(ph, 'a placeholder in CSV must be a whole field: ...,{{name}},... or ...,"{{name}}",...')
    return out


def _xml_contexts(literals: list[str], found: list[Placeholder]) -> list[Placeholder]:
    out = []
    in_tag = False
    for i, ph in enumerate(found):
        for ch in literals[i]:
            if ch == "<":
                in_tag = True
            elif ch == ">":
                in_tag = False
        if in_tag:
            _fail(ph, "placeholders in XML go in element text, not inside a tag or an attribute")
        out.append(_with(ph, Context.XML_TEXT))
    return out
