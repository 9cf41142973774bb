"""Ximilar's recognition API without an engine: every request of its page replayed from the seed,
and the rules around it (training refused with too few images, classify refused before training or with
11 records, bad bodies named, other workspaces 404). The trained loop: tests/integration/test_recognition.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.platform.conftest import Keys, auth, b64, png
from tests.support.ximilar_recognition_seed import replay_args, seed_requests

SEED = {r.what: r for r in seed_requests()}


def test_the_page_has_the_commands_we_replay() -> None:
    assert len(SEED) == 14
    assert SEED["create multi_label task"].form == [
        ("name", "My new task"), ("type", "multi_label"), ("description", "Demo task"),
    ]  # fmt: skip
    assert SEED["upload training image"].form[0][0] == "img_path"


class Client:
    def __init__(self, client: AsyncTestClient[Any], key: str) -> None:
        self.client, self.key = client, key

    async def replay(self, what: str, subs: dict[str, str] | None = None, status: int = 200) -> Any:
        method, path, kw = replay_args(SEED[what], {"__API_TOKEN__": self.key, **(subs or {})}, png())
        response = await self.client.request(method, path, **kw)  # type: ignore[arg-type]
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = await self.client.request(method, path, headers=auth(self.key), **kw)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


async def test_every_request_of_the_page(client: AsyncTestClient[Any], keys: Keys) -> None:
    api = Client(client, keys.a)
    task = await api.replay("create multi_class task", status=201)
    assert (task["name"], task["description"], task["type"]) == ("My new task", "Demo task", "multi_class")
    assert task["production_version"] == -1 and task["labels"] == []
    tagging = await api.replay("create multi_label task", status=201)
    assert tagging["type"] == "multi_label"
    listed = await api.replay("list tasks")
    assert {task["id"], tagging["id"]} <= {t["id"] for t in listed["results"]}
    assert {"count", "next", "previous"} <= set(listed)

    label = await api.replay("create label", status=201)
    assert label["name"] == "New label" and label["images_count"] == 0
    connected = await api.replay("connect label to task", {"__TASK_ID__": task["id"]})  # by name, as shown
    assert [x["id"] for x in connected["labels"]] == [label["id"]]
    assert label["id"] in {x["id"] for x in (await api.replay("list labels"))["results"]}
    of_task = await api.replay("list labels of task", {"__TASK_ID__": task["id"]})
    assert [x["id"] for x in of_task["results"]] == [label["id"]]
    found = await api.replay("search labels", {"__SEARCH_QUERY__": "new LAB"})
    assert label["id"] in {x["id"] for x in found["results"]}
    assert (await api.replay("search labels", {"__SEARCH_QUERY__": "zzz-none"}))["count"] == 0

    image = await api.replay("upload training image", status=201)
    assert (image["img_width"], image["img_height"]) == (32, 24) and image["labels"] == []
    labelled = await api.replay(
        "add label to image", {"__IMAGE_ID__": image["id"], "__LABEL_ID__": label["id"]}
    )
    assert [x["name"] for x in labelled["labels"]] == ["New label"]
    of_label = await api.replay("images of label", {"__LABEL_ID__": label["id"]})
    assert [x["id"] for x in of_label["results"]] == [image["id"]]
    file = await client.get(image["img_path"], headers=auth(keys.a))
    assert file.status_code == 200 and file.content == png()

    refused = await api.replay("train", {"__TASK_ID__": task["id"]}, status=400)  # one label, one image
    assert "at least 2" in refused["error"]["message"] or "labels" in refused["error"]["fields"]

    classify = await api.replay("classify", status=400)  # the page's task id is not a UUID (`x`)
    assert "task_id" in classify["error"]["message"]

    await api.replay("delete task", {"__TASK_ID__": task["id"]}, status=204)
    await api.call("GET", f"/recognition/v2/task/{task['id']}/", 404)
    assert (await api.call("GET", f"/recognition/v2/label/{label['id']}/"))["tasks_count"] == 0  # label stays


async def labelled_task(api: Client, counts: dict[str, int]) -> dict[str, Any]:
    task = await api.call("POST", "/recognition/v2/task/", 201, json={"name": "rules"})
    for name, count in counts.items():
        label = await api.call("POST", "/recognition/v2/label/", 201, data={"name": name})
        await api.call(
            "POST", f"/recognition/v2/task/{task['id']}/add-label/", json={"label_id": label["id"]}
        )
        for i in range(count):
            await api.call("POST", "/recognition/v2/training-image/", 201,
                           json={"_base64": b64(png((i, 0, 0))), "label_id": label["id"]})  # fmt: skip
    return task


async def test_training_needs_two_labels_with_twenty_images_each(
    client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Client(client, keys.a)
    task = await labelled_task(api, {"cat": 20, "dog": 19})
    error = (await api.call("POST", f"/recognition/v2/task/{task['id']}/train/", 400))["error"]
    assert error["fields"] == {"label dog": "has 19 training image(s); every label needs at least 20"}
    one = await labelled_task(api, {"only": 0})
    fields = (await api.call("POST", f"/recognition/v2/task/{one['id']}/train/", 400))["error"]["fields"]
    assert "at least 2" in fields["labels"] and "label only" in fields


async def test_classify_refusals(client: AsyncTestClient[Any], keys: Keys) -> None:
    api = Client(client, keys.a)
    task = await api.call("POST", "/recognition/v2/task/", 201, data={"name": "untrained"})
    record = {"_base64": b64(png())}
    untrained = await api.call("POST", "/recognition/v2/classify/", 400,
                               json={"task_id": task["id"], "records": [record]})  # fmt: skip
    assert (
        untrained["error"]["code"] == "task_not_trained"
        and "production_version -1" in untrained["error"]["message"]
    )
    eleven = await api.call("POST", "/recognition/v2/classify/", 400,
                            json={"task_id": task["id"], "records": [record] * 11})  # fmt: skip
    assert eleven["error"]["param"] == "records" and "at most 10" in eleven["error"]["message"]
    empty = await api.call(
        "POST", "/recognition/v2/classify/", 400, json={"task_id": task["id"], "records": []}
    )
    assert "records" in empty["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/recognition/v2/task/", {"name": ""}),
        ("POST", "/recognition/v2/task/", {"name": "x", "type": "detection"}),
        ("POST", "/recognition/v2/task/", {"name": "x", "colour": "red"}),
        ("POST", "/recognition/v2/label/", {}),
        ("POST", "/recognition/v2/training-image/", {"_base64": "not base64!"}),
        ("POST", "/recognition/v2/training-image/", {"_base64": b64(b"not an image")}),
        ("POST", "/recognition/v2/training-image/", {"_url": "file:///etc/passwd"}),
        ("POST", "/recognition/v2/training-image/", {}),
    ],
)
async def test_bad_bodies_are_400s_naming_the_field(
    client: AsyncTestClient[Any], keys: Keys, method: str, path: str, body: dict[str, Any]
) -> None:
    error = (await Client(client, keys.a).call(method, path, 400, json=body))["error"]
    assert error["type"] == "invalid_request_error" and error["param"], error


async def test_another_workspace_sees_nothing(client: AsyncTestClient[Any], keys: Keys) -> None:
    alice, bob = Client(client, keys.a), Client(client, keys.b)
    task = await labelled_task(alice, {"mine": 1})
    label = (await alice.call("GET", f"/recognition/v2/label/?task={task['id']}"))["results"][0]
    image = (await alice.call("GET", f"/recognition/v2/training-image/?label={label['id']}"))["results"][0]
    for method, path in [
        ("GET", f"/recognition/v2/task/{task['id']}/"), ("DELETE", f"/recognition/v2/task/{task['id']}/"),
        ("POST", f"/recognition/v2/task/{task['id']}/train/"),
        ("GET", f"/recognition/v2/label/{label['id']}/"),
        ("GET", f"/recognition/v2/training-image/{image['id']}/"),
        ("GET", f"/recognition/v2/label/?task={task['id']}"),
    ]:  # fmt: skip
        await bob.call(method, path, 404)
    await bob.call(
        "POST", "/recognition/v2/classify/", 404, json={"task_id": task["id"], "records": [{"_url": "x"}]}
    )
    ref = await bob.call("POST", f"/recognition/v2/training-image/{image['id']}/add-label/", 404,
                         json={"label_id": label["id"]})  # fmt: skip
    assert ref["error"]["type"] == "not_found_error" or ref["error"]
    assert task["id"] not in {t["id"] for t in (await bob.call("GET", "/recognition/v2/task/"))["results"]}
