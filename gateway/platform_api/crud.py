"""One CRUD shape for the platform entities: list, create, get, replace (PUT), update (PATCH), delete.

Every entity of ``/vlm/v2`` (task, dataset, variable, sample, image) has the same six routes over a service
with the same six methods, and some have actions that change one object (``Action``: a task's add-dataset,
a sample's add-images, ...); ``crud_routes`` writes the handlers once from a ``Resource`` description. Each
generated handler has a real signature (the entity's path parameter, its wire types, its list filters),
so Litestar validates and documents it exactly as a hand-written one: per-route summaries, response
examples and operation ids stay as they were.

Service contract (``wire`` types per entity): ``listing(ws, page, *filters) -> Page``, ``create(ws, body)``,
``get(ws, id)``, ``update(ws, id, body, put=bool)``, ``delete(ws, id)``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from gateway.dependencies import Page, Ws
from gateway.platform_api.common import Page as PageResult

NO_CONTENT = 204
# The parameter markers, indexed with types known only at run time.
_path: Any = FromPath
_json_body: Any = JSONBody
_named: Any = NamedDependency
C = TypeVar("C")
OPERATIONS = ("list", "create", "get", "replace", "update", "remove")


@dataclass(frozen=True)
class Action:
    """A ``POST /{id}/<path>/`` route on one object (Ximilar's ``add-dataset``, ``add-images``, ...): the
    service's ``<call>(ws, id, body)``, answered with the object (200). ``path`` is the name with dashes
    and ``call`` the name, unless given."""

    name: str  # "add_images": the handler's name
    summary: str
    body: type
    path: str = ""
    call: str = ""
    responses: Any = None


@dataclass(frozen=True)
class Resource:
    """One platform entity as the API shows it.

    ``summaries``/``responses`` are per operation (``OPERATIONS``); ``filters`` are the list's extra query
    parameters as (name, annotation), passed to ``listing`` in that order. Unless given, the operations are
    summarised as "List tasks", "Create a task", "Get a task", "Replace a task's fields (`name` required)"
    and "Update some of a task's fields", and "list", "create" and "get" are documented with the examples
    ``page_example`` (list) and ``example(status)`` (create: 201, get: 200).
    """

    name: str  # "task": path segment, id parameter `task_id`, dependency `task_service`
    plural: str  # "tasks": operation name `list_tasks`
    out: type
    page: type
    create: type | None = None
    update: type | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    summaries: dict[str, str] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
    operations: tuple[str, ...] = OPERATIONS
    delete_status: int = NO_CONTENT
    example: Callable[[int], Any] | None = None
    page_example: Any = None
    actions: tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        summaries = {
            "list": f"List {self.plural}",
            "create": f"Create a {self.name}",
            "get": f"Get a {self.name}",
            "replace": f"Replace a {self.name}'s fields (`name` required)",
            "update": f"Update some of a {self.name}'s fields",
        }
        object.__setattr__(self, "summaries", summaries | self.summaries)
        if self.example is not None:
            examples = {"list": self.page_example, "create": self.example(201), "get": self.example(200)}
            object.__setattr__(self, "responses", examples | self.responses)

    @property
    def id_param(self) -> str:
        return f"{self.name}_id"

    @property
    def service(self) -> str:
        return f"{self.name}_service"


def with_crud(res: Resource) -> Callable[[type[C]], type[C]]:
    """Class decorator: add the entity's CRUD handlers to a ``Controller``."""

    def apply(cls: type[C]) -> type[C]:
        for name, handler in crud_routes(res).items():
            setattr(cls, name, handler)
        return cls

    return apply


def to_page(cls: type[Any], page: PageResult) -> Any:
    return cls(count=page.count, next=page.next, previous=page.previous, results=page.results)


def crud_routes(res: Resource) -> dict[str, HTTPRouteHandler]:
    """The entity's handlers by method name, to put in a ``Controller`` class body."""
    item = f"/{{{res.id_param}:uuid}}/"
    ident: list[tuple[str, Any, Any]] = [(res.id_param, _path[uuid.UUID], inspect.Parameter.empty)]
    service = (res.service, _named[Any], inspect.Parameter.empty)
    ws = ("ws", Ws, inspect.Parameter.empty)
    built: dict[str, HTTPRouteHandler] = {}

    def add(
        op: str, decorator: Any, path: str, params: list[Any], returns: Any, call: Call, **kw: Any
    ) -> None:
        if op not in res.operations:
            return
        name = f"list_{res.plural}" if op == "list" else ("get_one" if op == "get" else op)
        route = decorator(path, summary=res.summaries.get(op), responses=res.responses.get(op), **kw)
        built[name] = route(_handler(name, params, returns, call))

    def body(kind: type | None) -> Any:
        return ("data", _json_body[kind], inspect.Parameter.empty)

    listing = [ws, *((n, a, None) for n, a in res.filters), ("paging", Page, inspect.Parameter.empty)]
    add("list", get, "/", [*listing, service], res.page, _list(res))
    add("create", post, "/", [body(res.create), service, ws], res.out, _create(res), status_code=201)
    add("get", get, item, [*ident, service, ws], res.out, _get(res))
    add("replace", put, item, [*ident, body(res.update), service, ws], res.out, _update(res, put=True))
    add("update", patch, item, [*ident, body(res.update), service, ws], res.out, _update(res, put=False))
    add("remove", delete, item, [*ident, service, ws], None, _remove(res), status_code=res.delete_status)
    for action in res.actions:
        path = f"{item}{action.path or action.name.replace('_', '-')}/"
        route = post(path, summary=action.summary, responses=action.responses, status_code=200)
        params = [*ident, body(action.body), service, ws]
        built[action.name] = route(
            _handler(action.name, params, res.out, _act(res, action.call or action.name))
        )
    return built


Call = Callable[[dict[str, Any]], Awaitable[Any]]


def _handler(name: str, params: list[tuple[str, Any, Any]], returns: Any, call: Call) -> Any:
    """A handler function named ``name`` whose signature Litestar reads as if it were written out."""

    async def handler(self: Any, **kwargs: Any) -> Any:
        return await call(kwargs)

    handler.__name__ = handler.__qualname__ = name
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    signature += [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in params
    ]
    handler.__signature__ = inspect.Signature(signature, return_annotation=returns)  # type: ignore[attr-defined]
    handler.__annotations__ = {**{n: a for n, a, _ in params}, "return": returns}
    return handler


def _list(res: Resource) -> Call:
    async def call(kw: dict[str, Any]) -> Any:
        filters = [kw[n] for n, _ in res.filters]
        return to_page(res.page, await kw[res.service].listing(kw["ws"], kw["paging"], *filters))

    return call


def _create(res: Resource) -> Call:
    async def call(kw: dict[str, Any]) -> Any:
        return await kw[res.service].create(kw["ws"], kw["data"])

    return call


def _get(res: Resource) -> Call:
    async def call(kw: dict[str, Any]) -> Any:
        return await kw[res.service].get(kw["ws"], kw[res.id_param])

    return call


def _update(res: Resource, *, put: bool) -> Call:
    async def call(kw: dict[str, Any]) -> Any:
        return await kw[res.service].update(kw["ws"], kw[res.id_param], kw["data"], put=put)

    return call


def _act(res: Resource, method: str) -> Call:
    async def call(kw: dict[str, Any]) -> Any:
        return await getattr(kw[res.service], method)(kw["ws"], kw[res.id_param], kw["data"])

    return call


def _remove(res: Resource) -> Call:
    async def call(kw: dict[str, Any]) -> None:
        await kw[res.service].delete(kw["ws"], kw[res.id_param])

    return call
