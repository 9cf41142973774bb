"""Structured output through the gateway on real vLLM (Outlines backend, tiny model), via the openai client.

Each constraint is asked 20 times with different seeds at temperature 1 (the tiny model's answers are close
to random, which is what stresses a constraint); every answer must come back with ``finish_reason: "stop"``
and be valid: strict JSON that fits its schema, a full regex match, one of the choices, or a template that
parses back into values obeying their variables.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator

from finetune.templates import ResultTemplate
from finetune.variables import VariableSpec
from tests.support.item_schema import item_schema

pytestmark = pytest.mark.integration

MODEL = "tiny"
SEEDS = range(20)
MESSAGES: list[Any] = [{"role": "user", "content": "Describe the item as asked."}]
SCHEMA = item_schema()


async def ask_all(aclient: openai.AsyncOpenAI, **kwargs: Any) -> list[Any]:
    """The same request with 20 seeds, concurrently (vLLM batches them)."""
    kwargs.setdefault("max_tokens", 160)
    calls = [
        aclient.chat.completions.create(model=MODEL, messages=MESSAGES, seed=seed, temperature=1.0, **kwargs)
        for seed in SEEDS
    ]
    return [r.choices[0] for r in await asyncio.gather(*calls)]


def assert_all_stop(choices: list[Any]) -> list[str]:
    assert [c.finish_reason for c in choices] == ["stop"] * len(choices), [c.message.content for c in choices]
    return [c.message.content for c in choices]


async def test_json_schema_with_enum_ranges_nested_object_and_array(aclient: openai.AsyncOpenAI) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "item", "schema": SCHEMA, "strict": True},
    }
    texts = assert_all_stop(await ask_all(aclient, response_format=response_format))
    validator = Draft202012Validator(SCHEMA)
    for text in texts:
        document = json.loads(text)  # strict: raw control characters would fail here
        assert list(validator.iter_errors(document)) == [], text


async def test_choice_via_structured_outputs(aclient: openai.AsyncOpenAI) -> None:
    choices = ["cat", "dog", "a small bird"]
    texts = assert_all_stop(await ask_all(aclient, extra_body={"structured_outputs": {"choice": choices}}))
    assert set(texts) <= set(choices)


async def test_regex_via_structured_outputs(aclient: openai.AsyncOpenAI) -> None:
    pattern = r"[A-Z][a-z]{2,5}-[0-9]{3}"
    texts = assert_all_stop(await ask_all(aclient, extra_body={"structured_outputs": {"regex": pattern}}))
    assert all(re.fullmatch(pattern, t) for t in texts), texts


async def test_json_object(aclient: openai.AsyncOpenAI) -> None:
    """Any object: keys and strings are unbounded, so the tiny model may run to max_tokens ("length",
    returned as is); every answer that stopped is a JSON object."""
    choices = await ask_all(aclient, response_format={"type": "json_object"}, max_tokens=200)
    stopped = [c.message.content for c in choices if c.finish_reason == "stop"]
    assert {c.finish_reason for c in choices} <= {"stop", "length"}
    assert all(isinstance(json.loads(t), dict) for t in stopped), stopped


TEMPLATE_VARIABLES = [
    {"name": "grade", "type": "float", "min_value": 0, "max_value": 10, "step_size": 0.5},
    {"name": "condition", "type": "string", "choices": "mint,near_mint,good,poor"},
    {"name": "damaged", "type": "boolean"},
    {"name": "count", "type": "integer", "min_value": 1, "max_value": 12},
    {"name": "note", "type": "string", "max_length": 12, "required": False},
]


@pytest.mark.parametrize(
    ("template", "fmt"),
    [
        (
            "grade: {{grade}}\ncondition: {{condition}}\ndamaged: {{damaged}}\ncount: {{count}}\n"
            "note: {{note}}\n",
            "yaml",
        ),
        (
            "grade,condition,damaged,count,note\n{{grade}},{{condition}},{{damaged}},{{count}},{{note}}\n",
            "csv",
        ),
    ],
)
async def test_result_template_yaml_and_csv(aclient: openai.AsyncOpenAI, template: str, fmt: str) -> None:
    compiled = ResultTemplate.compile(template, [VariableSpec(**v) for v in TEMPLATE_VARIABLES])
    assert compiled.format.value == fmt
    extra = {"result_template": template, "variables": TEMPLATE_VARIABLES}
    texts = assert_all_stop(await ask_all(aclient, extra_body=extra))
    for text in texts:
        values = compiled.parse(text)  # raises if any value breaks its variable's rules
        assert values["grade"] * 2 == int(values["grade"] * 2)
        assert values["condition"] in {"mint", "near_mint", "good", "poor"}


async def test_legacy_guided_fields_are_enforced(aclient: openai.AsyncOpenAI) -> None:
    choices = assert_all_stop(await ask_all(aclient, extra_body={"guided_choice": ["yes", "no"]}))
    assert {c for c in choices} <= {"yes", "no"}
    texts = assert_all_stop(await ask_all(aclient, extra_body={"guided_regex": "[0-9]{4}"}))
    assert all(re.fullmatch("[0-9]{4}", t) for t in texts), texts
    small = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 5}},
        "required": ["n"],
    }
    texts = assert_all_stop(await ask_all(aclient, extra_body={"guided_json": small}))
    assert all(json.loads(t)["n"] in (3, 4, 5) for t in texts), texts


async def test_confidence_per_field(aclient: openai.AsyncOpenAI) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "item", "schema": SCHEMA}}
    result = await aclient.chat.completions.create(
        model=MODEL, messages=MESSAGES, seed=1, max_tokens=160, response_format=response_format,
        extra_body={"confidence": True},
    )  # fmt: skip
    choice = result.choices[0]
    confidence = (choice.model_extra or {})["confidence"]
    assert {"$", "color", "count", "tags", "size", "size.width", "size.ratio"} <= set(confidence)
    assert all(0.0 < p <= 1.0 for p in confidence.values())
    assert choice.logprobs is None


async def test_stream_with_a_constraint(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=MESSAGES, seed=3, max_tokens=40, stream=True,
        extra_body={"structured_outputs": {"regex": "[a-z]{3,8}"}},
    )  # fmt: skip
    text = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert re.fullmatch("[a-z]{3,8}", text), text


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "strin"}},
                }
            },
            "response_format.json_schema.schema",
        ),
        ({"extra_body": {"guided_json": {"type": "integer", "minimum": 5, "maximum": 1}}}, "guided_json"),
        ({"extra_body": {"structured_outputs": {"regex": "a(b"}}}, "structured_outputs.regex"),
        (
            {
                "extra_body": {
                    "result_template": "{{x}} {{y}}",
                    "variables": [{"name": "x", "type": "integer"}],
                }
            },
            "result_template",
        ),
    ],
)
def test_bad_constraints_are_400(client: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, **kwargs)
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == param, body
