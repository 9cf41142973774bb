"""From a chat request to one compiled constraint, refusing bad or conflicting constraints with precise 400s.

Sources, at most one per request: OpenAI's ``response_format`` (``json_schema``, ``json_object``), vLLM's
``structured_outputs`` (``json``, ``regex``, ``choice``, ``grammar``, ``json_object``), the legacy
``guided_json``/``guided_regex``/``guided_choice``/``guided_grammar`` (translated: vLLM >= 0.12 ignores
them and answers unconstrained), and the gateway's ``result_template`` + ``variables``.
"""

from __future__ import annotations

import json
import re
import re._constants as sre_constants
import re._parser as sre_parse
from dataclasses import dataclass
from typing import Any

import msgspec
from outlines_core import Index, Vocabulary

from finetune.schema_regex import SchemaError, check_schema
from finetune.template_syntax import TemplateError
from finetune.templates import ResultTemplate
from finetune.variables import VariableError, VariableSpec
from gateway.errors import BadRequestError
from gateway.openai_api.protocol import (
    ChatCompletionRequest,
    JsonObjectFormat,
    JsonSchemaFormat,
    StructuredOutputs,
)
from gateway.structured.constraints import (
    Constraint,
    ConstraintCache,
    choice_constraint,
    grammar_constraint,
    json_object_constraint,
    json_schema_constraint,
    regex_constraint,
    template_constraint,
)

# A printable-ASCII vocabulary, enough for outlines_core to tell whether a regex builds a DFA at all.
_PROBE_VOCABULARY = Vocabulary(0x7FFF, {chr(c): [c] for c in range(32, 127)} | {"\n": [10], "\t": [9]})


@dataclass(frozen=True)
class Plan:
    """What the gateway does for one request: the constraint (or None), retries and confidence."""

    constraint: Constraint | None
    max_retries: int
    confidence: bool


def _sources(req: ChatCompletionRequest) -> list[str]:
    found = []
    if req.response_format is not None and isinstance(
        req.response_format, JsonSchemaFormat | JsonObjectFormat
    ):
        found.append("response_format")
    if req.structured_outputs is not None:
        found.append("structured_outputs")
    if req.guided_json is not None:
        found.append("guided_json")
    if req.guided_regex is not None:
        found.append("guided_regex")
    if req.guided_choice is not None:
        found.append("guided_choice")
    if req.guided_grammar is not None:
        found.append("guided_grammar")
    if req.result_template is not None:
        found.append("result_template")
    return found


def plan_request(req: ChatCompletionRequest, cache: ConstraintCache, *, grammars: bool = True) -> Plan | None:
    """The plan for a request, or None when it asks for nothing structured (plain relay).

    ``grammars``: whether the engine's structured-output backend enforces grammars; when it does not, a
    grammar is refused (400 ``grammar_unsupported``): the gateway cannot check one either, so it would come
    back unconstrained.
    """
    sources = _sources(req)
    if not grammars:
        _refuse_grammar(req)
    if req.variables is not None and req.result_template is None:
        raise BadRequestError("`variables` needs a `result_template`", param="variables")
    if req.template_format is not None and req.result_template is None:
        raise BadRequestError("`template_format` needs a `result_template`", param="template_format")
    if not sources and req.max_retries is None and not req.confidence:
        return None
    if len(sources) > 1:
        raise BadRequestError(
            f"give one structured-output constraint per request, not {len(sources)}: " + ", ".join(sources),
            param=sources[1],
        )
    if req.max_retries and not sources:
        raise BadRequestError(
            "`max_retries` applies only with a structured-output constraint", param="max_retries"
        )
    if req.stream and (req.max_retries or req.confidence):
        name = "max_retries" if req.max_retries else "confidence"
        raise BadRequestError(f"`{name}` is not available with `stream: true`", param=name)
    constraint = _constraint(req, sources[0], cache) if sources else None
    return Plan(constraint, req.max_retries or 0, bool(req.confidence))


def _refuse_grammar(req: ChatCompletionRequest) -> None:
    so = req.structured_outputs
    param = "guided_grammar" if req.guided_grammar is not None else None
    if so is not None and so.grammar is not None:
        param = "structured_outputs.grammar"
    if param is not None:
        raise BadRequestError(
            f"`{param}`: this gateway's engine cannot enforce grammars (its structured-output backend is "
            "outlines) and the gateway cannot check them; use a JSON Schema, regex or choice, or run the "
            "engine with --structured-backend xgrammar or guidance",
            param=param,
            code="grammar_unsupported",
        )


def _constraint(req: ChatCompletionRequest, source: str, cache: ConstraintCache) -> Constraint:
    if source == "response_format":
        fmt = req.response_format
        if isinstance(fmt, JsonObjectFormat):
            return cache.get_or_compile("json_object", "", json_object_constraint)
        assert isinstance(fmt, JsonSchemaFormat)
        if fmt.json_schema.schema is None:
            return cache.get_or_compile("json_object", "", json_object_constraint)
        return _json_schema(fmt.json_schema.schema, None, "response_format.json_schema.schema", cache)
    if source == "structured_outputs":
        assert req.structured_outputs is not None
        return _from_structured_outputs(req.structured_outputs, cache)
    if source.startswith("guided_"):  # the old fields: guided_X means structured_outputs' X
        return _of_kind(source.removeprefix("guided_"), getattr(req, source), source, None, cache)
    return _template(req, cache)


def _from_structured_outputs(so: StructuredOutputs, cache: ConstraintCache) -> Constraint:
    given = [k for k in ("json", "regex", "choice", "grammar", "json_object") if getattr(so, k) is not None]
    if len(given) != 1:
        raise BadRequestError(
            "`structured_outputs` needs exactly one of json, regex, choice, grammar, json_object; "
            f"got {', '.join(given) or 'none'}",
            param="structured_outputs",
        )
    kind = given[0]
    if so.whitespace_pattern is not None and kind != "json":
        raise BadRequestError(
            "`whitespace_pattern` applies only to `json`", param="structured_outputs.whitespace_pattern"
        )
    if kind != "json_object":
        param = f"structured_outputs.{kind}"
        return _of_kind(kind, getattr(so, kind), param, so.whitespace_pattern, cache)
    if so.json_object is not True:
        raise BadRequestError("`json_object` must be true", param="structured_outputs.json_object")
    return cache.get_or_compile("json_object", "", json_object_constraint)


def _of_kind(kind: str, value: Any, param: str, whitespace: str | None, cache: ConstraintCache) -> Constraint:
    """The constraint of a ``json``, ``regex``, ``choice`` or ``grammar`` value given in ``param``."""
    if kind == "json":
        return _json_schema(_schema_value(value, param), whitespace, param, cache)
    if kind == "regex":
        return _regex(value or "", param, cache)
    if kind == "choice":
        return cache.get_or_compile("choice", json.dumps(value), lambda: choice_constraint(value or []))
    return _grammar(value or "", param, cache)


def _schema_value(value: Any, param: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRequestError(f"`{param}` is a string but not JSON: {exc}", param=param) from None
    if not isinstance(value, dict):
        raise BadRequestError(f"`{param}` must be a JSON Schema object", param=param)
    return value


def _json_schema(
    schema: dict[str, Any], whitespace: str | None, param: str, cache: ConstraintCache
) -> Constraint:
    key = json.dumps(schema, sort_keys=True) + "\x00" + (whitespace or "")

    def build() -> Constraint:
        if whitespace is not None:
            _check_regex(whitespace, param.rsplit(".", 1)[0] + ".whitespace_pattern")
        try:
            check_schema(schema)
            return json_schema_constraint(schema, whitespace)
        except SchemaError as exc:
            raise BadRequestError(f"Invalid JSON Schema in `{param}`: {exc}", param=param) from None

    return cache.get_or_compile("json_schema", key, build)


def _regex(pattern: str, param: str, cache: ConstraintCache) -> Constraint:
    def build() -> Constraint:
        _check_regex(pattern, param)
        return regex_constraint(pattern)

    return cache.get_or_compile("regex", pattern, build)


def _check_regex(pattern: str, param: str) -> None:
    """Refuse what Python cannot compile, or what outlines_core (a DFA) cannot build."""
    if not pattern:
        raise BadRequestError(f"`{param}` is an empty regular expression", param=param)
    try:
        re.compile(pattern)
        _refuse_unsupported(sre_parse.parse(pattern))
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise BadRequestError(f"`{param}` does not compile: {exc.msg}{where}", param=param) from None
    except ValueError as exc:
        raise BadRequestError(f"`{param}` {exc}", param=param) from None
    try:
        Index(pattern, _PROBE_VOCABULARY)
    except ValueError as exc:
        if "incompatible with the regex" not in str(exc):  # only says our probe vocabulary is small
            raise BadRequestError(
                f"`{param}` cannot be turned into a token automaton: {exc}", param=param
            ) from None


def _refuse_unsupported(parsed: Any) -> None:
    for op, arg in parsed.data if hasattr(parsed, "data") else parsed:
        if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            raise ValueError("uses a backreference, which constrained generation cannot enforce")
        if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            raise ValueError("uses a look-around assertion, which constrained generation cannot enforce")
        if op is sre_constants.AT and arg in (sre_constants.AT_BOUNDARY, sre_constants.AT_NON_BOUNDARY):
            raise ValueError("uses a word boundary (\\b or \\B), which constrained generation cannot enforce")
        for sub in arg if isinstance(arg, tuple | list) else (arg,):
            if isinstance(sub, sre_parse.SubPattern):
                _refuse_unsupported(sub)
            elif isinstance(sub, tuple | list):
                for item in sub:
                    if isinstance(item, sre_parse.SubPattern):
                        _refuse_unsupported(item)


def _grammar(grammar: str, param: str, cache: ConstraintCache) -> Constraint:
    if not grammar.strip():
        raise BadRequestError(f"`{param}` is an empty grammar", param=param)
    return cache.get_or_compile("grammar", grammar, lambda: grammar_constraint(grammar))


def _template(req: ChatCompletionRequest, cache: ConstraintCache) -> Constraint:
    text = req.result_template or ""
    raw_variables = [msgspec.to_builtins(v) for v in req.variables or []]
    key = json.dumps([text, raw_variables, req.template_format], sort_keys=True)

    def build() -> Constraint:
        try:
            specs = [VariableSpec(**v) for v in raw_variables]
            template = ResultTemplate.compile(text, specs, format=req.template_format)
        except VariableError as exc:
            raise BadRequestError(f"Invalid variable: {exc.message}", param="variables") from None
        except TemplateError as exc:
            about_template = exc.line is not None or "template" in exc.message
            param = "result_template" if about_template else "variables"
            raise BadRequestError(f"Invalid result template: {exc}", param=param) from None
        return template_constraint(template)

    return cache.get_or_compile("template", key, build)
