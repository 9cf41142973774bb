"""Every way a template, a variable or a generated answer can be wrong gives a precise error."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from finetune.numeric_regex import decimal_range_regex, integer_range_regex
from finetune.schema_regex import SchemaError, compile_json_schema
from finetune.templates import ResultTemplate, TemplateError, TemplateParseError
from finetune.variables import VariableDefinitionError, VariableSpec, VariableValueError

GRADE = VariableSpec(name="grade", type="float", min_value=0, max_value=10, step_size=0.5)
EXPLAIN = VariableSpec(name="explain", type="string", required=False)


@pytest.mark.parametrize(
    ("text", "message", "line", "column", "variable"),
    [
        ('{"grade": {{grade}', "unterminated placeholder", 1, 11, None),
        ('{"grade": {{grade}},\n "x": {{nope}}}', "unknown variable `nope`", 2, 7, "nope"),
        ('{"grade": {{grade}}, "b": {{grade}}}', "appears twice", 1, 27, "grade"),
        ('{"grade": {{}}}', "empty placeholder", 1, 11, None),
        ('{"grade": {{gr-ade}}}', "not a valid placeholder", 1, 11, "gr-ade"),
        ('{"grade": {{grade}} "explain": 1}', "not valid JSON once filled", 1, 21, None),
        ('{"grade": {{grade}}, "e": "why: {{explain}}"}', "must be the whole string", 1, 33, "explain"),
        ('{"grade": "{{grade}}"}', "write it without quotes", 1, 12, "grade"),
        ('{"a": 1, {{explain}}: 2, "g": {{grade}}}', "cannot be an object key", 1, 10, "explain"),
        ("<r a='{{explain}}'>{{grade}}</r>", "not inside a tag", 1, 7, "explain"),
        ("a,b\n{{grade}}x,{{explain}}\n", "must be a whole field", 2, 1, "grade"),
        ("grade: {{grade}}{{explain}}\n", "separated by some text", 1, 8, "grade"),
        ("grade: '{{explain}}' {{grade}}\n", "double quotes", 1, 9, "explain"),
        ("Grade {{grade}}5 because {{explain}}", "part of the number", 1, 7, "grade"),
    ],
)
def test_template_errors_say_what_and_where(
    text: str, message: str, line: int, column: int, variable: str | None
) -> None:
    with pytest.raises(TemplateError) as info:
        ResultTemplate.compile(text, [GRADE, EXPLAIN])
    assert message in info.value.message
    assert (info.value.line, info.value.column, info.value.variable) == (line, column, variable)
    assert f"line {line}, column {column}" in str(info.value)


def test_template_level_errors() -> None:
    with pytest.raises(TemplateError, match="empty"):
        ResultTemplate.compile("  \n", [GRADE])
    with pytest.raises(TemplateError, match="required variable `grade` does not appear"):
        ResultTemplate.compile("Reason: {{explain}}", [GRADE, EXPLAIN])
    with pytest.raises(TemplateError, match="unknown template format 'toml'"):
        ResultTemplate.compile("{{grade}}", [GRADE], format="toml")
    with pytest.raises(TemplateError, match="defined twice"):
        ResultTemplate.compile("{{grade}}", [GRADE, GRADE])
    with pytest.raises(TemplateError, match="min_value 5 is greater than max_value 1") as info:
        ResultTemplate.compile("{{x}}", [VariableSpec(name="x", type="integer", min_value=5, max_value=1)])
    assert info.value.variable == "x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "1x", "type": "string"}, "not a valid identifier"),
        ({"name": "class", "type": "string"}, "reserved word"),
        ({"name": "x", "type": "integer", "min_value": 3, "max_value": 2}, "greater than max_value"),
        ({"name": "x", "type": "string", "min_length": 4, "max_length": 2}, "greater than max_length"),
        ({"name": "x", "type": "string", "min_value": 1}, "apply to integer and float"),
        ({"name": "x", "type": "boolean", "max_length": 1}, "apply to string and array"),
        ({"name": "x", "type": "integer", "choices": ["a", "b"]}, "does not fit type integer"),
        ({"name": "x", "type": "boolean", "choices": [True]}, "not allowed for boolean"),
        ({"name": "x", "type": "string", "choices": []}, "must not be empty"),
        ({"name": "x", "type": "string", "choices": ["a", "a"]}, "duplicates"),
        ({"name": "x", "type": "float", "step_size": 0}, "must be positive"),
        ({"name": "x", "type": "integer", "step_size": 0.5}, "whole number"),
        ({"name": "x", "type": "string", "choices": ["abc"], "max_length": 2}, "breaks the variable's own"),
        ({"name": "x", "type": "integer", "max_value": 3, "default_value": 9}, "default_value is invalid"),
    ],
)
def test_inconsistent_definitions_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(VariableDefinitionError, match=message):
        VariableSpec(**spec).validate_definition()  # type: ignore[arg-type]


def test_unknown_type_and_comma_choices() -> None:
    with pytest.raises(VariableDefinitionError, match="unknown type 'date'"):
        VariableSpec(name="x", type="date")  # type: ignore[arg-type]
    spec = VariableSpec(name="condition", type="string", choices="mint, good,poor")  # type: ignore[arg-type]
    assert spec.choices == ["mint", "good", "poor"]


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (VariableSpec(name="x", type="string", max_length=2), "abc", "more than max_length 2"),
        (VariableSpec(name="x", type="string"), "a\x00b", "control character"),
        (VariableSpec(name="x", type="string"), 5, "expected a string"),
        (VariableSpec(name="x", type="integer", min_value=0), -1, "below min_value 0"),
        (VariableSpec(name="x", type="integer"), True, "expected an integer"),
        (VariableSpec(name="x", type="float", min_value=0, step_size=0.5), 0.3, "multiple of step_size"),
        (VariableSpec(name="x", type="float"), float("nan"), "not a finite number"),
        (VariableSpec(name="x", type="boolean"), "true", "expected true or false"),
        (VariableSpec(name="x", type="array", max_length=1), [1, 2], "more than max_length 1"),
        (VariableSpec(name="x", type="array", choices=["a"]), ["b"], "not one of the choices"),
        (VariableSpec(name="x", type="array"), [[1]], "not allowed here"),
        (VariableSpec(name="x", type="object"), {"a": {"b": {"c": 1}}}, "nested deeper"),
        (VariableSpec(name="x", type="string", choices=["a"]), "b", "not one of the choices"),
        (VariableSpec(name="x", type="string"), None, "required but missing"),
    ],
)
def test_value_rules_name_the_rule(spec: VariableSpec, value: object, message: str) -> None:
    with pytest.raises(VariableValueError, match=message):
        spec.check(value)


def test_step_snaps_and_canonical_forms() -> None:
    assert VariableSpec(name="x", type="float", step_size=0.1).check(0.1 + 0.2) == 0.3
    assert VariableSpec(name="x", type="float").check(-0.0) == 0.0
    assert VariableSpec(name="x", type="float").check(3) == 3.0
    assert VariableSpec(name="x", type="integer").check(4.0) == 4


def test_parse_errors_name_the_variable() -> None:
    template = ResultTemplate.compile('{"grade": {{grade}}, "explain": "{{explain}}"}', [GRADE, EXPLAIN])
    with pytest.raises(TemplateParseError, match="not valid JSON"):
        template.parse('{"grade": 1.5, "explain": "a\nb"}')  # raw newline inside a string
    with pytest.raises(TemplateParseError, match=r"at \$\.grade"):
        template.parse('{"grade": 11, "explain": ""}')
    with pytest.raises(TemplateParseError, match=r"multiple of 0\.5") as info:
        template.parse('{"grade": 1.2, "explain": ""}')
    assert info.value.variable == "grade"
    text = ResultTemplate.compile("Grade: {{grade}}\nWhy: {{explain}}\n", [GRADE, EXPLAIN], format="text")
    with pytest.raises(TemplateParseError, match="no valid value for `grade`"):
        text.parse("Grade: high\nWhy: x\n")
    with pytest.raises(TemplateParseError, match="does not start with"):
        text.parse("Score: 1\n")


def test_free_text_value_cannot_hold_its_terminator() -> None:
    template = ResultTemplate.compile("{{explain}}, grade {{grade}}", [GRADE, EXPLAIN], format="text")
    with pytest.raises(VariableValueError, match="ends this placeholder"):
        template.render({"explain": "a, b", "grade": 1.0})
    assert template.parse("a; b, grade 1.5") == {"explain": "a; b", "grade": 1.5}


def test_format_detection() -> None:
    assert ResultTemplate.compile('{"g": {{grade}}}', [GRADE]).format == "json"
    assert ResultTemplate.compile("[{{grade}}]", [GRADE]).format == "json"
    assert ResultTemplate.compile("<g>{{grade}}</g>", [GRADE]).format == "xml"
    assert ResultTemplate.compile("grade: {{grade}}\n", [GRADE]).format == "yaml"
    assert ResultTemplate.compile("grade,x\n{{grade}},1\n", [GRADE]).format == "csv"
    assert ResultTemplate.compile("The grade is {{grade}}", [GRADE]).format == "text"
    assert ResultTemplate.compile("{{grade}}", [GRADE]).format == "text"


def test_json_template_constraint_is_a_schema_with_the_rules() -> None:
    template = ResultTemplate.compile('{"grade": {{grade}}, "explain": "{{explain}}"}', [GRADE, EXPLAIN])
    schema = template.constraint()
    assert isinstance(schema, dict)
    assert schema["properties"]["grade"] == {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.5}
    assert schema["required"] == ["grade", "explain"]
    regex = template.regex()
    assert re.fullmatch(regex, '{"grade": 9.5, "explain": "ok"}')
    assert not re.fullmatch(regex, '{"grade": 10.5, "explain": "ok"}')
    assert not re.fullmatch(regex, '{"grade": 9.5, "explain": "a\x01"}')


@pytest.mark.parametrize(
    ("schema", "message", "path"),
    [
        ({"type": "strin"}, "invalid JSON Schema", "$.type"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "greater than `maximum`", "$"),
        (
            {"properties": {"a": {"type": "string", "minLength": 3, "maxLength": 1}}},
            "minLength",
            "$.properties.a",
        ),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "points nowhere", "$.properties.a"),
        (
            {"type": "object", "properties": {"n": {"type": "integer", "minimum": "x"}}},
            "invalid",
            "$.properties.n",
        ),
    ],
)
def test_bad_schemas_are_refused_with_a_path(schema: dict[str, object], message: str, path: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        compile_json_schema(schema)
    assert info.value.path.startswith(path)


def test_schema_regex_enforces_numeric_bounds_that_outlines_core_ignores() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 9},
            "x": {"type": ["number", "null"], "exclusiveMinimum": -1.5, "maximum": 2.25},
            "k": {"type": "integer", "minimum": 0, "maximum": 20, "multipleOf": 5},
        },
        "required": ["n", "x", "k"],
    }
    regex = compile_json_schema(schema)
    assert re.fullmatch(regex, '{"n": 9, "x": 2.25, "k": 15}')
    assert re.fullmatch(regex, '{"n": 0, "x": null, "k": 0}')
    for bad in ('{"n": 10, "x": 1, "k": 5}', '{"n": 1, "x": 2.3, "k": 5}', '{"n": 1, "x": 1, "k": 7}'):
        assert not re.fullmatch(regex, bad), bad


def test_range_regexes_are_exact() -> None:
    for lo, hi in [(0, 9), (-37, 1234), (None, 5), (-5, None), (100, 100)]:
        regex = integer_range_regex(lo, hi)
        for v in range(-2000, 2000):
            assert bool(re.fullmatch(regex, str(v))) == ((lo is None or v >= lo) and (hi is None or v <= hi))
    regex = decimal_range_regex(-1.25, 3.5)
    assert all(re.fullmatch(regex, t) for t in ["-1.25", "-1", "0", "0.0001", "3.5", "3.50", "2.999"])
    assert not any(re.fullmatch(regex, t) for t in ["-1.26", "-2", "3.51", "4", "1e3", "01"])


def test_importing_templates_does_not_import_torch() -> None:
    code = "import sys, finetune.templates, finetune.variables; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("fmt", ["json", "yaml", "xml", "csv", "text"])
def test_every_template_regex_builds_an_outlines_core_automaton(fmt: str) -> None:
    """The regexes use only syntax Rust's regex crate (outlines_core, vLLM's Outlines backend) reads too."""
    from outlines_core import Index, Vocabulary

    vocabulary = Vocabulary(0x7FFF, {chr(c): [c] for c in range(32, 127)} | {"\n": [10]})
    variables = [
        VariableSpec(name="s", type="string", max_length=5),
        VariableSpec(name="c", type="string", choices=["a,b", "c]"]),
        VariableSpec(name="i", type="integer", min_value=-3, max_value=250),
        VariableSpec(name="f", type="float", min_value=-1.25, max_value=3.5),
        VariableSpec(name="g", type="float", min_value=0, max_value=2, step_size=0.25),
        VariableSpec(name="b", type="boolean", required=False),
        VariableSpec(name="a", type="array", max_length=2),
        VariableSpec(name="o", type="object", required=False),
    ]
    names = [v.name for v in variables]
    text = {
        "json": "{" + ", ".join(f'"{n}": {{{{{n}}}}}' for n in names) + "}",
        "yaml": "".join(f"{n}: {{{{{n}}}}}\n" for n in names),
        "xml": "<r>" + "".join(f"<{n}>{{{{{n}}}}}</{n}>" for n in names) + "</r>",
        "csv": ",".join(names) + "\n" + ",".join(f"{{{{{n}}}}}" for n in names) + "\n",
        "text": "; ".join(f"{n} = {{{{{n}}}}}" for n in names) + ".",
    }[fmt]
    template = ResultTemplate.compile(text, variables, format=fmt)
    Index(template.regex(), vocabulary)  # raises ValueError if the Rust regex engine refuses the syntax
