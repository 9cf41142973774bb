"""Defects found by fuzzing and by trying the API as a user (issue 12); each test failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.platform.conftest import Api, Keys

HUGE = 10**30  # beyond every database integer (SQLite and PostgreSQL)


@pytest.fixture
def api(client: AsyncTestClient[Any], keys: Keys) -> Api:
    return Api(client, keys.a)


def error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["error"]
    assert set(detail) >= {"message", "type", "param", "code"}
    return detail


@pytest.mark.parametrize("path", ["task", "dataset", "variable", "image", "sample"])
@pytest.mark.parametrize("number", [HUGE, 2**63, 1_000_001])
async def test_a_huge_page_number_is_a_400_naming_page(
    client: AsyncTestClient[Any], api: Api, path: str, number: int
) -> None:
    detail = error(await client.get(f"/vlm/v2/{path}/", params={"page": number}, headers=api.headers))
    assert "page" in detail["message"]


async def test_the_largest_page_number_allowed_answers_an_empty_page(
    client: AsyncTestClient[Any], api: Api
) -> None:
    response = await client.get("/vlm/v2/task/", params={"page": 1_000_000}, headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


@pytest.mark.parametrize("method", ["patch", "put"])
async def test_a_huge_production_version_is_a_400(
    client: AsyncTestClient[Any], api: Api, method: str
) -> None:
    task = await api.task()
    body: dict[str, Any] = {"production_version": HUGE}
    if method == "put":
        body["name"] = "renamed"
    response = await getattr(client, method)(f"/vlm/v2/task/{task['id']}", json=body, headers=api.headers)
    assert error(response)["param"] == "production_version"


async def test_huge_numbers_in_creates_are_400s(client: AsyncTestClient[Any], api: Api) -> None:
    response = await client.post(
        "/vlm/v2/task/", json={"name": "t", "production_version": 2**31}, headers=api.headers
    )
    assert error(response)["param"] == "production_version"
    dataset = await api.dataset()
    body = {"dataset": dataset["id"], "name": "caption", "type": "string", "max_length": HUGE}
    response = await client.post("/vlm/v2/variable/", json=body, headers=api.headers)
    assert error(response)["param"] == "max_length"


async def test_a_huge_skip_on_predictions_is_a_400(client: AsyncTestClient[Any], api: Api) -> None:
    response = await client.get("/v1/predictions", params={"skip": HUGE}, headers=api.headers)
    assert "skip" in error(response)["message"]
