"""Defects found by fuzzing and by trying the API as a user (issue 12); each test failed before its fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.platform.conftest import Api, Keys, error

HUGE = 10**30  # beyond every database integer (SQLite and PostgreSQL)


@pytest.fixture
def api(client: AsyncTestClient[Any], keys: Keys) -> Api:
    return Api(client, keys.a)


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


@pytest.fixture(scope="module")
async def model_client(
    db_url: str, keys: Keys, store_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The gateway with a base model directory (so training requests get as far as checking the data)."""
    root = tmp_path_factory.mktemp("hardening")
    (root / "base").mkdir()
    settings = Settings(
        data_dir=store_dir, database_url=db_url, key_cache_ttl_s=0.0, model=str(root / "base")
    )
    async with AsyncTestClient(app=create_app(settings, engines=[], say=lambda _m: None)) as client:
        yield client


async def test_a_template_may_come_before_its_variables_and_training_waits_for_them(
    model_client: AsyncTestClient[Any], keys: Keys
) -> None:
    """Ximilar's natural order: the dataset (with its template) first, then its variables."""
    client, api = model_client, Api(model_client, keys.a)
    template = '{"grade": {{grade}}, "explain": "{{explain}}"}'
    dataset = await api.dataset(result_template=template)
    assert dataset["missing_variables"] == ["explain", "grade"]
    task = await api.task(datasets=[dataset["id"]])
    image = await api.image()
    await api.sample(dataset["id"], image_ids=[image["id"]])
    refused = error(await client.post(f"/vlm/v2/task/{task['id']}/train/", json={}, headers=api.headers))
    assert "explain, grade" in refused["fields"][f"dataset {dataset['id']}"]
    await api.variable(dataset["id"], name="grade", type="integer", required=True)
    extra = await api.variable(dataset["id"], name="unused", type="string")  # another variable meanwhile
    assert extra["name"] == "unused"
    path = f"/vlm/v2/dataset/{dataset['id']}/"
    assert (await client.get(path, headers=api.headers)).json()["missing_variables"] == ["explain"]
    await api.variable(dataset["id"], name="explain", type="string", required=True)
    assert (await client.get(path, headers=api.headers)).json()["missing_variables"] == []
    refused = error(await client.post(f"/vlm/v2/task/{task['id']}/train/", json={}, headers=api.headers))
    assert f"dataset {dataset['id']}" not in refused.get("fields", {})  # only the unlabelled sample is left


async def test_a_training_seed_out_of_range_is_a_400(model_client: AsyncTestClient[Any], keys: Keys) -> None:
    api = Api(model_client, keys.a)
    task = await api.task()
    for seed in (2**32, -1, 10**30):
        response = await model_client.post(
            f"/vlm/v2/task/{task['id']}/train/", json={"seed": seed}, headers=api.headers
        )
        assert error(response)["param"] == "seed"
