"""The playground in a real browser against the real gateway and vLLM on the tiny model."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import BrowserUser, screenshot
from tests.support import colour_task
from tests.support.http_server import ThreadedServer
from tests.support.media import png_bytes, png_data_uri, video_bytes
from tests.support.platform_task import TEMPLATE, build_colour_task
from tests.support.session_gateway import ADAPTER, MODEL, GatewayProcess

DONE = "[data-testid=assistant-message]:not([data-state=streaming])"
METER = r"[\d.]+ s · first token [\d.]+ s · \d+ prompt \+ \d+ completion tokens"
TRAINING_TIMEOUT_MS = 240_000
SLOW_IMAGE_S = 2.0
TEXT_TEMPLATE = "The colour is {{color}} and the level is {{level}}."
VARIABLES = (("color", "string", "red,green,blue", ""), ("level", "integer", "", "9"))


def png_file(name: str, colour: str) -> dict[str, object]:
    return {"name": name, "mimeType": "image/png", "buffer": png_bytes(colour)}


HAND_OVER = """async ([b64, how]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const files = new DataTransfer();
  files.items.add(new File([bytes], "handed.png", { type: "image/png" }));
  const init = { bubbles: true, cancelable: true };
  const event = how === "paste"
    ? new ClipboardEvent("paste", { ...init, clipboardData: files })
    : new DragEvent("drop", { ...init, dataTransfer: files });
  document.querySelector(how === "paste" ? "#message-input" : "#composer").dispatchEvent(event);
}"""


def hand_over_image(page: Page, colour: str, how: str) -> None:
    """Paste an image into the message box, or drop it on the composer, as a user would."""
    page.evaluate(HAND_OVER, [base64.b64encode(png_bytes(colour)).decode(), how])
    expect(page.get_by_test_id("attachment")).to_have_count(1)


def run_sync(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that awaits nothing real (the platform helpers with a sync httpx client)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine awaited something; run it on an event loop instead")


def answer_of(page: Page, side: str = "A") -> dict[str, str | None]:
    box = page.locator(f"[data-testid=assistant-message][data-side={side}]").last
    expect(box).not_to_have_attribute("data-state", "streaming")
    return {
        "state": box.get_attribute("data-state"),
        "text": box.locator(".text").inner_text(),
        "chunks": box.get_attribute("data-chunks"),
        "tokens": box.get_attribute("data-completion-tokens"),
        "model": box.get_attribute("data-model"),
        "meta": box.get_by_test_id("answer-meta").inner_text(),
    }


def test_text_and_image_message_streams_the_same_answer_the_openai_client_gets(
    page: Page, gateway: GatewayProcess, user: BrowserUser
) -> None:
    page.locator("#temperature").fill("0")
    page.locator("#seed").fill("7")
    page.get_by_test_id("max-tokens").fill("12")
    page.get_by_test_id("image-input").set_input_files([png_file("red.png", "red")])
    page.get_by_test_id("message-input").fill("What colour is the image?")
    page.get_by_test_id("message-input").press("Enter")  # Enter sends
    answer = answer_of(page)
    assert answer["state"] == "done", page.get_by_test_id("error-banner").inner_text()
    assert answer["model"] == MODEL and answer["text"]
    assert int(answer["tokens"] or 0) > 1 and int(answer["chunks"] or 0) > 1  # arrived as several chunks
    assert re.search(r"\d+ prompt \+ \d+ completion tokens", answer["meta"] or "")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=user.key, max_retries=0)
    same = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": png_data_uri("red")}},
            {"type": "text", "text": "What colour is the image?"},
        ]}],
        temperature=0, seed=7, max_tokens=12,
    )  # fmt: skip
    assert answer["text"] == same.choices[0].message.content
    python = page.get_by_test_id("python-code").text_content() or ""
    assert "stream=True" in python and '"type": "image_url"' in python and "seed=7" in python
    assert f"Bearer {user.key}" in (page.get_by_test_id("curl-code").text_content() or "")
    # Shift+Enter is a new line, not a send; the second turn carries the first answer as history.
    page.get_by_test_id("message-input").fill("And now?")
    page.get_by_test_id("message-input").press("Shift+Enter")
    assert page.get_by_test_id("message-input").input_value() == "And now?\n"
    assert page.locator("[data-testid=assistant-message]").count() == 1
    page.get_by_test_id("send-button").click()
    expect(page.locator(DONE)).to_have_count(2)
    assert '"role": "assistant"' in (page.get_by_test_id("python-code").text_content() or "")


def test_a_video_message_with_frame_options(page: Page) -> None:
    page.get_by_test_id("num-frames").fill("4")
    page.get_by_test_id("max-tokens").fill("8")
    video = {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": video_bytes(seconds=2.0)}
    page.get_by_test_id("video-input").set_input_files([video])
    page.get_by_test_id("message-input").fill("What happens in this video?")
    page.get_by_test_id("send-button").click()
    answer = answer_of(page)
    assert answer["state"] == "done", page.get_by_test_id("error-banner").inner_text()
    assert answer["text"] and int(answer["tokens"] or 0) > 0
    expect(page.get_by_test_id("user-message")).to_contain_text("num_frames=4")


def test_a_structured_answer_is_parsed_and_coloured_by_confidence(page: Page) -> None:
    page.get_by_test_id("structured-mode").select_option("json_schema")  # the example schema: colour enum
    page.get_by_test_id("confidence-toggle").check()
    hand_over_image(page, "blue", "paste")
    page.get_by_test_id("message-input").fill("Describe the image as JSON.")
    page.get_by_test_id("send-button").click()
    answer = answer_of(page)
    assert answer["state"] == "done", page.get_by_test_id("error-banner").inner_text()
    parsed = json.loads(answer["text"] or "")
    assert parsed["color"] in ("red", "green", "blue", "yellow") and 0 <= parsed["brightness"] <= 9
    cells = page.get_by_test_id("structured-value")
    assert {cells.nth(i).get_attribute("data-field") for i in range(cells.count())} == {"color", "brightness"}
    for i in range(cells.count()):
        cell = cells.nth(i)
        confidence = float(cell.get_attribute("data-confidence") or "nan")
        assert 0 < confidence <= 1
        expected = "conf-high" if confidence >= 0.8 else "conf-mid" if confidence >= 0.5 else "conf-low"
        assert expected in (cell.get_attribute("class") or "")
        assert cell.get_attribute("title") == f"confidence {confidence:.3f}"
        assert cell.inner_text() == str(parsed[cell.get_attribute("data-field") or ""])


def test_compare_streams_two_models_side_by_side(page: Page) -> None:
    page.get_by_test_id("compare-toggle").check()
    page.get_by_test_id("model-select-b").select_option(ADAPTER)
    page.locator("#temperature").fill("0")
    page.get_by_test_id("max-tokens").fill("16")
    hand_over_image(page, "green", "drop")
    page.get_by_test_id("message-input").fill(colour_task.PROMPT)  # the adapter's task
    page.get_by_test_id("send-button").click()
    base, adapter = answer_of(page, "A"), answer_of(page, "B")
    assert (base["model"], adapter["model"]) == (MODEL, ADAPTER)
    for answer in (base, adapter):
        assert answer["state"] == "done" and answer["text"]
        assert re.match(METER, answer["meta"] or "")
    assert base["text"] != adapter["text"]  # the adapter learned the task, the base did not
    screenshot(page, "playground-chat")


def test_gateway_errors_are_shown_as_the_gateway_words_them(page: Page, user: BrowserUser) -> None:
    page.get_by_test_id("structured-mode").select_option("json_schema")
    page.get_by_test_id("schema-input").fill('{"type": "object", "properties": {"a": {"type": "nonsense"}}}')
    page.get_by_test_id("message-input").fill("hello")
    page.get_by_test_id("send-button").click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    direct = user.api.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True,
            "schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}},
    })  # fmt: skip
    assert direct.status_code == 400
    error = direct.json()["error"]
    expect(page.get_by_test_id("error-message")).to_have_text(error["message"])
    expect(page.get_by_test_id("error-param")).to_have_text(error["param"])
    assert answer_of(page)["state"] == "error"
    # A stored image that does not exist: the media step's error, naming the part.
    page.get_by_test_id("structured-mode").select_option("off")
    page.get_by_test_id("image-url").fill("image://no-such-image")
    page.locator("#add-image-url").click()
    page.get_by_test_id("message-input").fill("and this?")
    page.get_by_test_id("send-button").click()
    expect(page.get_by_test_id("error-param")).to_have_text("messages[0].content[0].image_url.url")


def test_annotating_a_sample_stores_its_values(page: Page, user: BrowserUser) -> None:
    page.get_by_test_id("tab-data").click()
    page.locator("summary", has_text="New dataset").click()
    page.get_by_test_id("new-dataset-name").fill("Browser colours")
    for name, kind, choices, high in VARIABLES:
        page.locator("#new-dataset-add-variable").click()
        row = page.locator("#new-dataset-variables [data-testid=variable-row]").last
        row.locator("[data-role=name]").fill(name)
        row.locator("[data-role=type]").select_option(kind)
        row.locator("[data-role=choices]").fill(choices)
        if high:
            row.locator("[data-role=min_value]").fill("0")
            row.locator("[data-role=max_value]").fill(high)
    page.get_by_test_id("new-dataset-template").fill('{"color": "{{color}}", "level": {{level}}}')
    page.locator("#new-dataset-form button[type=submit]").click()
    page.get_by_test_id("sample-upload").set_input_files([png_file(f"s{i}.png", "red") for i in range(2)])
    expect(page.get_by_test_id("sample-card")).to_have_count(2)
    expect(page.locator("[data-testid=sample-card] img").first).to_have_attribute("src", re.compile("^blob:"))
    page.get_by_test_id("sample-card").first.click()
    sample_id = page.get_by_test_id("annotation-form").get_attribute("data-sample")
    options = page.get_by_test_id("value-color").locator("option")
    expect(options).to_have_text(["(no value)", "red", "green", "blue"])
    assert page.get_by_test_id("value-level").get_attribute("max") == "9"
    page.get_by_test_id("value-color").select_option("green")
    page.get_by_test_id("value-level").fill("12")  # above max_value: the platform refuses it at the field
    page.get_by_test_id("save-values").click()
    expect(page.get_by_test_id("field-error-level")).to_contain_text("12 is above max_value")
    screenshot(page, "playground-data")
    page.get_by_test_id("value-level").fill("4")
    page.get_by_test_id("sample-test").check()
    page.get_by_test_id("save-values").click()
    expect(page.get_by_test_id("save-status")).to_have_text("saved")
    sample = user.api.get(f"/vlm/v2/sample/{sample_id}/").json()
    values = {v["name"]: v["value"]["value"] for v in sample["variable_values"]}
    assert values == {"color": "green", "level": 4}
    assert sample["test"] is True


@pytest.fixture(scope="module")
def trained() -> dict[str, str]:
    """The id of a task with a trained v1, once a test has made one (`task_with_a_version` reuses it)."""
    return {}


def task_with_a_version(user: BrowserUser, trained: dict[str, str], root: Path) -> str:
    """The task the browser trained earlier in this module, or (run alone) one trained through the API."""
    if "task" not in trained:
        task = run_sync(build_colour_task(user.api, {}, root, train_per_colour=1, test_per_colour=1))
        job = user.api.post(f"/vlm/v2/task/{task['id']}/train/", json={"hyperparameters": {"max_steps": 4}})
        assert job.status_code in (200, 201), job.text
        deadline = time.monotonic() + TRAINING_TIMEOUT_MS / 1000
        status = job.json()["status"]
        while status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            status = user.api.get(f"/vlm/v2/training-job/{job.json()['id']}/").json()["status"]
        assert status == "succeeded", status
        trained["task"] = task["id"]
    return trained["task"]


def test_training_a_task_from_the_browser_and_chatting_with_the_new_version(
    page: Page, user: BrowserUser, trained: dict[str, str], tmp_path: Path
) -> None:
    task = run_sync(build_colour_task(user.api, {}, tmp_path, train_per_colour=1, test_per_colour=1))
    page.get_by_test_id("tab-data").click()
    page.locator(f"[data-testid=task-item][data-id='{task['id']}']").click()
    page.locator("#train-steps").fill("4")
    page.get_by_test_id("train-button").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=TRAINING_TIMEOUT_MS)
    version = page.locator("[data-testid=versions] tr[data-version='1']")
    expect(version).to_contain_text("(production)")  # auto_deploy
    expect(page.locator("#loss-curve img")).to_have_attribute("src", re.compile("^blob:"))
    screenshot(page, "playground-training")
    events = user.api.get(f"/vlm/v2/task/{task['id']}/training-jobs/").json()["results"][0]
    assert events["status"] == "succeeded" and events["version"] == 1
    trained["task"] = task["id"]
    version.get_by_role("button", name="chat").click()
    expect(page.get_by_test_id("model-select")).to_have_value(f"task-{task['id']}-v1")
    page.get_by_test_id("image-input").set_input_files([png_file("red.png", "red")])
    page.get_by_test_id("message-input").fill("What colour?")
    page.get_by_test_id("send-button").click()
    answer = answer_of(page)
    assert answer["state"] == "done" and answer["model"] == f"task-{task['id']}-v1" and answer["text"]


def test_both_views_fit_a_phone_width_window(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for tab in ("tab-data", "tab-chat"):
        page.get_by_test_id(tab).click()
        overflow = page.evaluate(
            "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        assert overflow <= 0, f"{tab}: {overflow} px wider than the window"
    # Every form control has a label (its own <label>, aria-label or aria-labelledby).
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label'))
             .map(e => e.id || e.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []


def test_stop_ends_an_answer_in_flight_and_the_chat_goes_on(page: Page) -> None:
    async def slow_image(_request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_IMAGE_S)  # the gateway is still fetching it when Stop is clicked
        return web.Response(body=png_bytes("yellow"), content_type="image/png")

    with ThreadedServer({"/slow.png": slow_image}) as server:
        page.get_by_test_id("max-tokens").fill("8")
        page.get_by_test_id("image-url").fill(server.url("/slow.png"))
        page.locator("#add-image-url").click()
        page.get_by_test_id("message-input").fill("What colour?")
        started = time.monotonic()
        page.get_by_test_id("send-button").click()
        page.get_by_test_id("stop-button").click()
        assert answer_of(page)["state"] == "stopped"
        assert time.monotonic() - started < SLOW_IMAGE_S  # stopped, not finished
        expect(page.get_by_test_id("stop-button")).to_be_disabled()
        expect(page.get_by_test_id("send-button")).to_be_enabled()
        expect(page.get_by_test_id("error-banner")).to_be_hidden()
        page.get_by_test_id("message-input").fill("Hello")
        page.get_by_test_id("message-input").press("Enter")
        expect(page.locator(DONE)).to_have_count(2)
        assert answer_of(page)["state"] == "done"


def test_the_new_task_form_creates_a_task_on_a_dataset_with_variables_and_a_template(
    page: Page, user: BrowserUser
) -> None:
    dataset = user.api.post("/vlm/v2/dataset/", json={"name": "Form colours"}).json()
    variable = {"dataset": dataset["id"], "name": "color", "type": "string", "choices": "red,green,blue"}
    assert user.api.post("/vlm/v2/variable/", json=variable).status_code == 201
    template = {"result_template": TEMPLATE}
    assert user.api.patch(f"/vlm/v2/dataset/{dataset['id']}/", json=template).status_code == 200
    page.get_by_test_id("tab-data").click()
    page.locator("summary", has_text="New task").click()
    form = page.get_by_test_id("new-task-form")
    form.locator("[name=datasets]").select_option(dataset["id"])
    form.locator("[name=name]").fill("n" * 201)  # longer than the platform takes: refused in its words
    form.locator("button[type=submit]").click()
    refused = user.api.post("/vlm/v2/task/", json={"name": "n" * 201, "datasets": [dataset["id"]]})
    assert refused.status_code == 400
    expect(page.get_by_test_id("error-message")).to_have_text(refused.json()["error"]["message"])
    expect(page.get_by_test_id("error-banner")).to_contain_text("Creating the task: HTTP 400")
    form.locator("[name=name]").fill("Form task")
    form.locator("[name=system_prompt]").fill("You label colours.")
    form.locator("[name=user_prompt]").fill(colour_task.PROMPT)
    form.locator("button[type=submit]").click()
    detail = page.get_by_test_id("data-detail")
    expect(detail.locator("h2")).to_have_text("Task: Form task")
    expect(detail).to_contain_text("Datasets: Form colours")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    item = page.get_by_test_id("task-item").filter(has_text="Form task")
    expect(item).to_contain_text("no version in production")
    task = user.api.get(f"/vlm/v2/task/{item.get_attribute('data-id')}/").json()
    stored = (task["name"], task["system_prompt"], task["user_prompt"], task["datasets"])
    assert stored == ("Form task", "You label colours.", colour_task.PROMPT, [dataset["id"]])
    expect(detail).to_contain_text(f"model name: task-{task['id']}")
    expect(form.locator("[name=name]")).to_have_value("")  # ready for the next one


def model_ids(user: BrowserUser) -> set[str]:
    return {card["id"] for card in user.api.get("/v1/models").json()["data"]}


def test_set_production_moves_the_task_model_to_the_chosen_version(
    page: Page, user: BrowserUser, trained: dict[str, str], tmp_path: Path
) -> None:
    task_id = task_with_a_version(user, trained, tmp_path)
    alias = f"task-{task_id}"
    # Taken out of production through the API: the task's own model name answers nobody.
    assert user.api.patch(f"/vlm/v2/task/{task_id}/", json={"production_version": 0}).status_code == 200
    assert alias not in model_ids(user) and f"{alias}-v1" in model_ids(user)
    page.get_by_test_id("tab-data").click()
    page.locator(f"[data-testid=task-item][data-id='{task_id}']").click()
    expect(page.get_by_test_id("data-detail")).to_contain_text("production version: none")
    task_item = page.locator(f"[data-testid=task-item][data-id='{task_id}']")
    expect(task_item).to_contain_text("no version in production")  # trained, but not "not trained"
    version = page.locator("[data-testid=versions] tr[data-version='1']")
    expect(version).not_to_contain_text("(production)")
    version.get_by_role("button", name="set production").click()
    expect(version).to_contain_text("(production)")
    expect(version.get_by_role("button", name="set production")).to_have_count(0)
    expect(page.get_by_test_id("data-detail")).to_contain_text("production version: 1")
    expect(task_item).to_contain_text("v1 in production")
    assert user.api.get(f"/vlm/v2/task/{task_id}/").json()["production_version"] == 1
    assert alias in model_ids(user)
    answer = user.api.post("/v1/chat/completions", json={
        "model": alias, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4,
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    page.get_by_test_id("tab-chat").click()
    page.locator("#refresh-models").click()
    option = page.locator(f'[data-testid=model-select] option[value="{alias}"]')
    expect(option).to_have_text(re.compile(r"\(production\)"))


def test_a_result_template_with_typed_variables_is_answered_and_parsed_field_by_field(
    page: Page, user: BrowserUser
) -> None:
    page.get_by_test_id("structured-mode").select_option("template")
    page.get_by_test_id("confidence-toggle").check()
    page.get_by_test_id("max-tokens").fill("32")
    page.get_by_test_id("template-input").fill(TEXT_TEMPLATE)  # {{level}} is not a variable yet
    page.get_by_test_id("message-input").fill("Describe the image.")
    page.get_by_test_id("send-button").click()
    refused = user.api.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "Describe the image."}], "max_tokens": 32,
        "result_template": TEXT_TEMPLATE, "confidence": True,
        "variables": [{"name": "color", "type": "string", "choices": "red,green,blue,yellow"}],
    })  # fmt: skip
    assert refused.status_code == 400
    expect(page.get_by_test_id("error-message")).to_have_text(refused.json()["error"]["message"])
    assert answer_of(page)["state"] == "error"
    structured = page.locator("fieldset.structured")
    structured.get_by_role("button", name="+ variable").click()
    row = structured.get_by_test_id("variable-row").last
    row.locator("[data-role=name]").fill("level")
    row.locator("[data-role=type]").select_option("integer")
    row.locator("[data-role=min_value]").fill("0")
    row.locator("[data-role=max_value]").fill("9")
    hand_over_image(page, "blue", "paste")
    page.get_by_test_id("message-input").fill("Describe the image.")
    python = page.get_by_test_id("python-code")
    expect(python).to_contain_text('"result_template": "The colour is {{color}}')
    expect(python).to_contain_text('"max_value": 9')
    page.get_by_test_id("send-button").click()
    answer = answer_of(page)
    assert answer["state"] == "done", page.get_by_test_id("error-banner").inner_text()
    match = re.fullmatch(
        r"The colour is (red|green|blue|yellow) and the level is (\d)\.", answer["text"] or ""
    )
    assert match, answer["text"]
    cells = page.locator(f"{DONE}[data-state=done] [data-testid=structured-value]")
    shown = {
        cells.nth(i).get_attribute("data-field"): cells.nth(i).inner_text() for i in range(cells.count())
    }
    assert shown == {"color": match[1], "level": match[2]}
    for i in range(cells.count()):
        confidence = float(cells.nth(i).get_attribute("data-confidence") or "nan")
        assert 0 < confidence <= 1
        assert cells.nth(i).get_attribute("title") == f"confidence {confidence:.3f}"


SHORTENED = re.compile(r"data:([a-z0-9.+/-]+);base64,([A-Za-z0-9+/=]{60})[A-Za-z0-9+/=]+", re.IGNORECASE)


def sse_text(stream: str) -> str:
    """The answer text of an SSE chat stream (curl's output)."""
    text = ""
    for line in stream.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                text += choice["delta"].get("content") or ""
    return text


def test_copy_gives_the_whole_snippets_and_both_run_as_the_same_request(
    page: Page, gateway: GatewayProcess
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
    page.locator("#temperature").fill("0")
    page.locator("#seed").fill("7")
    page.get_by_test_id("max-tokens").fill("12")
    page.get_by_test_id("image-input").set_input_files([png_file("red.png", "red")])
    page.get_by_test_id("message-input").fill("What colour is the image?")
    page.get_by_test_id("request-code").locator("summary").click()
    expect(page.get_by_test_id("python-code")).to_contain_text("What colour is the image?")
    copied: dict[str, str] = {}
    for which in ("python", "curl"):
        button = page.locator(f"[data-copy={which}]")
        button.click()
        expect(button).to_have_text("Copied")
        copied[which] = page.evaluate("navigator.clipboard.readText()")
        shown = page.get_by_test_id(f"{which}-code").text_content() or ""
        assert png_data_uri("red") in copied[which] and png_data_uri("red") not in shown  # whole vs shortened
        assert SHORTENED.sub(lambda m: f"data:{m[1]};base64,{m[2]}…", copied[which]) == shown
    body = json.loads(copied["curl"].split("<<'JSON'\n", 1)[1].rsplit("\nJSON", 1)[0])
    assert body["messages"][0]["content"][0]["image_url"]["url"] == png_data_uri("red")
    assert (body["model"], body["seed"], body["max_tokens"], body["stream"]) == (MODEL, 7, 12, True)
    ran = {
        "python": subprocess.run(
            [sys.executable, "-c", copied["python"]], capture_output=True, text=True, timeout=120
        ),
        "curl": subprocess.run(["bash", "-c", copied["curl"]], capture_output=True, text=True, timeout=120),
    }
    for which, done in ran.items():
        assert done.returncode == 0, f"{which}: {done.stderr[-2000:]}"
    page.get_by_test_id("send-button").click()
    answer = answer_of(page)
    assert answer["state"] == "done" and answer["text"]
    text = page.locator(DONE).last.locator(".text").text_content()
    assert ran["python"].stdout == f"{text}\n"
    assert sse_text(ran["curl"].stdout) == text


def test_a_browser_without_a_key_is_asked_for_one(
    browser: Browser, gateway: GatewayProcess, user: BrowserUser
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(gateway.url + "/")
    key = tab.get_by_test_id("api-key-input")
    expect(tab.get_by_test_id("error-banner")).to_be_visible()
    expect(tab.get_by_test_id("error-message")).to_contain_text("You didn't provide an API key")
    expect(tab.get_by_test_id("key-prompt")).to_contain_text(
        "This gateway needs an API key. Enter one in the"
    )
    expect(key).to_be_focused()
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(tab.get_by_test_id("send-button")).to_be_visible()  # the page is whole, only empty
    screenshot(tab, "playground-no-key")
    tab.get_by_test_id("tab-data").click()
    expect(tab.get_by_test_id("key-prompt")).to_be_visible()
    key.fill("not-a-key")
    key.press("Enter")
    expect(tab.get_by_test_id("error-message")).to_have_text("Incorrect API key provided.")
    expect(tab.get_by_test_id("key-prompt")).to_contain_text("This key was not accepted.")
    key.fill(user.key)
    key.press("Enter")
    expect(tab.get_by_test_id("error-banner")).to_be_hidden()
    expect(key).not_to_have_attribute("aria-invalid", "true")
    tab.locator(f'[data-testid=model-select] option[value="{MODEL}"]').wait_for(state="attached")
    expect(tab.get_by_test_id("data-detail")).to_be_visible()  # the data view it was on, now with the key
    tab.reload()  # the key is remembered in this browser
    tab.locator(f'[data-testid=model-select] option[value="{MODEL}"]').wait_for(state="attached")
    expect(tab.get_by_test_id("error-banner")).to_be_hidden()
    context.close()
    assert not errors, f"script errors in the page: {errors}"
