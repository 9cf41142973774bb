"""``/v1/files`` and the refusals of ``/v1/fine_tuning/jobs`` in-process (fake engine, no trainer): the file
shape, listing with ``purpose``/``order``/``after``, content, delete, a bad file refused whole, and jobs
refused with the field named. The whole flow on real vLLM is tests/integration/test_finetuning.py."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import FakeVLLM

GOOD = "\n".join(
    json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
    for i in range(3)
).encode()


async def upload(client: Any, data: bytes, purpose: str = "fine-tune", name: str = "t.jsonl") -> Any:
    return await client.post("/v1/files", files={"file": (name, data)}, data={"purpose": purpose})


async def test_files_round_trip(make_client: Any, fake_engine: FakeVLLM) -> None:
    async with make_client(fake_engine) as client:
        first = await upload(client, GOOD)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["id"].startswith("file-") and body["object"] == "file" and body["bytes"] == len(GOOD)
        assert (body["filename"], body["purpose"], body["status"]) == ("t.jsonl", "fine-tune", "processed")
        second = (await upload(client, b"notes", purpose="user_data", name="n.txt")).json()
        listed = (await client.get("/v1/files")).json()
        assert [f["id"] for f in listed["data"]] == [second["id"], body["id"]] and not listed["has_more"]
        oldest_first = (await client.get("/v1/files", params={"order": "asc", "limit": 1})).json()
        assert [f["id"] for f in oldest_first["data"]] == [body["id"]] and oldest_first["has_more"]
        after = (await client.get("/v1/files", params={"order": "asc", "after": body["id"]})).json()
        assert [f["id"] for f in after["data"]] == [second["id"]]
        tuned = (await client.get("/v1/files", params={"purpose": "fine-tune"})).json()
        assert [f["id"] for f in tuned["data"]] == [body["id"]]
        assert (await client.get(f"/v1/files/{body['id']}/content")).content == GOOD
        deleted = (await client.delete(f"/v1/files/{body['id']}")).json()
        assert deleted == {"id": body["id"], "deleted": True, "object": "file"}
        for path in (f"/v1/files/{body['id']}", "/v1/files/file-nothex", "/v1/files/abc"):
            missing = await client.get(path)
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"


async def test_bad_uploads_are_refused_whole(make_client: Any, fake_engine: FakeVLLM) -> None:
    bad = GOOD + b"\n{oops\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}).encode()
    async with make_client(fake_engine) as client:
        refused = await upload(client, bad)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "invalid_file" and error["param"] == "file"
        assert (
            "line 4: not valid JSON" in error["message"]
            and "line 5: no assistant message" in error["message"]
        )
        assert (await upload(client, GOOD, purpose="cats")).json()["error"]["param"] == "purpose"
        assert (await upload(client, b"", purpose="fine-tune")).status_code == 400
        assert (await client.post("/v1/files", data={"purpose": "fine-tune"})).status_code == 400
        assert (await client.get("/v1/files")).json()["data"] == []


async def test_jobs_are_refused_naming_the_field(make_client: Any, fake_engine: FakeVLLM) -> None:
    async with make_client(fake_engine) as client:
        file_id = (await upload(client, GOOD)).json()["id"]
        cases = [
            ({"model": "tiny", "training_file": file_id}, "model"),  # this gateway trains no model itself
            ({"model": "tiny", "training_file": file_id, "suffix": "no spaces"}, "suffix"),
            (
                {"model": "tiny", "training_file": file_id, "hyperparameters": {"n_epochs": 0}},
                "hyperparameters",
            ),
            ({"model": "tiny", "training_file": file_id, "method": {"type": "dpo"}}, "method"),
            ({"model": "tiny"}, "training_file"),
        ]
        for body, param in cases:
            response = await client.post("/v1/fine_tuning/jobs", json=body)
            assert response.status_code == 400, (body, response.text)
            assert param in (response.json()["error"]["param"] or "") + response.json()["error"]["message"], (
                body,
                response.text,
            )
        assert (await client.get("/v1/fine_tuning/jobs")).json() == {
            "data": [],
            "has_more": False,
            "object": "list",
        }
        for path in ("/v1/fine_tuning/jobs/ftjob-" + "0" * 32, "/v1/fine_tuning/jobs/nope/events"):
            assert (await client.get(path)).status_code == 404
        forbidden = await client.delete("/v1/models/tiny")
        assert forbidden.status_code == 403
        assert (await client.delete("/v1/models/ft:tiny::" + "0" * 32)).status_code == 404
