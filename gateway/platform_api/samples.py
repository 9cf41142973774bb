"""Samples: training examples of a dataset, with up to 10 ordered images and typed variable values.

A sample owns its image links and values (deleting it removes them; the images stay in the workspace).
Values are checked against their variable's type and constraints and stored as ``{"value": X}``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tortoise.functions import Max
from tortoise.transactions import in_transaction

from gateway.db import models as db
from gateway.db.render import from_row
from gateway.errors import FieldsInvalidError
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import EntityService, Page, PageRequest, paginate, referenced, where
from gateway.platform_api.images import image_file_url
from gateway.platform_api.tasks import touch_dataset
from gateway.platform_api.variable_rules import checked_value, definition
from gateway.platform_api.variables import unwrap, wrap_value

MAX_IMAGES_PER_SAMPLE = 10


class SampleService(EntityService[db.Sample, wire.Sample]):
    model, what, required = db.Sample, "Sample", ()

    async def listing(
        self,
        ws: uuid.UUID,
        page: PageRequest,
        dataset: uuid.UUID | None,
        test: bool | None,
        search: str | None,
    ) -> Page:
        query = db.Sample.filter(dataset__workspace_id=ws).order_by("created", "id")
        query = where(query, dataset_id=dataset, test=test, name__icontains=search)
        return await paginate(query, page, self.render)

    async def create(self, ws: uuid.UUID, body: wire.SampleCreate) -> wire.Sample:
        dataset = await referenced(db.Dataset, body.dataset, ws, "dataset", "Dataset")
        images = await self._images(ws, body.image_ids, already=0)
        async with in_transaction():
            sample = await db.Sample.create(
                dataset=dataset,
                name=body.name,
                test=body.test,
                type=body.type,
                input_meta_data=body.input_meta_data,
            )
            for position, image in enumerate(images):
                await db.SampleImage.create(sample=sample, image=image, position=position)
        await touch_dataset(dataset.id)
        return await self.get(ws, sample.id)

    async def change(self, sample: db.Sample, values: dict[str, Any], *, put: bool) -> None:
        """PATCH merges ``input_meta_data`` into the stored one; PUT replaces it."""
        if "input_meta_data" in values and not put:
            values["input_meta_data"] = {**(sample.input_meta_data or {}), **values["input_meta_data"]}
        if values:
            await sample.update_from_dict(values).save()
            await touch_dataset(sample.dataset_id)

    async def set_test(self, ws: uuid.UUID, sample_id: uuid.UUID, test: bool) -> wire.Sample:
        sample = await self.row(ws, sample_id)
        if sample.test != test:
            sample.test = test
            await sample.save(update_fields=["test", "updated"])
            await touch_dataset(sample.dataset_id)
        return await self.get(ws, sample_id)

    async def delete(self, ws: uuid.UUID, sample_id: uuid.UUID) -> None:
        sample = await self.row(ws, sample_id)
        await sample.delete()  # image links and values cascade
        await touch_dataset(sample.dataset_id)

    async def add_images(self, ws: uuid.UUID, sample_id: uuid.UUID, body: wire.ImageIds) -> wire.Sample:
        """Append images in the order given; images the sample already has are skipped."""
        sample = await self.row(ws, sample_id)
        async with in_transaction():
            await _lock(sample)
            have = set(await db.SampleImage.filter(sample=sample).values_list("image_id", flat=True))
            wanted = [i for i in dict.fromkeys(body.image_ids) if i not in have]
            images = await self._images(ws, wanted, already=len(have))
            top = await db.SampleImage.filter(sample=sample).annotate(m=Max("position")).values("m")
            start = (top[0]["m"] + 1) if top and top[0]["m"] is not None else 0
            for offset, image in enumerate(images):
                await db.SampleImage.create(sample=sample, image=image, position=start + offset)
        return await self._touched(ws, sample)

    async def remove_images(self, ws: uuid.UUID, sample_id: uuid.UUID, body: wire.ImageIds) -> wire.Sample:
        sample = await self.row(ws, sample_id)
        async with in_transaction():
            await _lock(sample)
            await db.SampleImage.filter(sample=sample, image_id__in=body.image_ids).delete()
            for position, link in enumerate(await db.SampleImage.filter(sample=sample).order_by("position")):
                if link.position != position:
                    link.position = position
                    await link.save(update_fields=["position"])
        return await self._touched(ws, sample)

    async def set_value(
        self, ws: uuid.UUID, sample_id: uuid.UUID, body: wire.VariableValueSet
    ) -> wire.Sample:
        """Add or replace the sample's value of a variable of its dataset, checked against the variable."""
        sample, variable = await self._value_of(ws, sample_id, body.dataset_variable)
        try:
            value = checked_value(definition(variable), wrap_value(body.value))
        except ValueError as exc:
            raise FieldsInvalidError({"value": f"`{variable.name}` ({variable.type}): {exc}"}) from None
        await db.VariableValue.update_or_create(
            sample=sample, variable=variable, defaults={"value": {"value": value}}
        )
        return await self._touched(ws, sample)

    async def remove_value(
        self, ws: uuid.UUID, sample_id: uuid.UUID, body: wire.VariableValueRef
    ) -> wire.Sample:
        sample, variable = await self._value_of(ws, sample_id, body.dataset_variable)
        await db.VariableValue.filter(sample=sample, variable=variable).delete()
        return await self._touched(ws, sample)

    async def _touched(self, ws: uuid.UUID, sample: db.Sample) -> wire.Sample:
        """The sample after a change: its dataset marked changed (``touch_dataset``), the sample rendered."""
        await touch_dataset(sample.dataset_id)
        return await self.get(ws, sample.id)

    async def _value_of(
        self, ws: uuid.UUID, sample_id: uuid.UUID, variable_id: uuid.UUID
    ) -> tuple[db.Sample, db.Variable]:
        """The sample and the variable of its dataset whose value a request sets or removes (400 when the
        variable is not one of the sample's dataset)."""
        sample = await self.row(ws, sample_id)
        variable = await db.Variable.filter(id=variable_id, dataset_id=sample.dataset_id).first()
        if variable is None:
            raise FieldsInvalidError(
                {"dataset_variable": f"variable {variable_id} not found in the sample's dataset"}
            )
        return sample, variable

    @staticmethod
    async def _images(ws: uuid.UUID, image_ids: Sequence[uuid.UUID], *, already: int) -> list[db.Image]:
        ids = list(dict.fromkeys(image_ids))
        if already + len(ids) > MAX_IMAGES_PER_SAMPLE:
            raise FieldsInvalidError(
                {
                    "image_ids": f"a sample has at most {MAX_IMAGES_PER_SAMPLE} images "
                    f"(it has {already}, {len(ids)} more given)"
                }
            )
        found = {row.id: row for row in await db.Image.filter(id__in=ids, workspace_id=ws)}
        missing = {f"image_ids[{i}]": f"image {x} not found" for i, x in enumerate(ids) if x not in found}
        if missing:
            raise FieldsInvalidError(missing)
        return [found[i] for i in ids]

    @staticmethod
    async def render(samples: Sequence[db.Sample]) -> list[wire.Sample]:
        ids = [s.id for s in samples]
        images: dict[uuid.UUID, list[wire.SampleImage]] = defaultdict(list)
        links = await db.SampleImage.filter(sample_id__in=ids).order_by("position").prefetch_related("image")
        for link in links:
            img = link.image
            images[link.sample_id].append(
                wire.SampleImage(
                    img.id, link.position, img.width, img.height, img.format, image_file_url(img.id)
                )
            )
        values: dict[uuid.UUID, list[wire.VariableValue]] = defaultdict(list)
        rows = (
            await db.VariableValue.filter(sample_id__in=ids)
            .order_by("variable__created")
            .prefetch_related("variable")
        )
        for row in rows:
            var = row.variable
            values[row.sample_id].append(
                wire.VariableValue(var.id, var.name, var.type, {"value": unwrap(row.value)})
            )
        datasets = {s.dataset_id for s in samples}
        ds = {d.id: d for d in await db.Dataset.filter(id__in=datasets)}
        return [
            from_row(
                wire.Sample,
                s,
                dataset_name=ds[s.dataset_id].name,
                input_meta_data=s.input_meta_data or {},
                images=images[s.id],
                image_count=len(images[s.id]),
                variable_values=values[s.id],
                workspace=ds[s.dataset_id].workspace_id,
            )
            for s in samples
        ]


async def _lock(sample: db.Sample) -> None:
    """Serialise image changes of one sample (PostgreSQL row lock; SQLite transactions are serial anyway),
    so two concurrent add-images cannot pass the 10-image limit or take the same positions."""
    await db.Sample.filter(id=sample.id).select_for_update().first()
