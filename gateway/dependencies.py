"""What route handlers receive by injection: the caller, the workspace a request acts in, a page request.

Registered once by the app (``gateway.dependencies.DEPENDENCIES``), so a handler names what it
needs (``principal``, ``ws``, ``paging``, ``base_url``) instead of resolving it by hand.

Workspace rule: the key's default workspace, or the one a ``workspace`` JSON (or form) field or query
parameter names, in that order, if the key's user may use it. A workspace the user may not use, and every
object in it, is "not found" (404), never "forbidden", so ids from other workspaces reveal nothing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter, SkipValidation

from gateway.db.keys import Principal
from gateway.db.models import Workspace
from gateway.errors import FieldsInvalidError, NotFoundError
from gateway.platform_api.common import DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, PageRequest

PageNo = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="1-based page number")]
PageSize = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="results per page")]
WorkspaceQ = Annotated[
    uuid.UUID | None, Parameter(description="act in this workspace (id) instead of the key's")
]

# What handlers declare (documented parameters come from the providers' signatures).
Ws = NamedDependency[SkipValidation[uuid.UUID]]
Page = NamedDependency[SkipValidation[PageRequest]]
Caller = NamedDependency[SkipValidation[Principal]]
BaseUrl = NamedDependency[SkipValidation[str]]


class _BodyWorkspace(msgspec.Struct):
    workspace: Any = None


_peek_workspace = msgspec.json.Decoder(_BodyWorkspace).decode


async def workspace_for(principal: Principal, *requested: uuid.UUID | str | None) -> uuid.UUID:
    """The workspace a request acts in: the first given ``requested`` value, else the key's default."""
    ref = next((r for r in requested if r not in (None, "")), None)
    if ref is None:
        return principal.default_workspace
    try:
        wanted = ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        raise FieldsInvalidError({"workspace": f"`{ref}` is not a workspace id (a UUID)"}) from None
    if wanted in principal.workspaces or wanted == principal.default_workspace:
        return wanted
    if principal.is_admin and await Workspace.filter(id=wanted).exists():
        return wanted
    raise NotFoundError(f"Workspace {wanted} not found.", param="workspace")


async def body_workspace(request: Request[Any, Any, Any]) -> str | None:
    """The ``workspace`` field of a JSON or form body, if it has one (the body stays cached for the
    handler). A body that does not parse is left to the handler's own decoding, which names the problem."""
    media_type = request.content_type[0]
    if media_type == "application/json":
        raw = await request.body()
        try:
            value = _peek_workspace(raw).workspace if raw.strip() else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return value if isinstance(value, str) else None
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        value = (await request.form()).get("workspace")
        return value if isinstance(value, str) else None
    return None


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller (set by the ``require_api_key`` guard)."""
    principal: Principal = request.state.principal
    return principal


async def provide_ws(request: Request[Any, Any, Any], workspace: WorkspaceQ = None) -> uuid.UUID:
    return await workspace_for(provide_principal(request), await body_workspace(request), workspace)


def provide_base_url(request: Request[Any, Any, Any]) -> str:
    """The gateway's URL as the caller reached it, for links in answers (e.g. an export's download)."""
    return str(request.base_url)


def provide_page(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = DEFAULT_PAGE_SIZE
) -> PageRequest:
    """The page asked for, with the URL that ``next``/``previous`` links are built from."""
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "page_size")}
    path = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    return PageRequest(page=page, page_size=page_size, path=path, params=params)


DEPENDENCIES = {
    "principal": Provide(provide_principal, sync_to_thread=False),
    "ws": Provide(provide_ws),
    "paging": Provide(provide_page, sync_to_thread=False),
    "base_url": Provide(provide_base_url, sync_to_thread=False),
}
