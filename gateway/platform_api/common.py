"""What every platform service needs: pagination and lookups by id within a workspace.

The workspace a request acts in is resolved before the service is called (``gateway.dependencies``); a
lookup of an object in another workspace is "not found" (404), never "forbidden".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import urlencode

import msgspec
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet

from gateway.errors import FieldsInvalidError, NotFoundError

M = TypeVar("M", bound=Model)
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000  # page * page_size stays far inside the database's 64-bit integers
# The largest integer a request may store: database integer columns are 32-bit on PostgreSQL.
MAX_DB_INT = 2_147_483_647


@dataclass(frozen=True)
class PageRequest:
    """A list request: page number and size, and the URL (path + other query parameters) for links."""

    page: int
    page_size: int
    path: str
    params: dict[str, str]

    def link(self, page: int) -> str:
        return f"{self.path}?{urlencode({**self.params, 'page': page, 'page_size': self.page_size})}"


@dataclass(frozen=True)
class Page:
    count: int
    next: str | None
    previous: str | None
    results: list[Any]


async def paginate(
    query: QuerySet[M], request: PageRequest, render: Callable[[Sequence[M]], Awaitable[list[T]]]
) -> Page:
    """One page of ``query`` rendered by ``render``, with ``next``/``previous`` links."""
    count = await query.count()
    offset = (request.page - 1) * request.page_size
    rows = await query.offset(offset).limit(request.page_size)
    results = await render(rows)
    has_next = offset + len(rows) < count
    return Page(
        count=count,
        next=request.link(request.page + 1) if has_next else None,
        previous=request.link(request.page - 1) if request.page > 1 and count else None,
        results=results,
    )


async def get_in_workspace(
    model: type[M], object_id: uuid.UUID, workspace: uuid.UUID, what: str, *, param: str | None = None
) -> M:
    """The object with ``object_id`` in ``workspace`` (directly, or via its dataset or task), else 404
    (naming the request's ``param`` when given)."""
    row = await model.filter(id=object_id, **_workspace_filter(model, workspace)).first()
    if row is None:
        raise NotFoundError(f"{what} {object_id} not found.", param=param)
    return row


async def counts_by(model: type[Model], key: str, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many rows of ``model`` point at each of ``ids`` through the foreign key column ``key``
    (e.g. samples per dataset: ``counts_by(Sample, "dataset_id", ids)``); ids without rows are left out."""
    rows = await model.filter(**{f"{key}__in": ids}).annotate(n=Count("id")).group_by(key).values(key, "n")
    return {uuid.UUID(str(row[key])): int(row["n"]) for row in rows}


async def referenced(model: type[M], object_id: uuid.UUID, workspace: uuid.UUID, field: str, what: str) -> M:
    """An object named in a request body: like ``get_in_workspace`` but a 400 naming ``field``."""
    row = await model.filter(id=object_id, **_workspace_filter(model, workspace)).first()
    if row is None:
        raise FieldsInvalidError({field: f"{what} {object_id} not found"})
    return row


def changes(body: msgspec.Struct, *, skip: tuple[str, ...] = ("workspace",)) -> dict[str, Any]:
    """The fields an update body sets (UNSET ones left out)."""
    return {
        name: value
        for name in body.__struct_fields__
        if name not in skip and (value := getattr(body, name)) is not msgspec.UNSET
    }


def require_fields(values: dict[str, Any], required: tuple[str, ...]) -> None:
    """PUT replaces an object: its required fields must be given."""
    missing = {name: "is required" for name in required if name not in values}
    if missing:
        raise FieldsInvalidError(missing)


def where(query: QuerySet[M], **conditions: Any) -> QuerySet[M]:
    """``query`` narrowed by each of a listing's filters that was given (not None, not an empty string)."""
    given = {name: value for name, value in conditions.items() if value is not None and value != ""}
    return query.filter(**given) if given else query


class EntityService(Generic[M, T]):
    """The part every platform entity's service shares: its rows by id within the caller's workspace, and
    a row as the API shows it (``render``, written per entity: a batch of rows to their wire form)."""

    model: ClassVar[type[Model]]
    what: ClassVar[str]  # "Task": how a 404 names the object
    required: ClassVar[tuple[str, ...]] = ("name",)  # the fields a PUT must give

    async def row(self, ws: uuid.UUID, object_id: uuid.UUID) -> M:
        """The row ``object_id`` of the workspace ``ws``, else 404."""
        return cast(M, await get_in_workspace(self.model, object_id, ws, self.what))

    async def get(self, ws: uuid.UUID, object_id: uuid.UUID) -> T:
        return (await self.render([await self.row(ws, object_id)]))[0]

    async def update(self, ws: uuid.UUID, object_id: uuid.UUID, body: msgspec.Struct, *, put: bool) -> T:
        """PATCH (``put=False``) changes the fields the body sets; PUT replaces the object, so it must give
        every ``required`` field. ``change`` checks and stores them, per entity."""
        row = await self.row(ws, object_id)
        values = changes(body)
        if put:
            require_fields(values, self.required)
        await self.change(row, values, put=put)
        return await self.get(ws, object_id)

    async def change(self, row: M, values: dict[str, Any], *, put: bool) -> None:
        raise NotImplementedError

    async def render(self, rows: Sequence[M]) -> list[T]:
        raise NotImplementedError


def _workspace_filter(model: type[Model], workspace: uuid.UUID) -> dict[str, Any]:
    fields = model._meta.fields_map
    if "workspace" in fields:
        return {"workspace_id": workspace}
    if "dataset" in fields:
        return {"dataset__workspace_id": workspace}
    if "task" in fields:
        return {"task__workspace_id": workspace}
    raise TypeError(f"{model.__name__} has no workspace")
