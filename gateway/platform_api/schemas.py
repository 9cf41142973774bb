"""Wire types of the platform API (``/vlm/v2``), shaped like Ximilar's VLM API.

Create bodies take every writable field; update bodies leave unset fields (``UNSET``) unchanged. Every body
may carry ``workspace`` (an id) to act in another workspace the key's user may use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from finetune.variables import Number, VariableSpec
from finetune.variables import VariableType as SpecType
from gateway.platform_api.common import MAX_DB_INT

SampleType = Literal["single", "multi_random", "multi_ordered"]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
MaxTokens = Annotated[int, Meta(ge=1, le=1_000_000)]
Version = Annotated[int, Meta(ge=0, le=MAX_DB_INT)]


class Workspace(Struct):
    id: uuid.UUID
    name: str
    default: bool


class WorkspaceList(Struct):
    count: int
    results: list[Workspace]


# ---- tasks


class TaskCreate(Struct, forbid_unknown_fields=True):
    name: Name
    description: str = ""
    system_prompt: str = ""
    user_prompt: str = ""
    max_tokens: MaxTokens = 1000
    base_model: str = ""
    auto_deploy: bool = True
    production_version: Version = 0
    datasets: list[uuid.UUID] = msgspec.field(default_factory=list)
    workspace: uuid.UUID | None = None


class TaskUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    description: str | UnsetType = UNSET
    system_prompt: str | UnsetType = UNSET
    user_prompt: str | UnsetType = UNSET
    max_tokens: MaxTokens | UnsetType = UNSET
    base_model: str | UnsetType = UNSET
    auto_deploy: bool | UnsetType = UNSET
    production_version: Version | UnsetType = UNSET
    workspace: uuid.UUID | None = None


class Task(Struct):
    id: uuid.UUID
    name: str
    created: datetime
    description: str
    auto_deploy: bool
    production_version: int
    system_prompt: str
    user_prompt: str
    max_tokens: int
    base_model: str
    datasets: list[uuid.UUID]
    dataset_count: int
    workspace: uuid.UUID


class TaskPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Task]


class DatasetRef(Struct, forbid_unknown_fields=True):
    dataset_id: uuid.UUID
    workspace: uuid.UUID | None = None


# ---- datasets


class DatasetCreate(Struct, forbid_unknown_fields=True):
    name: Name
    description: str = ""
    version: str | None = None
    system_prompt: str = ""
    user_prompt: str = ""
    result_template: str = ""
    workspace: uuid.UUID | None = None


class DatasetUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    description: str | UnsetType = UNSET
    version: str | UnsetType = UNSET
    system_prompt: str | UnsetType = UNSET
    user_prompt: str | UnsetType = UNSET
    result_template: str | UnsetType = UNSET
    workspace: uuid.UUID | None = None


class Dataset(Struct):
    id: uuid.UUID
    name: str
    created: datetime
    description: str
    version: str
    system_prompt: str
    user_prompt: str
    result_template: str
    samples_count: int
    variables_count: int
    # Variables the result_template names that the dataset does not define yet (training refuses until
    # they exist; create them with POST /vlm/v2/variable/).
    missing_variables: list[str]
    workspace: uuid.UUID


class DatasetPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Dataset]


# ---- variables
# A variable's fields, their types and meanings come from ``finetune.variables.VariableSpec``, its one
# definition. The platform carries them in Ximilar's form where that differs: ``choices`` as a comma-separated
# string (requests may send a list), numbers as floats (stored as floats), the name bounded by its database
# column, the type by name, and ``required`` false unless said.

_IN_REQUESTS: dict[str, Any] = {
    "name": Annotated[str, Meta(min_length=1, max_length=100)],
    "type": Literal[tuple(t.value for t in SpecType)],
    "choices": str | list[str] | None,
    # database integer columns: bounded, so a huge number is a 400 naming the field, not an overflow
    "min_length": Annotated[int, Meta(ge=0, le=MAX_DB_INT)] | None,
    "max_length": Annotated[int, Meta(ge=0, le=MAX_DB_INT)] | None,
}
_IN_RESPONSES: dict[str, Any] = {"name": str, "type": str, "choices": str | None}
_FLOATS = {Number | None: float | None}
_Field = tuple[str, Any] | tuple[str, Any, Any]


def _carried(spec: msgspec.structs.FieldInfo, *, response: bool = False, unset: bool = False) -> Any:
    """A definition field's type on the platform's wire, annotated with the spec's meaning (a ``Meta``)."""
    kind, *meaning = get_args(spec.type)
    kind = (_IN_RESPONSES if response else _IN_REQUESTS).get(spec.name, _FLOATS.get(kind, kind))
    return Annotated[kind | UnsetType if unset else kind, *meaning]


def _create_field(spec: msgspec.structs.FieldInfo) -> _Field:
    """Create bodies: the spec's defaults, but ``required`` is false unless said (Ximilar's default)."""
    default = False if spec.name == "required" else spec.default
    if default is msgspec.NODEFAULT:
        return (spec.name, _carried(spec))
    return (spec.name, _carried(spec), default)


def _update_field(spec: msgspec.structs.FieldInfo) -> _Field:
    """Update bodies: any field may be left out (``UNSET``: unchanged)."""
    return (spec.name, _carried(spec, unset=True), UNSET)


def _response_field(spec: msgspec.structs.FieldInfo) -> _Field:
    """Responses always carry name, type and required; rules that are not set (None, "") are left out."""
    if spec.default is None or spec.default == "":
        return (spec.name, _carried(spec, response=True), spec.default)
    return (spec.name, _carried(spec, response=True))


def _with_definition(
    field: Callable[[msgspec.structs.FieldInfo], _Field],
    before: list[Any],
    after: list[Any],
    **options: Any,
) -> Any:
    """A Struct with ``VariableSpec``'s fields (as ``field`` carries them) between the given fields.

    Typed ``Any`` so that the wire classes below can subclass it (type checkers see no fields on those).
    """
    fields = [field(spec) for spec in msgspec.structs.fields(VariableSpec)]
    return msgspec.defstruct(f"{field.__name__}s", [*before, *fields, *after], module=__name__, **options)


_WORKSPACE = ("workspace", uuid.UUID | None, None)
_CreateFields: Any = _with_definition(
    _create_field, [("dataset", uuid.UUID)], [_WORKSPACE], forbid_unknown_fields=True
)
_UpdateFields: Any = _with_definition(_update_field, [], [_WORKSPACE], forbid_unknown_fields=True)
_ResponseFields: Any = _with_definition(
    _response_field,
    [("id", uuid.UUID), ("dataset", uuid.UUID), ("dataset_name", str)],
    [],
    omit_defaults=True,
)


class VariableCreate(_CreateFields):
    """A new variable of a dataset."""


class VariableUpdate(_UpdateFields):
    """The fields to change (PATCH), or all of them (PUT: name and type required)."""


class Variable(_ResponseFields):
    """A variable; constraints that are not set are left out (as in Ximilar's responses)."""


class VariablePage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Variable]


# ---- images


class Image(Struct):
    id: uuid.UUID
    created: datetime
    width: int
    height: int
    format: str
    size_bytes: int
    sha256: str
    file_name: str
    file: str
    meta_data: dict[str, Any]
    workspace: uuid.UUID


class ImagePage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Image]


class ImageRecord(Struct, forbid_unknown_fields=True):
    """One image in a JSON upload: exactly one of ``_base64`` (raw or a data URI) and ``_url``."""

    base64: str | None = msgspec.field(default=None, name="_base64")
    url: str | None = msgspec.field(default=None, name="_url")
    file_name: str = ""
    meta_data: dict[str, Any] = msgspec.field(default_factory=dict)


class ImageUpload(Struct, forbid_unknown_fields=True):
    """JSON upload: one record's fields at the top level, or several under ``records``."""

    base64: str | None = msgspec.field(default=None, name="_base64")
    url: str | None = msgspec.field(default=None, name="_url")
    file_name: str = ""
    meta_data: dict[str, Any] = msgspec.field(default_factory=dict)
    records: list[ImageRecord] | None = None
    workspace: uuid.UUID | None = None


class ImageBatch(Struct):
    records: list[Image]


# ---- samples


class SampleCreate(Struct, forbid_unknown_fields=True):
    dataset: uuid.UUID
    name: Annotated[str, Meta(max_length=200)] = ""
    test: bool = False
    type: SampleType = "multi_random"
    input_meta_data: dict[str, Any] = msgspec.field(default_factory=dict)
    image_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    workspace: uuid.UUID | None = None


class SampleUpdate(Struct, forbid_unknown_fields=True):
    """PATCH merges ``input_meta_data`` into what is there; PUT replaces it."""

    name: Annotated[str, Meta(max_length=200)] | UnsetType = UNSET
    test: bool | UnsetType = UNSET
    type: SampleType | UnsetType = UNSET
    input_meta_data: dict[str, Any] | UnsetType = UNSET
    workspace: uuid.UUID | None = None


class ImageIds(Struct, forbid_unknown_fields=True):
    image_ids: Annotated[list[uuid.UUID], Meta(min_length=1)]
    workspace: uuid.UUID | None = None


class VariableValueSet(Struct, forbid_unknown_fields=True):
    """``value`` is ``{"value": X}`` as in Ximilar's API; a bare non-object X is accepted too."""

    dataset_variable: uuid.UUID
    value: Any
    workspace: uuid.UUID | None = None


class VariableValueRef(Struct, forbid_unknown_fields=True):
    dataset_variable: uuid.UUID
    workspace: uuid.UUID | None = None


class SampleImage(Struct):
    id: uuid.UUID
    position: int
    width: int
    height: int
    format: str
    file: str


class VariableValue(Struct):
    dataset_variable: uuid.UUID
    name: str
    type: str
    value: dict[str, Any]


class Sample(Struct):
    id: uuid.UUID
    created: datetime
    dataset: uuid.UUID
    dataset_name: str
    name: str
    test: bool
    type: str
    input_meta_data: dict[str, Any]
    images: list[SampleImage]
    image_count: int
    variable_values: list[VariableValue]
    workspace: uuid.UUID


class SamplePage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Sample]
