"""Predictions logic without a server: domain files, the grounding rewrite, plans, answers, signatures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from finetune.schema_regex import compile_json_schema
from gateway.errors import BadRequestError, UnprocessableError
from gateway.openai_api.protocol import ChatCompletion, ChatMessage, Choice
from gateway.predictions import grounding
from gateway.predictions.domains import BUILT_IN, DomainFileError, DomainRegistry, read_domain
from gateway.predictions.executor import interpret
from gateway.predictions.plan import build_plan
from gateway.predictions.schemas import GenerationConfig, RequestMetadata
from gateway.predictions.training_loop import JSON_VARIABLE, layout_for, target_for, values_for
from gateway.predictions.webhook_secrets import sign, verify
from tests.support.vlmrun_seed import seed_domains

REGISTRY = DomainRegistry.load(BUILT_IN)


def test_every_domain_of_the_seed_is_a_built_in_preset() -> None:
    names = {d.name for d in REGISTRY.all()}
    assert set(seed_domains()) <= names
    assert len(seed_domains()) == 15
    assert {d.name for d in REGISTRY.all() if d.media == "video"} == {
        "video.tv-news", "video.caption", "video.commentary",
    }  # fmt: skip


@pytest.mark.parametrize("name", seed_domains())
def test_each_domain_schema_compiles_and_bounds_every_string_and_array(name: str) -> None:
    """Bounded strings and arrays keep answers short enough for a small `max_tokens` (and the tiny model)."""
    domain = REGISTRY.get(name)
    compile_json_schema(domain.schema)
    compile_json_schema(grounding.grounded_schema(domain.schema, 2))
    for node in _nodes(domain.schema):
        if node.get("type") == "string" and "enum" not in node and "format" not in node:
            assert "maxLength" in node, f"{name}: an unbounded string"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{name}: an unbounded array"


def _nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node] + [n for v in node.values() for n in _nodes(v)]
    if isinstance(node, list):
        return [n for v in node for n in _nodes(v)]
    return []


def test_a_domain_is_a_file_and_a_folder_can_add_or_replace_domains(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"plate": {"type": "string", "maxLength": 10}}}
    spec = {"description": "Number plates", "media": "image", "prompt": "Read the plate.", "schema": schema}
    (tmp_path / "vehicle.plate.json").write_text(json.dumps(spec))
    (tmp_path / "image.caption.json").write_text(json.dumps({**spec, "description": "mine"}))
    registry = DomainRegistry.load(BUILT_IN, tmp_path)
    assert registry.get("vehicle.plate").prompt == "Read the plate."
    assert registry.get("image.caption").description == "mine"
    assert len(registry.all()) == len(REGISTRY.all()) + 1


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("Bad Name.json", {}, "is not a domain name"),
        ("a.b.json", "not json", "not readable as JSON"),
        ("a.b.json", {"media": "image"}, "needs exactly the keys"),
        ("a.b.json", {"description": "", "media": "audio", "prompt": "p", "schema": {}}, "`media`"),
        ("a.b.json", {"description": "", "media": "image", "prompt": " ", "schema": {}}, "`prompt`"),
        (
            "a.b.json",
            {"description": "", "media": "image", "prompt": "p", "schema": {"type": 5}},
            "JSON Schema",
        ),
    ],
)
def test_a_broken_domain_file_is_refused_naming_the_file(
    tmp_path: Path, name: str, content: Any, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DomainFileError, match=problem) as caught:
        read_domain(path)
    assert str(path) in str(caught.value)


def test_unknown_domain_and_wrong_media_are_400s_naming_the_domain() -> None:
    with pytest.raises(BadRequestError) as unknown:
        REGISTRY.get("document.nothing", "image")
    assert (unknown.value.param, unknown.value.code) == ("domain", "unknown_domain")
    with pytest.raises(BadRequestError) as wrong:
        REGISTRY.get("video.caption", "image")
    assert wrong.value.code == "domain_media_mismatch" and "/v1/video/generate" in wrong.value.message


CAPTION = {
    "type": "object",
    "properties": {
        "caption": {"type": "string", "maxLength": 20},
        "kind": {"type": "string", "enum": ["photo", "drawing"]},
        "note": {"type": "string", "x-grounding": False},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "size": {"type": "object", "properties": {"w": {"type": "integer"}}, "required": ["w"]},
    },
    "required": ["caption", "tags", "size"],
}


def test_grounding_puts_a_metadata_object_beside_each_scalar_value_at_any_depth() -> None:
    out = grounding.grounded_schema(CAPTION, pages=3)
    props = out["properties"]
    assert list(props) == [
        "caption", "caption_metadata", "kind", "kind_metadata", "note", "tags", "tags_metadata", "items",
        "size",
    ]  # fmt: skip
    assert out["required"] == ["caption", "caption_metadata", "tags", "tags_metadata", "size"]
    assert "name_metadata" in props["items"]["items"]["properties"]
    assert "w_metadata" in props["size"]["properties"]
    assert props["size"]["required"] == ["w", "w_metadata"]
    assert "x-grounding" not in json.dumps(out)
    assert "x-grounding" in json.dumps(CAPTION)  # the domain's own schema is left as it was


def test_grounding_boxes_are_bounded_by_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(grounding.grounded_schema(CAPTION, pages=2))
    good = {
        "caption": "a cat", "caption_metadata": {"bboxes": [{"xywh": [0.1, 0.2, 0.3, 0.4], "page": 1}]},
        "tags": [], "tags_metadata": {"bboxes": [{"xywh": [0, 0, 1, 1], "page": 0}]}, "size": {"w": 1,
        "w_metadata": {"bboxes": [{"xywh": [0, 0, 1, 1], "page": 0}]}},
    }  # fmt: skip
    assert validator.is_valid(good)
    bad_boxes = [
        {"xywh": [0.1, 0.2, 1.5, 0.4], "page": 0},
        {"xywh": [0.1, 0.2, 0.3], "page": 0},
        {"xywh": [0.1, 0.2, 0.3, 0.4], "page": 2},
        {"xywh": [-0.1, 0, 0, 0], "page": 0},
    ]
    for bad_box in bad_boxes:
        bad = {**good, "caption_metadata": {"bboxes": [bad_box]}}
        assert not validator.is_valid(bad), bad_box
    assert not validator.is_valid({**good, "caption_metadata": {"bboxes": []}})
    regex = compile_json_schema(grounding.grounded_schema(CAPTION, pages=2))
    assert "xywh" in regex


def test_confidence_levels_are_written_into_the_metadata_from_the_fields_confidence() -> None:
    answer = {
        "caption": "x", "caption_metadata": {"bboxes": []},
        "items": [{"name": "a", "name_metadata": {"bboxes": []}}],
        "tags": ["t"], "tags_metadata": {"bboxes": []},
    }  # fmt: skip
    grounding.add_confidence_levels(answer, {"caption": 0.95, "items[0].name": 0.6, "tags": 0.1})
    assert answer["caption_metadata"]["confidence"] == "hi"
    assert answer["items"][0]["name_metadata"]["confidence"] == "med"
    assert answer["tags_metadata"]["confidence"] == "low"


def test_plan_uses_the_domain_prompt_and_schema_unless_the_config_gives_its_own() -> None:
    domain = REGISTRY.get("image.caption")
    plain = build_plan(domain, GenerationConfig(json_schema={}, response_model="<any>"), pages=1)
    assert (plain.prompt, plain.schema) == (domain.prompt, domain.schema)
    own = {"type": "object", "properties": {"n": {"type": "integer"}}}
    custom = build_plan(domain, GenerationConfig(prompt="Count.", json_schema=own), pages=1)
    assert custom.schema == own and custom.prompt.startswith("Count.") and '"n"' in custom.prompt
    assert build_plan(domain, GenerationConfig(response_model=own), pages=1).schema == own
    grounded = build_plan(domain, GenerationConfig(grounding=True, detail="lo"), pages=2)
    assert "caption_metadata" in grounded.schema["properties"] and grounded.detail == "low"


@pytest.mark.parametrize(
    ("config", "param"),
    [
        (GenerationConfig(json_schema={"type": "object", "minProperties": "x"}), "config.json_schema"),
        (GenerationConfig(response_model={"type": 1}), "config.response_model"),
        (GenerationConfig(gql_stmt="{ caption }"), "config.gql_stmt"),
        (
            GenerationConfig(json_schema={"type": "object"}, response_model={"type": "object"}),
            "config.json_schema",
        ),
    ],
)
def test_bad_config_is_a_400_naming_the_field(config: GenerationConfig, param: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        build_plan(REGISTRY.get("image.caption"), config, pages=1)
    assert caught.value.param == param


def _completion(
    text: str, finish: str = "stop", confidence: dict[str, float] | None = None
) -> ChatCompletion:
    choice = Choice(index=0, message=ChatMessage(content=text), finish_reason=finish)
    if confidence is not None:
        choice.confidence = confidence
    return ChatCompletion(id="c", created=1, model="m", choices=[choice])


def test_an_answer_cut_off_by_max_tokens_is_a_422_naming_max_tokens() -> None:
    plan = build_plan(REGISTRY.get("image.caption"), GenerationConfig(max_tokens=7), pages=1)
    with pytest.raises(UnprocessableError) as caught:
        interpret(plan, _completion('{"caption": "a lo', finish="length"))
    assert caught.value.param == "config.max_tokens" and "(7)" in caught.value.message


def test_confidence_is_reported_only_when_asked_but_grounding_levels_use_it() -> None:
    text = json.dumps({"caption": "c", "caption_metadata": {"bboxes": [{"xywh": [0, 0, 1, 1], "page": 0}]}})
    grounded = build_plan(REGISTRY.get("image.caption"), GenerationConfig(grounding=True), pages=1)
    outcome = interpret(grounded, _completion(text, confidence={"caption": 0.55}))
    assert outcome.confidence is None
    assert outcome.response["caption_metadata"]["confidence"] == "med"
    asked = build_plan(REGISTRY.get("image.caption"), GenerationConfig(confidence=True), pages=1)
    assert interpret(
        asked, _completion('{"caption": "c", "tags": []}', confidence={"caption": 0.9})
    ).confidence


def test_training_layout_is_typed_when_fields_fit_variables_else_one_json_string() -> None:
    caption = REGISTRY.get("image.caption").schema
    typed = layout_for(caption)
    assert typed.shape() == {("caption", "string"), ("tags", "array")}
    assert typed.template == '{"caption": "{{caption}}", "tags": {{tags}}}'
    assert values_for(typed, {"caption": "c", "tags": ["a"]}) == {"caption": "c", "tags": ["a"]}
    invoice = layout_for(REGISTRY.get("document.invoice").schema)  # line items: objects in an array
    assert invoice.shape() == {(JSON_VARIABLE, "string")} and invoice.template == "{{response}}"
    assert values_for(invoice, {"a": [1]}) == {JSON_VARIABLE: '{"a":[1]}'}
    assert layout_for(grounding.grounded_schema(caption, 1)).shape() == {(JSON_VARIABLE, "string")}


def test_training_target_needs_permission_and_a_session_or_dataset() -> None:
    assert target_for(RequestMetadata()) is None
    assert target_for(RequestMetadata(session_id="s", allow_training=False)) is None
    by_session = target_for(RequestMetadata(session_id="s1", environment="prod"))
    assert by_session is not None and (by_session.dataset, by_session.param) == (
        "session s1",
        "metadata.session_id",
    )
    named = target_for(RequestMetadata(session_id="s1", dataset="Reviewed invoices"))
    assert named is not None and named.dataset == "Reviewed invoices"


def test_signature_is_vlmruns_hmac_sha256_of_the_raw_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"x"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify("k", body, sign("k", body))
    assert not verify("k", body + b" ", sign("k", body))
    assert not verify("other", body, sign("k", body))


async def test_context_length_of_a_model_or_of_an_adapters_base() -> None:
    from gateway.openai_api.protocol import ModelCard, ModelList
    from gateway.predictions.executor import PredictionExecutor

    cards = [
        ModelCard(id="base", created=1, owned_by="x", max_model_len=2048),
        ModelCard(id="lora", created=1, owned_by="x", parent="base"),
        ModelCard(id="odd", created=1, owned_by="x"),
    ]

    async def listing(_workspace: str | None) -> ModelList:
        return ModelList(data=cards)

    executor = PredictionExecutor(chat=None, list_models=listing)  # type: ignore[arg-type]
    assert await executor.context_length("base", "w") == 2048
    assert await executor.context_length("lora", "w") == 2048
    assert await executor.context_length("odd", "w") is None
    assert await executor.context_length("gone", "w") is None
    assert await executor.model_for("vlm-1", "w") == "base"
