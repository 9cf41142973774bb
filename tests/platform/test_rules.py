"""Bad inputs (400 naming each field), delete behaviour (409 or cascade, no dangling rows or files),
pagination links, image uploads, variable and template rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from models_store.image_store import ImageStore
from tests.platform.conftest import Api, Keys, b64, error, png


@pytest.fixture
def api(client: AsyncTestClient[Any], keys: Keys) -> Api:
    return Api(client, keys.a2)


async def test_every_bad_type_in_a_body_is_named(client: AsyncTestClient[Any], api: Api) -> None:
    body = {"dataset": "nope", "name": 5, "type": "decimal", "required": "yes", "colour": "red"}
    detail = error(await client.post("/vlm/v2/variable/", json=body, headers=api.headers))
    assert set(detail["fields"]) == {"dataset", "name", "type", "required", "colour"}


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"name": "1grade", "type": "float"}, "name"),
        ({"name": "my-var", "type": "float"}, "name"),
        ({"name": "grade", "type": "float", "min_value": 5, "max_value": 1}, "min_value"),
        ({"name": "grade", "type": "float", "step_size": 0}, "step_size"),
        ({"name": "grade", "type": "string", "min_value": 1}, "min_value"),
        ({"name": "grade", "type": "integer", "min_length": 1}, "min_length"),
        ({"name": "grade", "type": "string", "min_length": 5, "max_length": 2}, "min_length"),
        ({"name": "grade", "type": "boolean", "choices": "a,b"}, "choices"),
        ({"name": "grade", "type": "string", "choices": "a,a"}, "choices"),
        (
            {"name": "grade", "type": "integer", "min_value": 0, "max_value": 3, "default_value": 7},
            "default_value",
        ),
    ],
)
async def test_bad_variable_definitions(
    client: AsyncTestClient[Any], api: Api, definition: dict[str, Any], field: str
) -> None:
    dataset = await api.dataset()
    body = {"dataset": dataset["id"], **definition}
    detail = error(await client.post("/vlm/v2/variable/", json=body, headers=api.headers))
    assert field in detail["fields"], detail


async def test_variable_names_are_unique_per_dataset(client: AsyncTestClient[Any], api: Api) -> None:
    first, second = await api.dataset(), await api.dataset()
    await api.variable(first["id"], name="grade", type="integer")
    await api.variable(second["id"], name="grade", type="integer")  # another dataset: fine
    again = {"dataset": first["id"], "name": "grade", "type": "string"}
    assert "name" in error(await client.post("/vlm/v2/variable/", json=again, headers=api.headers))["fields"]


@pytest.mark.parametrize(
    ("definition", "good", "bad"),
    [
        ({"type": "float", "min_value": 0, "max_value": 10, "step_size": 0.5}, 8.5, 8.3),
        ({"type": "float", "min_value": 0, "max_value": 10}, 10, 10.5),
        ({"type": "integer", "min_value": 1}, 3, 2.5),
        ({"type": "string", "choices": "mint,good,poor"}, "mint", "broken"),
        ({"type": "string", "max_length": 3}, "abc", "abcd"),
        ({"type": "boolean"}, True, "true"),
        ({"type": "array", "max_length": 2}, ["a", "b"], ["a", "b", "c"]),
        ({"type": "object"}, {"a": 1}, [1]),
    ],
)
async def test_variable_values_are_checked(
    client: AsyncTestClient[Any], api: Api, definition: dict[str, Any], good: Any, bad: Any
) -> None:
    dataset = await api.dataset()
    variable = await api.variable(dataset["id"], name="v", **definition)
    sample = await api.sample(dataset["id"])
    path = f"/vlm/v2/sample/{sample['id']}/add-variable-value/"
    ok = await client.post(
        path, json={"dataset_variable": variable["id"], "value": {"value": good}}, headers=api.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["variable_values"][0]["value"] == {"value": good}
    refused = await client.post(
        path, json={"dataset_variable": variable["id"], "value": {"value": bad}}, headers=api.headers
    )
    assert "value" in error(refused)["fields"]
    kept = (await client.get(f"/vlm/v2/sample/{sample['id']}/", headers=api.headers)).json()
    assert kept["variable_values"][0]["value"] == {"value": good}  # the bad value changed nothing


async def test_result_template_must_use_defined_variables(client: AsyncTestClient[Any], api: Api) -> None:
    detail = error(
        await client.post(
            "/vlm/v2/dataset/", json={"name": "d", "result_template": '{"a": {{a}'}, headers=api.headers
        )
    )
    assert "result_template" in detail["fields"]  # bad syntax is refused at once
    dataset = await api.dataset()
    await api.variable(dataset["id"], name="grade", type="integer", required=True)
    path = f"/vlm/v2/dataset/{dataset['id']}/"
    early = await client.patch(
        path, json={"result_template": '{"grade": {{grade}}, "x": {{oops}}}'}, headers=api.headers
    )
    assert early.status_code == 200 and early.json()["missing_variables"] == ["oops"]  # not defined yet
    good = await client.patch(path, json={"result_template": '{"grade": {{grade}}}'}, headers=api.headers)
    assert good.status_code == 200
    # the template now uses `grade`: renaming or deleting it is refused, and so is a required extra variable
    variable = (await client.get(f"/vlm/v2/variable/?dataset={dataset['id']}", headers=api.headers)).json()
    grade_path = f"/vlm/v2/variable/{variable['results'][0]['id']}/"
    assert (await client.patch(grade_path, json={"name": "score"}, headers=api.headers)).status_code == 409
    assert (await client.delete(grade_path, headers=api.headers)).status_code == 409
    extra = {"dataset": dataset["id"], "name": "note", "type": "string", "required": True}
    assert (await client.post("/vlm/v2/variable/", json=extra, headers=api.headers)).status_code == 409


async def test_samples_hold_at_most_ten_images_in_order(client: AsyncTestClient[Any], api: Api) -> None:
    dataset = await api.dataset()
    images = [await api.image((i * 20, 0, 0)) for i in range(11)]
    sample = await api.sample(dataset["id"], image_ids=[images[2]["id"], images[0]["id"]])
    assert [i["id"] for i in sample["images"]] == [images[2]["id"], images[0]["id"]]
    path = f"/vlm/v2/sample/{sample['id']}/add-images/"
    more = [i["id"] for i in images[3:11]]  # 2 + 9 would be 11
    assert (
        "image_ids"
        in error(await client.post(path, json={"image_ids": [*more, images[1]["id"]]}, headers=api.headers))[
            "fields"
        ]
    )
    added = await client.post(
        path, json={"image_ids": [images[0]["id"], *more]}, headers=api.headers
    )  # dup skipped
    assert added.status_code == 200
    assert [i["id"] for i in added.json()["images"]] == [images[2]["id"], images[0]["id"], *more]
    assert [i["position"] for i in added.json()["images"]] == list(range(10))
    removed = await client.post(
        f"/vlm/v2/sample/{sample['id']}/remove-images/",
        json={"image_ids": [images[0]["id"]]},
        headers=api.headers,
    )
    assert [i["position"] for i in removed.json()["images"]] == list(range(9))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/vlm/v2/task/", {}, "name"),
        ("/vlm/v2/task/", {"name": "t", "max_tokens": 0}, "max_tokens"),
        ("/vlm/v2/task/", {"name": ""}, "name"),
        ("/vlm/v2/dataset/", {"name": "d", "workspace": 7}, "workspace"),
        ("/vlm/v2/sample/", {"dataset": "00000000-0000-4000-8000-0000000000ff"}, "dataset"),
        ("/vlm/v2/sample/", {"dataset": "00000000-0000-4000-8000-0000000000ff", "type": "pairs"}, "type"),
        ("/vlm/v2/image/", {}, "_base64"),
        ("/vlm/v2/image/", {"_base64": "@@@not base64"}, "_base64"),
        ("/vlm/v2/image/", {"_base64": b64(b"just text, not an image")}, "_base64"),
        ("/vlm/v2/image/", {"_base64": "aGk=", "_url": "http://127.0.0.1:9/x.png"}, "_base64"),
        (
            "/vlm/v2/image/",
            {"records": [{"_base64": b64(png())}, {"_url": "ftp://127.0.0.1/x"}]},
            "records[1]._url",
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    client: AsyncTestClient[Any], api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    assert field in error(await client.post(path, json=body, headers=api.headers))["fields"]


async def test_not_json_and_unknown_ids(client: AsyncTestClient[Any], api: Api) -> None:
    detail = error(
        await client.post(
            "/vlm/v2/task/", content=b"{nope", headers={**api.headers, "Content-Type": "application/json"}
        )
    )
    assert "JSON" in detail["message"]
    missing = "00000000-0000-4000-8000-0000000000ff"
    for kind in ("task", "dataset", "variable", "sample", "image"):
        assert (
            error(await client.get(f"/vlm/v2/{kind}/{missing}/", headers=api.headers), 404)["code"]
            == "not_found"
        )
        assert (await client.get(f"/vlm/v2/{kind}/not-a-uuid/", headers=api.headers)).status_code == 404
    bad_page = await client.get("/vlm/v2/task/?page=0", headers=api.headers)
    assert bad_page.status_code == 400


async def test_pagination_links_walk_every_result(client: AsyncTestClient[Any], keys: Keys) -> None:
    api = Api(client, keys.b)
    names = {f"paged-{i}" for i in range(7)}
    for name in names:
        await api.task(name=name)
    seen: list[str] = []
    url: str | None = "/vlm/v2/task/?search=paged-&page_size=3"
    previous_links = []
    while url:
        page = (await client.get(url, headers=api.headers)).json()
        assert page["count"] == 7
        seen += [t["name"] for t in page["results"]]
        previous_links.append(page["previous"])
        url = page["next"]
        assert url is None or ("search=paged-" in url and "page_size=3" in url)
    assert sorted(seen) == sorted(names) and len(seen) == 7
    assert previous_links[0] is None and previous_links[1] is not None
    back = (await client.get(previous_links[2], headers=api.headers)).json()  # page 3's previous is page 2
    assert len(back["results"]) == 3


async def test_uploads_multipart_json_and_records(client: AsyncTestClient[Any], api: Api) -> None:
    files = {"file": ("red.jpg", png((250, 0, 0), (40, 30), "JPEG"), "image/jpeg")}
    one = await client.post("/vlm/v2/image/", files=files, headers=api.headers)
    assert one.status_code == 201, one.text
    body = one.json()
    assert (body["width"], body["height"], body["format"], body["file_name"]) == (40, 30, "JPEG", "red.jpg")
    data = await client.get(body["file"], headers=api.headers)
    assert (
        data.status_code == 200
        and data.headers["content-type"] == "image/jpeg"
        and data.content == files["file"][1]
    )
    uri = "data:image/png;base64," + b64(png((0, 9, 0)))
    batch = await api.post(
        "/vlm/v2/image/", {"records": [{"_base64": uri}, {"_base64": b64(png((0, 0, 9)))}]}
    )
    assert [r["format"] for r in batch["records"]] == ["PNG", "PNG"]
    many = await client.post(
        "/vlm/v2/image/",
        files=[("a", ("a.png", png((1, 1, 1)), "image/png")), ("b", ("b.png", png((2, 2, 2)), "image/png"))],
        headers=api.headers,
    )
    assert many.status_code == 201 and len(many.json()["records"]) == 2


async def test_url_uploads_go_through_the_ssrf_guard(client: AsyncTestClient[Any], api: Api) -> None:
    """Loopback is refused by the media guard like in chat requests (no packet leaves the machine)."""
    detail = error(
        await client.post("/vlm/v2/image/", json={"_url": "http://127.0.0.1:9/x.png"}, headers=api.headers)
    )
    assert "_url" in detail["fields"]


async def test_delete_rules_and_no_orphans(
    client: AsyncTestClient[Any], keys: Keys, store_dir: Path, db_url: str
) -> None:
    api = Api(client, keys.b)
    h = api.headers
    dataset = await api.dataset(name="to delete")
    variable = await api.variable(dataset["id"], name="grade", type="integer")
    task = await api.task(datasets=[dataset["id"]])
    unique = png((123, 45, 67), (17, 19))
    image = await api.post("/vlm/v2/image/", {"_base64": b64(unique)})
    twin = await api.post("/vlm/v2/image/", {"_base64": b64(unique)})  # same bytes: one file
    assert image["sha256"] == twin["sha256"]
    sample = await api.sample(dataset["id"], image_ids=[image["id"]])
    await api.post(
        f"/vlm/v2/sample/{sample['id']}/add-variable-value/",
        {"dataset_variable": variable["id"], "value": 3},
        200,
    )
    # refused while referenced, with 409 saying by what
    assert (
        error(await client.delete(f"/vlm/v2/dataset/{dataset['id']}/", headers=h), 409)["code"]
        == "dataset_in_use"
    )
    assert (
        error(await client.delete(f"/vlm/v2/image/{image['id']}/", headers=h), 409)["code"] == "image_in_use"
    )
    assert (
        error(await client.delete(f"/vlm/v2/variable/{variable['id']}/", headers=h), 409)["code"]
        == "variable_in_use"
    )
    store = ImageStore(store_dir / "store")
    assert store.exists(image["sha256"])
    # deleting the task detaches the dataset; then the dataset goes with its variables, samples and values
    assert (await client.delete(f"/vlm/v2/task/{task['id']}/", headers=h)).status_code == 204
    assert (await client.delete(f"/vlm/v2/dataset/{dataset['id']}/", headers=h)).status_code == 204
    for path in (f"/vlm/v2/variable/{variable['id']}/", f"/vlm/v2/sample/{sample['id']}/"):
        assert (await client.get(path, headers=h)).status_code == 404
    # the images stay until deleted; the file goes with the last record naming it
    assert (await client.delete(f"/vlm/v2/image/{image['id']}/", headers=h)).status_code == 204
    assert store.exists(image["sha256"])
    assert (await client.delete(f"/vlm/v2/image/{twin['id']}/", headers=h)).status_code == 204
    assert not store.exists(image["sha256"])
    await assert_no_dangling_rows(db_url, store)


async def assert_no_dangling_rows(db_url: str, store: ImageStore) -> None:
    """Every link row points at existing rows; every stored file has a record and every record a file."""
    import asyncio

    from gateway.db import models as db
    from gateway.db.connection import open_database

    async def check() -> None:
        async with open_database(db_url, migrate=False):
            samples = set(await db.Sample.all().values_list("id", flat=True))
            images = set(await db.Image.all().values_list("id", flat=True))
            variables = set(await db.Variable.all().values_list("id", flat=True))
            datasets = set(await db.Dataset.all().values_list("id", flat=True))
            for link in await db.SampleImage.all():
                assert link.sample_id in samples and link.image_id in images
            for value in await db.VariableValue.all():
                assert value.sample_id in samples and value.variable_id in variables
            for link in await db.TaskDataset.all():
                assert link.dataset_id in datasets
            hashes = set(await db.Image.all().values_list("sha256", flat=True))
            assert hashes == store.all_hashes()

    await asyncio.to_thread(asyncio.run, check())


async def test_put_replaces_and_requires_patch_merges(client: AsyncTestClient[Any], api: Api) -> None:
    task = await api.task(description="old")
    path = f"/vlm/v2/task/{task['id']}/"
    assert "name" in error(await client.put(path, json={"description": "new"}, headers=api.headers))["fields"]
    put = await client.put(path, json={"name": "renamed", "max_tokens": 64}, headers=api.headers)
    assert put.status_code == 200 and (put.json()["name"], put.json()["max_tokens"]) == ("renamed", 64)
    dataset = await api.dataset()
    sample = await api.sample(dataset["id"], input_meta_data={"a": 1, "b": 2})
    spath = f"/vlm/v2/sample/{sample['id']}/"
    merged = await client.patch(spath, json={"input_meta_data": {"b": 3, "c": 4}}, headers=api.headers)
    assert merged.json()["input_meta_data"] == {"a": 1, "b": 3, "c": 4}
    replaced = await client.put(spath, json={"input_meta_data": {"z": 0}}, headers=api.headers)
    assert replaced.json()["input_meta_data"] == {"z": 0}
    assert error(await client.patch(spath, json={"type": "pairs"}, headers=api.headers))["fields"].keys() == {
        "type"
    }


async def test_sample_filters(client: AsyncTestClient[Any], api: Api) -> None:
    dataset = await api.dataset()
    train = await api.sample(dataset["id"], name="front view")
    test = await api.sample(dataset["id"], name="back view", test=True)
    base = f"/vlm/v2/sample/?dataset={dataset['id']}"
    for query, expected in (("", {train["id"], test["id"]}), ("&test=true", {test["id"]}),
                            ("&test=false", {train["id"]}), ("&search=FRONT", {train["id"]})):  # fmt: skip
        page = (await client.get(base + query, headers=api.headers)).json()
        assert {s["id"] for s in page["results"]} == expected, query
    assert "test" in error(await client.get(base + "&test=maybe", headers=api.headers))["fields"]


async def test_a_batch_with_one_bad_image_stores_nothing(
    client: AsyncTestClient[Any], api: Api, store_dir: Path
) -> None:
    import hashlib

    good = png((7, 77, 177), (13, 11))
    body = {"records": [{"_base64": b64(good)}, {"_base64": b64(b"text, not an image")}]}
    detail = error(await client.post("/vlm/v2/image/", json=body, headers=api.headers))
    assert set(detail["fields"]) == {"records[1]._base64"}
    assert not ImageStore(store_dir / "store").exists(hashlib.sha256(good).hexdigest())
