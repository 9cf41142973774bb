"""What every platform service needs: pagination and lookups by id within a workspace.

The workspace a request acts in is resolved before the service is called (``gateway.dependencies``); a
lookup of an object in another workspace is "not found" (404), never "forbidden".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

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


async def get_in_workspace(model: type[M], object_id: uuid.UUID, workspace: uuid.UUID, what: str) -> M:
    """The object with ``object_id`` in ``workspace`` (directly or via its dataset), else 404."""
    row = await model.filter(id=object_id, **_workspace_filter(model, workspace)).first()
    if row is None:
        raise NotFoundError(f"{what} {object_id} not found.")
    return row


async def referenced(model: type[M], object_id: uuid.UUID, workspace: uuid.UUID, field: str, what: str) -> M:
    """An object named in a request body: like ``get_in_workspace`` but a 400 naming ``field``."""
    row = await model.filter(id=object_id, **_workspace_filter(model, workspace)).first()
    if row is None:
        raise FieldsInvalidError({field: f"{what} {object_id} not found"})
    return row


def _workspace_filter(model: type[Model], workspace: uuid.UUID) -> dict[str, Any]:
    fields = model._meta.fields_map
    if "workspace" in fields:
        return {"workspace_id": workspace}
    if "dataset" in fields:
        return {"dataset__workspace_id": workspace}
    raise TypeError(f"{model.__name__} has no workspace")
