"""ORM rows to the API's wire structs: the fields a row has under the same name are copied, not listed."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from tortoise.models import Model

S = TypeVar("S", bound=msgspec.Struct)


def from_row(cls: type[S], row: Model, **given: Any) -> S:
    """``cls`` from ``row``: each field not ``given`` is the row's attribute of that name, and a relation
    (``workspace``, ``task``) is shown as its id (``workspace_id``). A field the row lacks must be given."""
    relations = row._meta.fk_fields
    taken = {
        name: getattr(row, f"{name}_id" if name in relations else name)
        for name in cls.__struct_fields__
        if name not in given
    }
    return cls(**taken, **given)
