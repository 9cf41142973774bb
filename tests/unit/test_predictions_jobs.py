"""Batch predictions, callbacks and the machine-learning loop, in front of a fake engine (logic only;
real vLLM: tests/integration/test_predictions*.py; claims under contention: tests/platform)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.predictions.webhook_secrets import HEADER, verify
from gateway.settings import Settings
from tests.fakes import FakeVLLM
from tests.support.callback_receiver import CallbackReceiver
from tests.unit.predictions_helpers import (
    CAPTION,
    FAST,
    GENERATE,
    caption_body,
    captioning,
    gateway_as,
    gateway_client,
    reply,
    wait_done,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[FakeVLLM]:
    fake = FakeVLLM()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predictions-jobs")


@pytest.fixture(scope="module")
async def keys(data_dir: Path) -> dict[str, str]:
    """Two users, each with a workspace of their own."""
    async with open_database(Settings(data_dir=data_dir).db_url):
        alice = await create_key(user_name="alice", workspaces=["alice-ws"])
        bob = await create_key(user_name="bob", workspaces=["bob-ws"])
    return {"alice": alice.key, "bob": bob.key}


@pytest.fixture(scope="module")
async def app(engine: FakeVLLM, data_dir: Path, keys: dict[str, str]) -> AsyncIterator[Any]:
    async with gateway_as(
        engine, data_dir, keys["alice"], callback_max_attempts=3, key_cache_ttl_s=0.0, **FAST
    ) as client:
        yield client


@pytest.fixture
def api(app: Any, engine: FakeVLLM) -> Any:
    return captioning(app, engine)


async def test_batch_answers_pending_at_once_and_completes_in_the_background(
    api: Any, engine: FakeVLLM, data_dir: Path
) -> None:
    resp = await api.post(GENERATE, json=caption_body(batch=True))
    assert resp.status_code == 201, resp.text
    pending = resp.json()
    assert (pending["status"], pending["response"], pending["completed_at"]) == ("pending", None, None)
    done = await wait_done(api, pending["id"])
    assert done["status"] == "completed" and done["response"] == CAPTION
    assert not (data_dir / "store" / "predictions" / pending["id"]).exists()  # media dropped once done
    assert engine.requests[-1]["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png")


async def test_list_is_newest_first_with_skip_and_limit(api: Any) -> None:
    ids = [(await api.post(GENERATE, json=caption_body())).json()["id"] for _ in range(3)]
    newest = (await api.get("/v1/predictions", params={"limit": 3})).json()
    assert [p["id"] for p in newest] == ids[::-1]
    second = (await api.get("/v1/predictions", params={"skip": 1, "limit": 1})).json()
    assert [p["id"] for p in second] == [ids[1]]
    assert (await api.get("/v1/predictions", params={"limit": 0})).status_code == 400


async def test_predictions_are_seen_only_in_their_workspace(api: Any, keys: dict[str, str]) -> None:
    mine = (await api.post(GENERATE, json=caption_body())).json()["id"]
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    assert (await api.get(f"/v1/predictions/{mine}", headers=bob)).status_code == 404
    assert mine not in {p["id"] for p in (await api.get("/v1/predictions", headers=bob)).json()}
    alice_secret = (await api.get("/v1/webhook-secret")).json()["secret"]
    assert (await api.get("/v1/webhook-secret", headers=bob)).json()["secret"] != alice_secret


async def test_an_engine_failure_fails_the_prediction_sync_with_the_error_status_batch_in_its_record(
    api: Any, engine: FakeVLLM
) -> None:
    engine.mode = "crash"
    sync = await api.post(GENERATE, json=caption_body())
    assert sync.status_code == 502 and sync.json()["error"]["code"] == "engine_error"
    failed = (await api.get("/v1/predictions", params={"limit": 1})).json()[0]
    assert failed["status"] == "failed" and failed["error"]["code"] == "engine_error"
    batch = (await api.post(GENERATE, json=caption_body(batch=True))).json()
    done = await wait_done(api, batch["id"])
    assert done["status"] == "failed" and "engine exploded" in done["error"]["message"]


async def test_callback_arrives_signed_once_after_retries(api: Any) -> None:
    receiver = CallbackReceiver(statuses=[500, 503])
    with receiver.serve() as server:
        resp = await api.post(GENERATE, json=caption_body(batch=True, callback_url=server.url("/hook")))
        pid = resp.json()["id"]
        done = await wait_done(api, pid)
        await asyncio.sleep(0.5)  # time for a wrong extra delivery to show up
    assert done["callback"] == {"url": server.url("/hook"), "status": "delivered", "attempts": 3,
                                "last_error": None}  # fmt: skip
    deliveries = receiver.for_prediction(pid)
    assert len(deliveries) == 3  # two refused, one accepted, no more
    secret = (await api.get("/v1/webhook-secret")).json()["secret"]
    for number, delivery in enumerate(deliveries, start=1):
        assert verify(secret, delivery.body, delivery.headers[HEADER])
        assert delivery.headers["X-VLMRun-Attempt"] == str(number)
        assert delivery.headers["Content-Type"] == "application/json"
    body = deliveries[-1].json
    assert body["status"] == "completed" and body["response"] == CAPTION and "callback" not in body


async def test_callback_gives_up_after_max_attempts_and_says_why(api: Any) -> None:
    receiver = CallbackReceiver(statuses=[500] * 10)
    with receiver.serve() as server:
        pid = (await api.post(GENERATE, json=caption_body(callback_url=server.url("/hook")))).json()["id"]
        done = await wait_done(api, pid)
        await asyncio.sleep(0.5)
    assert done["callback"]["status"] == "failed" and done["callback"]["attempts"] == 3
    assert "HTTP 500" in done["callback"]["last_error"]
    assert len(receiver.for_prediction(pid)) == 3


async def test_failed_predictions_call_back_too_and_rotation_changes_the_signature(
    api: Any, engine: FakeVLLM
) -> None:
    old = (await api.get("/v1/webhook-secret")).json()
    new = (await api.post("/v1/webhook-secret/rotate")).json()
    assert new["secret"] != old["secret"] and new["header"] == HEADER
    assert (await api.get("/v1/webhook-secret")).json()["secret"] == new["secret"]
    engine.mode = "crash"
    receiver = CallbackReceiver()
    with receiver.serve() as server:
        pid = (
            await api.post(GENERATE, json=caption_body(batch=True, callback_url=server.url("/hook")))
        ).json()["id"]
        await wait_done(api, pid)
    (delivery,) = receiver.for_prediction(pid)
    assert delivery.json["status"] == "failed"
    assert verify(new["secret"], delivery.body, delivery.headers[HEADER])
    assert not verify(old["secret"], delivery.body, delivery.headers[HEADER])


async def test_allow_training_with_a_session_stores_images_and_answer_as_a_sample(api: Any) -> None:
    body = caption_body(metadata={"session_id": "shop-42", "allow_training": True})
    first = (await api.post(GENERATE, json=body)).json()
    assert first["training"]["sample"], first
    datasets = (await api.get("/vlm/v2/dataset/", params={"search": "session shop-42"})).json()["results"]
    assert len(datasets) == 1
    dataset = datasets[0]
    assert dataset["result_template"] == '{"caption": "{{caption}}", "tags": {{tags}}}'
    assert dataset["user_prompt"].startswith("Write a one-sentence caption")
    sample = (await api.get(f"/vlm/v2/sample/{first['training']['sample']}/")).json()
    assert sample["dataset"] == dataset["id"] and sample["image_count"] == 1
    assert {v["name"]: v["value"]["value"] for v in sample["variable_values"]} == CAPTION
    assert sample["input_meta_data"]["prediction_id"] == first["id"]
    second = (await api.post(GENERATE, json=body)).json()  # the same session: the same dataset
    assert second["training"]["dataset"] == dataset["id"]
    other_shape = {**body, "domain": "document.invoice"}
    refused = await api.post(GENERATE, json=other_shape)
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "metadata.session_id"


async def test_no_sample_without_permission_or_session_and_a_named_dataset_works(api: Any) -> None:
    count = await _samples(api)
    await api.post(GENERATE, json=caption_body(metadata={"session_id": "s-no", "allow_training": False}))
    await api.post(GENERATE, json=caption_body())  # vlm.run's default allow_training, but no session
    assert await _samples(api) == count
    engine_answer = (await api.post(GENERATE, json=caption_body(metadata={"dataset": "Reviewed"}))).json()
    assert engine_answer["training"]["dataset"] and await _samples(api) == count + 1


async def _samples(api: Any) -> int:
    count: int = (await api.get("/vlm/v2/sample/")).json()["count"]
    return count


async def test_a_batch_job_waits_while_the_engine_is_down_then_runs(tmp_path: Path) -> None:
    fake = FakeVLLM(reply=reply(CAPTION))
    fake.start()
    try:
        fast = {**FAST, "engine_poll_interval_s": 0.2, "predictions_retry_delay_s": 0.3}
        async with gateway_client(fake, tmp_path, **fast) as client:
            assert (await client.post(GENERATE, json=caption_body())).status_code == 201
            fake.stop()
            down = await client.post(GENERATE, json=caption_body())
            assert down.status_code == 503 and "Retry-After" in down.headers
            pid = (await client.post(GENERATE, json=caption_body(batch=True))).json()["id"]
            await asyncio.sleep(1.5)  # tried several times against the stopped engine
            waiting = (await client.get(f"/v1/predictions/{pid}")).json()
            assert waiting["status"] in ("pending", "running") and waiting["completed_at"] is None
            fake.start()
            done = await wait_done(client, pid)
            assert done["status"] == "completed" and done["response"] == CAPTION, done["error"]
    finally:
        fake.stop()


async def test_a_job_whose_stored_media_are_gone_fails_saying_so(api: Any, data_dir: Path) -> None:
    from gateway.db.models import Prediction, Workspace
    from gateway.predictions.domains import BUILT_IN, DomainRegistry
    from gateway.predictions.plan import build_plan
    from gateway.predictions.schemas import GenerationConfig

    plan = build_plan(DomainRegistry.load(BUILT_IN).get("image.caption"), GenerationConfig(), pages=1)
    plan.mimes = ["image/png"]

    async def insert() -> str:
        async with open_database(Settings(data_dir=data_dir).db_url):
            ws = await Workspace.get(name="alice-ws")
            row = await Prediction.create(
                workspace_id=ws.id, kind="image", domain="image.caption", model="vlm-1", batch=True,
                status="pending", plan=msgspec.to_builtins(plan), media_count=1,
            )  # fmt: skip
            return str(row.id)

    pid = await asyncio.to_thread(asyncio.run, insert())
    done = await wait_done(api, pid)
    assert done["status"] == "failed" and done["error"]["code"] == "media_missing"
