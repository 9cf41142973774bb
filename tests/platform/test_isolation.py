"""Workspaces and keys: another workspace's objects are invisible (404), on every route and both databases."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.platform.conftest import Api, Keys, auth


async def build_all(api: Api) -> dict[str, str]:
    """One object of each kind in the key's default workspace; their detail paths."""
    dataset = await api.dataset(name="private")
    variable = await api.variable(dataset["id"], name="grade", type="integer")
    task = await api.task(datasets=[dataset["id"]])
    image = await api.image((1, 2, 3))
    sample = await api.sample(dataset["id"], image_ids=[image["id"]])
    return {
        "task": f"/vlm/v2/task/{task['id']}/", "dataset": f"/vlm/v2/dataset/{dataset['id']}/",
        "variable": f"/vlm/v2/variable/{variable['id']}/", "image": f"/vlm/v2/image/{image['id']}/",
        "sample": f"/vlm/v2/sample/{sample['id']}/", "file": f"/vlm/v2/image/{image['id']}/file/",
        "dataset_id": dataset["id"], "variable_id": variable["id"], "image_id": image["id"],
        "task_id": task["id"], "sample_id": sample["id"],
    }  # fmt: skip


@pytest.fixture
async def alice_objects(client: AsyncTestClient[Any], keys: Keys) -> dict[str, str]:
    return await build_all(Api(client, keys.a))


DETAIL = ("task", "dataset", "variable", "image", "sample", "file")


@pytest.mark.parametrize("kind", DETAIL)
async def test_other_workspace_gets_404_for_every_read_write_and_delete(
    client: AsyncTestClient[Any], keys: Keys, alice_objects: dict[str, str], kind: str
) -> None:
    bob = auth(keys.b)
    path = alice_objects[kind]
    assert (await client.get(path, headers=bob)).status_code == 404
    if kind != "file":
        assert (await client.patch(path, json={}, headers=bob)).status_code in (404, 405)
        assert (await client.delete(path, headers=bob)).status_code == 404
    assert (await client.get(path, headers=auth(keys.a))).status_code == 200  # still there for its owner


async def test_lists_show_only_the_keys_workspace(
    client: AsyncTestClient[Any], keys: Keys, alice_objects: dict[str, str]
) -> None:
    for resource in ("task", "dataset", "variable", "image", "sample"):
        bob = (await client.get(f"/vlm/v2/{resource}/?page_size=500", headers=auth(keys.b))).json()
        assert alice_objects[f"{resource}_id"] not in [r["id"] for r in bob["results"]]
        assert all(r.get("workspace", keys.ws_b) == keys.ws_b for r in bob["results"])
        alice = (await client.get(f"/vlm/v2/{resource}/?page_size=500", headers=auth(keys.a2))).json()
        assert alice_objects[f"{resource}_id"] in [r["id"] for r in alice["results"]]  # same user, other key


async def test_bob_cannot_reference_alices_objects_in_his_requests(
    client: AsyncTestClient[Any], keys: Keys, alice_objects: dict[str, str]
) -> None:
    bob = Api(client, keys.b)
    his_dataset = await bob.dataset(name="bob's")
    his_task = await bob.task()
    his_sample = await bob.sample(his_dataset["id"])
    cases = [
        (
            "/vlm/v2/variable/",
            {"dataset": alice_objects["dataset_id"], "name": "x", "type": "string"},
            "dataset",
        ),
        ("/vlm/v2/sample/", {"dataset": alice_objects["dataset_id"]}, "dataset"),
        (
            f"/vlm/v2/task/{his_task['id']}/add-dataset/",
            {"dataset_id": alice_objects["dataset_id"]},
            "dataset_id",
        ),
        (
            f"/vlm/v2/sample/{his_sample['id']}/add-images/",
            {"image_ids": [alice_objects["image_id"]]},
            "image_ids[0]",
        ),
        (
            f"/vlm/v2/sample/{his_sample['id']}/add-variable-value/",
            {"dataset_variable": alice_objects["variable_id"], "value": {"value": 1}},
            "dataset_variable",
        ),
        ("/vlm/v2/task/", {"name": "t", "datasets": [alice_objects["dataset_id"]]}, "datasets[0]"),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=bob.headers)
        assert response.status_code == 400, (path, response.text)
        assert field in response.json()["error"]["fields"]


async def test_workspace_parameter_selects_only_allowed_workspaces(
    client: AsyncTestClient[Any], keys: Keys
) -> None:
    alice = Api(client, keys.a)
    shared = await alice.dataset(name="in shared", workspace=keys.ws_shared)
    assert shared["workspace"] == keys.ws_shared
    listed = (await client.get(f"/vlm/v2/dataset/?workspace={keys.ws_shared}", headers=alice.headers)).json()
    assert shared["id"] in [d["id"] for d in listed["results"]]
    # not in the default workspace's list, and not visible without the parameter
    default = (await client.get("/vlm/v2/dataset/?page_size=500", headers=alice.headers)).json()
    assert shared["id"] not in [d["id"] for d in default["results"]]
    assert (await client.get(f"/vlm/v2/dataset/{shared['id']}/", headers=alice.headers)).status_code == 404
    # a2 (same user, default alice-ws) may select it; bob may not (404, like an unknown workspace)
    got = await client.get(
        f"/vlm/v2/dataset/{shared['id']}/?workspace={keys.ws_shared}", headers=auth(keys.a2)
    )
    assert got.status_code == 200
    for body_or_query in ("query", "body"):
        if body_or_query == "query":
            r = await client.get(f"/vlm/v2/dataset/?workspace={keys.ws_shared}", headers=auth(keys.b))
        else:
            r = await client.post(
                "/vlm/v2/dataset/", json={"name": "x", "workspace": keys.ws_shared}, headers=auth(keys.b)
            )
        assert r.status_code == 404 and r.json()["error"]["param"] == "workspace"
    bad = await client.get("/vlm/v2/dataset/?workspace=not-a-uuid", headers=alice.headers)
    assert bad.status_code == 400 and "workspace" in bad.json()["error"]["fields"]


async def test_workspace_list_names_the_keys_workspaces(client: AsyncTestClient[Any], keys: Keys) -> None:
    mine = (await client.get("/vlm/v2/workspace/", headers=auth(keys.a))).json()
    assert mine["results"][0]["id"] == keys.ws_a and mine["results"][0]["default"] is True
    assert {w["id"] for w in mine["results"]} == {keys.ws_a, keys.ws_shared}
    bob = (await client.get("/vlm/v2/workspace/", headers=auth(keys.b))).json()
    assert {w["id"] for w in bob["results"]} == {keys.ws_b}


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token", "bearer"])
async def test_both_auth_schemes(client: AsyncTestClient[Any], keys: Keys, scheme: str) -> None:
    assert (await client.get("/vlm/v2/task/", headers=auth(keys.a, scheme))).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token vlmgw-000000000000-nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Token"},
    ],
)
async def test_missing_or_wrong_key_is_401(client: AsyncTestClient[Any], headers: dict[str, str]) -> None:
    response = await client.get("/vlm/v2/task/", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_keys_cli_create_use_list_revoke(
    client: AsyncTestClient[Any], db_url: str, store_dir: Any
) -> None:
    """``vlmgw keys`` on the database while the gateway runs: a new key works at once, a revoked one not."""
    import argparse
    import asyncio
    import io

    from gateway.keys_cli import run_keys

    def cli(*argv: str) -> str:
        from gateway.cli import build_parser

        args: argparse.Namespace = build_parser().parse_args(["keys", *argv, "--database-url", db_url])
        out = io.StringIO()
        assert run_keys(args, out) == 0
        return out.getvalue()

    key = (await asyncio.to_thread(cli, "create", "--user", "carol", "--workspace", "carol-ws")).strip()
    response = await client.get("/vlm/v2/workspace/", headers=auth(key))
    assert response.status_code == 200 and response.json()["results"][0]["name"] == "carol-ws"
    listing = await asyncio.to_thread(cli, "list")
    assert key[:19] in listing and "user=carol" in listing and key not in listing  # never the secret
    assert "revoked" in await asyncio.to_thread(cli, "revoke", key[:19])
    assert (await client.get("/vlm/v2/workspace/", headers=auth(key))).status_code == 401
