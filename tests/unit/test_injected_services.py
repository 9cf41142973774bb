"""Every service handlers get injected must be a type msgspec can handle.

Litestar validates a handler's arguments, injected services included, with ``msgspec.convert`` into the
handler's signature model; a type msgspec refuses (a dataclass with an ``InitVar`` field, for one) makes
every request to that handler a 500. ``ExportService`` once had such a field and ``POST
/vlm/v2/model/{id}/export/`` answered 500 until an integration test trained and exported a model. This
checks every injectable service at once, without running anything.
"""

from __future__ import annotations

import typing
from dataclasses import InitVar, dataclass
from typing import Any

import msgspec
import pytest

from gateway.composition import SERVICE_DEPENDENCIES, Services


def accepted_by_msgspec(annotation: Any) -> bool:
    """Whether msgspec converts into a struct with a field of this type (as Litestar's signature model)."""
    model = msgspec.defstruct("Signature", [("service", annotation)])
    try:
        msgspec.convert({}, model, strict=False)
    except msgspec.ValidationError:  # the type was understood; the field is just missing
        return True
    except TypeError:
        return False
    return True


def test_a_dataclass_with_an_init_var_is_refused() -> None:
    @dataclass
    class WithInitVar:
        size: InitVar[int] = 1

        def __post_init__(self, size: int) -> None:
            self.slots = size

    assert not accepted_by_msgspec(WithInitVar)


@pytest.mark.parametrize("name", sorted(SERVICE_DEPENDENCIES))
def test_every_injected_service_type_is_accepted(name: str) -> None:
    annotation = typing.get_type_hints(Services)[name]
    assert accepted_by_msgspec(annotation), f"{name}: {annotation} cannot be injected into a handler"
