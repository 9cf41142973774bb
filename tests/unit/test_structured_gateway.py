"""Gateway structured-output logic in front of a fake engine: what vLLM is sent, checks, retries, errors.

The fake engine does not constrain anything; it answers the replies a test gives it, so these tests show what
the gateway does with valid and invalid answers. That the real engine obeys the constraints is shown in
tests/integration/test_structured_output.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fakes import FakeVLLM

CHAT = "/v1/chat/completions"
SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"enum": ["red", "green"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["color", "count"],
}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **extra}


def schema_format(schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


async def test_json_schema_goes_to_the_engine_as_a_bounded_regex(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = '{"color": "red", "count": 7}'
    resp = await client.post(CHAT, json=chat_body(response_format=schema_format()))
    assert resp.status_code == 200, resp.text
    sent = fake_engine.requests[-1]
    assert "response_format" not in sent
    regex = sent["structured_outputs"]["regex"]
    assert re.fullmatch(regex, '{"color": "green", "count": 9}')
    assert not re.fullmatch(regex, '{"color": "green", "count": 10}')  # outlines_core alone allows this


@pytest.mark.parametrize(
    ("field", "value", "engine_key"),
    [
        ("guided_json", SCHEMA, "regex"),
        ("guided_regex", "[a-z]+", "regex"),
        ("guided_choice", ["yes", "no"], "choice"),
    ],
)
async def test_legacy_guided_fields_are_translated_never_passed_on(
    client: Any, fake_engine: FakeVLLM, field: str, value: Any, engine_key: str
) -> None:
    fake_engine.reply = {"regex": "abc", "choice": "yes", "grammar": "a"}.get(engine_key, "")
    if field == "guided_json":
        fake_engine.reply = '{"color": "red", "count": 1}'
    resp = await client.post(CHAT, json=chat_body(**{field: value}))
    assert resp.status_code == 200, resp.text
    sent = fake_engine.requests[-1]
    assert field not in sent
    assert list(sent["structured_outputs"]) == [engine_key]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"guided_grammar": 'root ::= "a"'}, "guided_grammar"),
        ({"structured_outputs": {"grammar": 'root ::= "a"'}}, "structured_outputs.grammar"),
    ],
)
async def test_grammars_are_refused_when_the_backend_cannot_enforce_them(
    client: Any, fake_engine: FakeVLLM, extra: dict[str, Any], param: str
) -> None:
    """The default backend (outlines) cannot enforce a grammar and the gateway cannot check one."""
    for stream in (False, True):
        resp = await client.post(CHAT, json=chat_body(stream=stream, **extra))
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert (error["code"], error["param"]) == ("grammar_unsupported", param)
        assert param in error["message"]
    assert fake_engine.requests == []


@pytest.mark.parametrize("backend", ["xgrammar", "guidance"])
async def test_grammars_go_to_backends_that_enforce_them(
    make_client: Any, fake_engine: FakeVLLM, backend: str
) -> None:
    fake_engine.reply = "a"
    async with make_client(fake_engine, structured_backend=backend) as client:
        resp = await client.post(CHAT, json=chat_body(guided_grammar='root ::= "a"'))
    assert resp.status_code == 200, resp.text
    assert fake_engine.requests[-1]["structured_outputs"] == {"grammar": 'root ::= "a"'}


async def test_invalid_answer_is_retried_then_returned_valid(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.replies = ['{"color": "blue", "count": 1}', '{"color": "green", "count": 2}']
    resp = await client.post(CHAT, json=chat_body(response_format=schema_format(), max_retries=2, seed=5))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"color": "green", "count": 2}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert len(fake_engine.requests) == 2
    assert fake_engine.requests[1]["seed"] != 5  # a retry with the same seed would repeat the answer
    assert body["usage"]["completion_tokens"] == 10


async def test_invalid_answer_without_retries_is_a_clear_error_never_stop(
    client: Any, fake_engine: FakeVLLM
) -> None:
    fake_engine.reply = '{"color": "red", "count": 12}'
    resp = await client.post(CHAT, json=chat_body(response_format=schema_format(), max_retries=1))
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "invalid_structured_output"
    assert "after 2 attempts" in error["message"]
    assert "$.count" in error["message"] and "maximum" in error["message"]


async def test_only_the_invalid_choices_are_asked_for_again(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.replies = ["yes", "maybe", "no", "no"]
    resp = await client.post(CHAT, json=chat_body(n=3, guided_choice=["yes", "no"], max_retries=1))
    assert resp.status_code == 200, resp.text
    assert [c["message"]["content"] for c in resp.json()["choices"]] == ["yes", "no", "no"]
    assert fake_engine.requests[1]["n"] == 1


async def test_json_object_refuses_non_objects(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = "[1, 2]"
    resp = await client.post(CHAT, json=chat_body(response_format={"type": "json_object"}))
    assert resp.status_code == 502
    assert "not an object" in resp.json()["error"]["message"]


async def test_raw_control_character_in_a_string_is_not_valid_json(
    client: Any, fake_engine: FakeVLLM
) -> None:
    fake_engine.reply = '{"color": "red\x01", "count": 1}'
    resp = await client.post(CHAT, json=chat_body(response_format=schema_format()))
    assert resp.status_code == 502
    assert "not valid JSON" in resp.json()["error"]["message"]


async def test_result_template_is_sent_as_a_regex_and_checked(client: Any, fake_engine: FakeVLLM) -> None:
    variables = [
        {"name": "grade", "type": "float", "min_value": 0, "max_value": 10, "step_size": 0.5},
        {"name": "condition", "type": "string", "choices": "mint,good,poor"},
    ]
    template = "grade: {{grade}}\ncondition: {{condition}}\n"
    fake_engine.replies = ['grade: 7.5\ncondition: "mint"\n', 'grade: 7.3\ncondition: "mint"\n']
    body = chat_body(result_template=template, variables=variables)
    ok = await client.post(CHAT, json=body)
    assert ok.status_code == 200, ok.text
    assert re.fullmatch(
        fake_engine.requests[-1]["structured_outputs"]["regex"], 'grade: 10\ncondition: "poor"\n'
    )
    bad = await client.post(CHAT, json=body)
    assert bad.status_code == 502
    assert "no valid value for `grade`" in bad.json()["error"]["message"]


async def test_confidence_per_field_from_logprobs(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = '{"color": "red", "count": 7}'
    resp = await client.post(CHAT, json=chat_body(response_format=schema_format(), confidence=True))
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert fake_engine.requests[-1]["logprobs"] is True
    assert choice["logprobs"] is None  # the client did not ask for them
    confidence = choice["confidence"]
    assert set(confidence) == {"$", "color", "count"}
    assert confidence["count"] == pytest.approx(0.367879, abs=1e-5)  # one digit token at logprob -1
    assert confidence["color"] == pytest.approx(0.99005, abs=1e-4)


async def test_stream_with_an_invalid_answer_ends_with_an_error_event(
    client: Any, fake_engine: FakeVLLM
) -> None:
    fake_engine.reply = "maybe so"
    resp = await client.post(CHAT, json=chat_body(stream=True, guided_choice=["yes", "no"]))
    events = [line[6:] for line in resp.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "invalid_structured_output"
    fake_engine.reply = "yes"
    resp = await client.post(CHAT, json=chat_body(stream=True, guided_choice=["yes", "no"]))
    assert "error" not in resp.text


def _stream_events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


async def test_a_stream_never_shows_stop_on_an_invalid_answer(client: Any, fake_engine: FakeVLLM) -> None:
    """The chunk carrying ``finish_reason: "stop"`` is held back until the answer passed its check."""
    fake_engine.reply = "maybe so"
    resp = await client.post(CHAT, json=chat_body(stream=True, guided_choice=["yes", "no"]))
    events = _stream_events(resp.text)
    chunks = [json.loads(e) for e in events[:-1] if "choices" in json.loads(e)]
    assert chunks, resp.text  # the text was relayed as it came
    assert all(c["finish_reason"] is None for chunk in chunks for c in chunk["choices"])
    assert json.loads(events[-2])["error"]["code"] == "invalid_structured_output"


async def test_a_valid_stream_ends_with_stop_then_usage(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = "no"
    body = chat_body(stream=True, guided_choice=["yes", "no"], stream_options={"include_usage": True})
    events = _stream_events((await client.post(CHAT, json=body)).text)
    assert events[-1] == "[DONE]"
    usage, last = json.loads(events[-2]), json.loads(events[-3])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 1
    assert last["choices"][0]["finish_reason"] == "stop"
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2]) == "no"


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        (
            {"response_format": schema_format({"type": "strin"})},
            "response_format.json_schema.schema",
            "at $.type",
        ),
        (
            {"response_format": schema_format({"type": "integer", "minimum": 3, "maximum": 1})},
            "response_format.json_schema.schema",
            "`minimum` 3 is greater than `maximum` 1",
        ),
        ({"structured_outputs": {"regex": "a(b"}}, "structured_outputs.regex", "does not compile"),
        ({"guided_regex": "(?<=a)b"}, "guided_regex", "look-around"),
        ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs", "exactly one"),
        ({"structured_outputs": {}}, "structured_outputs", "got none"),
        ({"guided_json": "{not json"}, "guided_json", "not JSON"),
        ({"guided_regex": "a", "guided_choice": ["a"]}, "guided_choice", "one structured-output constraint"),
        (
            {"result_template": '{"g": {{grade}}', "variables": [{"name": "grade", "type": "integer"}]},
            "result_template",
            "not valid JSON once filled: Expecting ',' delimiter (line 1, column 16)",
        ),
        (
            {"result_template": "{{grade}} {{nope}}", "variables": [{"name": "grade", "type": "integer"}]},
            "result_template",
            "unknown variable `nope`",
        ),
        (
            {
                "result_template": "{{g}}",
                "variables": [{"name": "g", "type": "integer", "min_value": 9, "max_value": 1}],
            },
            "variables",
            "min_value 9 is greater than max_value 1",
        ),
        ({"variables": [{"name": "g", "type": "integer"}]}, "variables", "needs a `result_template`"),
        ({"max_retries": 2}, "max_retries", "applies only with"),
        ({"stream": True, "confidence": True, "guided_regex": "a"}, "confidence", "not available"),
    ],
)
async def test_bad_constraints_are_precise_400s(
    client: Any, fake_engine: FakeVLLM, extra: dict[str, Any], param: str, message: str
) -> None:
    resp = await client.post(CHAT, json=chat_body(**extra))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert message in error["message"]
    assert fake_engine.requests == []


async def test_compiled_constraints_are_cached(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = '{"color": "red", "count": 7}'
    for _ in range(3):
        assert (await client.post(CHAT, json=chat_body(response_format=schema_format()))).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'vlmgw_structured_cache_total{kind="json_schema",result="miss"} 1.0' in metrics
    assert 'vlmgw_structured_cache_total{kind="json_schema",result="hit"} 2.0' in metrics
    assert 'vlmgw_structured_compile_seconds_count{kind="json_schema"} 1.0' in metrics


def test_confidence_ignores_tokens_after_the_text() -> None:
    from gateway.openai_api.protocol import TokenLogprob
    from gateway.structured.spans import field_confidence, json_value_spans

    text = '{"a": [1, {"b": "x"}]}'
    tokens = [TokenLogprob(token=ch, logprob=-0.5, bytes=list(ch.encode())) for ch in text]
    tokens.append(TokenLogprob(token="<|im_end|>", logprob=0.0, bytes=list(b"<|im_end|>")))
    spans = json_value_spans(text)
    assert set(spans) == {"a", "a[0]", "a[1]", "a[1].b"}
    assert text[slice(*spans["a[1].b"])] == '"x"'
    confidence = field_confidence(text, tokens, spans)
    assert confidence["a[1].b"] == pytest.approx(0.606531, abs=1e-6)
    assert field_confidence("other", tokens, spans) == {}
