"""Dataset variables: the typed fields of a dataset's result template.

Names are identifiers, unique within their dataset. A change that would invalidate data is refused: a
definition that existing values no longer fit, renaming or deleting a variable the dataset's
``result_template`` uses, deleting a variable that samples have values for (409 each).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from finetune.variables import VariableSpec, definition_of
from gateway.db import models as db
from gateway.errors import ConflictError, FieldsInvalidError
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import EntityService, Page, PageRequest, paginate, referenced, where
from gateway.platform_api.tasks import touch_dataset
from gateway.platform_api.variable_rules import (
    definition,
    definition_problems,
    row_values,
    stored_choices,
    template_problems,
    template_variables,
    value_problem,
)


def check_definition(values: dict[str, Any]) -> VariableSpec:
    """Validate a full definition (every field, as a request or a row gives it); its spec as it is stored."""
    var = VariableSpec(**{**values, "choices": stored_choices(values.get("choices"))})
    if problems := definition_problems(var):
        raise FieldsInvalidError(problems)
    return var


async def check_template_still_fits(
    dataset: db.Dataset, changed: VariableSpec | None, drop: str | None
) -> None:
    """409 when the dataset's result_template would no longer compile with the changed variables.

    Variables the template names that were not defined before the change may stay missing (the template is
    checked whole once they all exist); a change that makes a used variable missing is refused.
    """
    if not dataset.result_template.strip():
        return
    current = {v.name: definition(v) for v in await db.Variable.filter(dataset=dataset)}
    named = template_variables(dataset.result_template)
    missing_before = named - set(current)
    if drop is not None:
        current.pop(drop, None)
    if changed is not None:
        current[changed.name] = changed
    still_missing = named - set(current)
    if still_missing and still_missing <= missing_before:
        return
    if problems := template_problems(dataset.result_template, current.values()):
        raise ConflictError(
            f"The change would make the dataset's result_template invalid: {problems['result_template']}. "
            "Change the template first.",
            code="template_mismatch",
        )


class VariableService(EntityService[db.Variable, wire.Variable]):
    model, what, required = db.Variable, "Variable", ("name", "type")

    async def listing(self, ws: uuid.UUID, page: PageRequest, dataset: uuid.UUID | None) -> Page:
        query = db.Variable.filter(dataset__workspace_id=ws).order_by("created", "id")
        return await paginate(where(query, dataset_id=dataset), page, self.render)

    async def create(self, ws: uuid.UUID, body: wire.VariableCreate) -> wire.Variable:
        dataset = await referenced(db.Dataset, body.dataset, ws, "dataset", "Dataset")
        var = check_definition(definition_of(body))
        if await db.Variable.filter(dataset=dataset, name=var.name).exists():
            raise FieldsInvalidError({"name": f"the dataset already has a variable `{var.name}`"})
        await check_template_still_fits(dataset, var, None)
        row = await db.Variable.create(dataset=dataset, **row_values(var))
        await touch_dataset(dataset.id)
        return await self.get(ws, row.id)

    async def change(self, row: db.Variable, new: dict[str, Any], *, put: bool) -> None:
        var = check_definition({**definition_of(row), **new})
        dataset = await db.Dataset.get(id=row.dataset_id)
        if var.name != row.name:
            await self._check_rename(row, var.name, dataset)
        await self._check_existing_values(row, var)
        await check_template_still_fits(dataset, var, drop=row.name)
        await row.update_from_dict(row_values(var)).save()
        await touch_dataset(dataset.id)

    async def delete(self, ws: uuid.UUID, variable_id: uuid.UUID) -> None:
        row = await self.row(ws, variable_id)
        dataset = await db.Dataset.get(id=row.dataset_id)
        if row.name in template_variables(dataset.result_template):
            raise ConflictError(
                f"Variable `{row.name}` is used by the dataset's result_template; change the template first.",
                code="variable_in_use",
            )
        used = await db.VariableValue.filter(variable=row).count()
        if used:
            raise ConflictError(
                f"{used} sample(s) have a value for variable `{row.name}`; remove those values first "
                "(POST /vlm/v2/sample/SAMPLE_ID/remove-variable-value/) or delete the samples.",
                code="variable_in_use",
            )
        await row.delete()
        await touch_dataset(dataset.id)

    async def _check_rename(self, row: db.Variable, new_name: str, dataset: db.Dataset) -> None:
        if await db.Variable.filter(dataset=dataset, name=new_name).exclude(id=row.id).exists():
            raise FieldsInvalidError({"name": f"the dataset already has a variable `{new_name}`"})
        if row.name in template_variables(dataset.result_template):
            raise ConflictError(
                f"Variable `{row.name}` is used by the dataset's result_template; change the template first.",
                code="variable_in_use",
            )

    async def _check_existing_values(self, row: db.Variable, var: VariableSpec) -> None:
        bad = 0
        for stored in await db.VariableValue.filter(variable=row).values_list("value", flat=True):
            if value_problem(var, unwrap(stored)) is not None:
                bad += 1
        if bad:
            raise ConflictError(
                f"{bad} stored value(s) of `{row.name}` would not fit the new definition; change them first.",
                code="values_do_not_fit",
            )

    @staticmethod
    async def render(rows: Sequence[db.Variable]) -> list[wire.Variable]:
        ids = {r.dataset_id for r in rows}
        names = dict(await db.Dataset.filter(id__in=ids).values_list("id", "name"))
        return [
            wire.Variable(
                id=r.id,
                dataset=r.dataset_id,
                dataset_name=str(names.get(r.dataset_id, "")),
                **definition_of(r),
            )
            for r in rows
        ]


def unwrap(stored: Any) -> Any:
    """Stored values are ``{"value": X}``; X."""
    return stored.get("value") if isinstance(stored, dict) else stored


def wrap_value(given: Any) -> Any:
    """The X of a request's ``value``: ``{"value": X}`` (Ximilar's form), or a bare non-object X."""
    if isinstance(given, dict):
        if set(given) != {"value"}:
            raise FieldsInvalidError({"value": 'must be {"value": X}, e.g. {"value": 8.5}'})
        return given["value"]
    return given
