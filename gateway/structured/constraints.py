"""Generation constraints: what the engine is sent, and how the gateway checks the answer.

A ``Constraint`` is compiled once per distinct schema, regex, choice list, grammar or result template
(``ConstraintCache``, a bounded LRU) and holds:

- ``engine``: the ``structured_outputs`` sent to vLLM. JSON Schemas, ``json_object`` and result templates go
  as a regex compiled by ``finetune.schema_regex`` (outlines_core plus numeric bounds and printable
  strings), so that every backend, Outlines included, enforces the whole schema;
- ``check(text)``: validation of a finished answer (strict JSON + JSON Schema, full regex match, one of the
  choices, or the template's parser), raising ``InvalidOutput`` with the reason;
- ``spans(text)``: where each field's value lies in the answer, for per-field confidence.

Grammars are passed to the engine as they are and cannot be checked by the gateway (no grammar parser
here); the engine's grammar backend is the only enforcement for them, so they are refused (400
``grammar_unsupported``) when that backend is outlines, which cannot enforce them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finetune.schema_regex import compile_json_schema
from finetune.template_values import json_object_regex
from finetune.templates import ResultTemplate, TemplateParseError
from gateway.openai_api.protocol import EngineStructuredOutputs
from gateway.structured.spans import json_value_spans

log = logging.getLogger("vlmgw.structured")

Spans = dict[str, tuple[int, int]]


class InvalidOutput(ValueError):
    """A finished answer that breaks its constraint; the message says how."""


@dataclass(frozen=True)
class Constraint:
    """A compiled constraint: engine parameters, answer check and field spans."""

    kind: str
    engine: EngineStructuredOutputs
    check: Callable[[str], Any]
    spans: Callable[[str], Spans] = field(default=lambda text: {"$": (0, len(text))})
    compile_seconds: float = 0.0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(text: str) -> Any:
    """JSON as the standard defines it: no raw control characters in strings, no NaN or Infinity."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InvalidOutput(f"the answer is not valid JSON: {exc}") from None


def _whole_and_fields(text: str) -> Spans:
    try:
        spans = json_value_spans(text)
    except ValueError:
        spans = {}
    return {"$": (0, len(text)), **spans}


def json_schema_constraint(schema: dict[str, Any], whitespace: str | None) -> Constraint:
    from jsonschema import Draft202012Validator

    regex = compile_json_schema(schema, whitespace, checked=True)
    validator = Draft202012Validator(schema)

    def check(text: str) -> Any:
        document = strict_json(text)
        error = next(iter(validator.iter_errors(document)), None)
        if error is not None:
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise InvalidOutput(f"the answer breaks the schema at {where}: {error.message}")
        return document

    return Constraint("json_schema", EngineStructuredOutputs(regex=regex), check, _whole_and_fields)


def json_object_constraint() -> Constraint:
    regex = json_object_regex()

    def check(text: str) -> Any:
        document = strict_json(text)
        if not isinstance(document, dict):
            raise InvalidOutput(f"the answer is JSON but not an object: {type(document).__name__}")
        return document

    return Constraint("json_object", EngineStructuredOutputs(regex=regex), check, _whole_and_fields)


def regex_constraint(pattern: str) -> Constraint:
    compiled = re.compile(pattern)

    def check(text: str) -> Any:
        if compiled.fullmatch(text) is None:
            raise InvalidOutput("the answer does not match the regular expression")
        return text

    return Constraint("regex", EngineStructuredOutputs(regex=pattern), check)


def choice_constraint(choices: list[str]) -> Constraint:
    allowed = set(choices)

    def check(text: str) -> Any:
        if text not in allowed:
            raise InvalidOutput(f"the answer {text[:80]!r} is not one of the choices")
        return text

    return Constraint("choice", EngineStructuredOutputs(choice=list(choices)), check)


def grammar_constraint(grammar: str) -> Constraint:
    return Constraint("grammar", EngineStructuredOutputs(grammar=grammar), lambda text: text)


def template_constraint(template: ResultTemplate) -> Constraint:
    def check(text: str) -> Any:
        try:
            return template.parse(text)
        except TemplateParseError as exc:
            raise InvalidOutput(f"the answer does not fit the result template: {exc.message}") from None

    def spans(text: str) -> Spans:
        if template.format.value == "json":
            return _whole_and_fields(text)
        return {"$": (0, len(text)), **template.value_spans(text)}

    return Constraint("template", EngineStructuredOutputs(regex=template.regex()), check, spans)


class ConstraintCache:
    """Compiled constraints by key, least recently used evicted first; compile times are measured."""

    def __init__(self, capacity: int, observe: Callable[[str, float, bool], None] | None = None) -> None:
        self.capacity = max(capacity, 0)
        self._items: OrderedDict[tuple[str, str], Constraint] = OrderedDict()
        self._observe = observe or (lambda kind, seconds, hit: None)

    def __len__(self) -> int:
        return len(self._items)

    def get_or_compile(self, kind: str, key: str, build: Callable[[], Constraint]) -> Constraint:
        """The cached constraint for (kind, key), or ``build()`` timed and stored."""
        cache_key = (kind, key)
        found = self._items.get(cache_key)
        if found is not None:
            self._items.move_to_end(cache_key)
            self._observe(kind, 0.0, True)
            return found
        started = time.perf_counter()
        built = build()
        seconds = time.perf_counter() - started
        constraint = Constraint(built.kind, built.engine, built.check, built.spans, seconds)
        self._observe(kind, seconds, False)
        log.debug("compiled %s constraint in %.1f ms", kind, seconds * 1000)
        if self.capacity:
            self._items[cache_key] = constraint
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return constraint
