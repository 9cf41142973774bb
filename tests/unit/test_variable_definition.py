"""A variable is defined once (``finetune.variables.VariableSpec``); the row, the wire bodies and the rules
are derived from it. These tests fail when a representation loses a field or the platform's form drifts."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Annotated, Any, get_args, get_origin

import msgspec
import pytest

from finetune.variables import DEFINITION_FIELDS, VariableSpec, VariableType, definition_of
from gateway.db import models as db
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import changes
from gateway.platform_api.variable_rules import definition, row_values, stored_choices

DATASET = uuid.UUID(int=1)


def test_every_definition_field_says_what_it_means_and_has_a_column() -> None:
    columns = set(db.Variable._meta.fields_map)
    for field in msgspec.structs.fields(VariableSpec):
        assert get_origin(field.type) is Annotated, f"{field.name} has no Meta(description=...)"
        metas = [m for m in get_args(field.type)[1:] if isinstance(m, msgspec.Meta)]
        assert metas and metas[0].description, field.name
        assert field.name in columns, f"the Variable row has no column for `{field.name}`"


def test_wire_bodies_carry_exactly_the_definition_fields() -> None:
    assert wire.VariableCreate.__struct_fields__ == ("dataset", *DEFINITION_FIELDS, "workspace")
    assert wire.VariableUpdate.__struct_fields__ == (*DEFINITION_FIELDS, "workspace")
    assert wire.Variable.__struct_fields__ == ("id", "dataset", "dataset_name", *DEFINITION_FIELDS)


def test_create_body_takes_ximilars_form() -> None:
    body = msgspec.json.decode(
        b'{"dataset": "%s", "name": "grade", "type": "float", "min_value": 0, "choices": "a, b"}'
        % str(DATASET).encode(),
        type=wire.VariableCreate,
    )
    assert body.required is False  # Ximilar's default, unlike VariableSpec's
    assert body.min_value == 0.0 and isinstance(body.min_value, float)
    assert body.choices == "a, b"
    listed = msgspec.json.decode(
        b'{"dataset": "%s", "name": "g", "type": "string", "choices": ["a", "b"]}' % str(DATASET).encode(),
        type=wire.VariableCreate,
    )
    assert listed.choices == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"name": "g", "type": "date"}, "$.type"),
        ({"name": "g" * 101, "type": "string"}, "$.name"),
        ({"name": "", "type": "string"}, "$.name"),
        ({"name": "g", "type": "string", "colour": "red"}, "colour"),
        ({"type": "string"}, "name"),
    ],
)
def test_create_body_refuses_what_the_platform_does_not_take(body: dict[str, Any], where: str) -> None:
    raw = msgspec.json.encode({"dataset": str(DATASET), **body})
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
        msgspec.json.decode(raw, type=wire.VariableCreate)


def test_update_body_sets_only_what_it_names() -> None:
    body = msgspec.json.decode(b'{"min_value": 1, "choices": null}', type=wire.VariableUpdate)
    assert changes(body) == {"min_value": 1.0, "choices": None}
    with pytest.raises(msgspec.ValidationError, match=r"\$.type"):
        msgspec.json.decode(b'{"type": "date"}', type=wire.VariableUpdate)


def test_response_always_carries_required_and_leaves_unset_rules_out() -> None:
    for required in (True, False):
        row = SimpleNamespace(
            **row_values(VariableSpec(name="grade", type=VariableType.FLOAT, required=required, max_value=10))
        )
        out = msgspec.to_builtins(
            wire.Variable(id=uuid.UUID(int=2), dataset=DATASET, dataset_name="d", **definition_of(row))
        )
        assert out == {
            "id": str(uuid.UUID(int=2)),
            "dataset": str(DATASET),
            "dataset_name": "d",
            "name": "grade",
            "type": "float",
            "required": required,
            "max_value": 10.0,
        }


@pytest.mark.parametrize(
    "spec",
    [
        VariableSpec(name="grade", type=VariableType.FLOAT, min_value=0.0, max_value=10.0, step_size=0.5),
        VariableSpec(name="condition", type=VariableType.STRING, choices=["mint", "good"], required=False),
        VariableSpec(name="tags", type=VariableType.ARRAY, choices=["a", "b"], max_length=2, description="t"),
        VariableSpec(name="count", type=VariableType.INTEGER, default_value=3, min_value=0.0),
        VariableSpec(name="meta", type=VariableType.OBJECT, default_value={"k": [1, "x"]}),
    ],
)
def test_a_definition_survives_the_row(spec: VariableSpec) -> None:
    stored = row_values(spec)
    assert set(stored) == set(DEFINITION_FIELDS)
    assert stored["type"] == spec.type.value and isinstance(stored["type"], str)
    assert stored["choices"] == (",".join(spec.choices) if spec.choices else None)
    assert definition(SimpleNamespace(**stored)) == spec


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (None, None),
        ("", None),
        (" , ,", None),
        ([], None),
        ("mint, good ,poor", "mint,good,poor"),
        ([" mint ", "", "good"], "mint,good"),
    ],
)
def test_choices_are_read_leniently_and_stored_comma_separated(
    given: str | list[str] | None, stored: str | None
) -> None:
    assert stored_choices(given) == stored
