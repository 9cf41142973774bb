"""The playground in a real browser against the real gateway and vLLM on the tiny model."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import openai
from aiohttp import web
from playwright.sync_api import Page, expect

from tests.e2e.conftest import BrowserUser, screenshot
from tests.support import colour_task
from tests.support.http_server import ThreadedServer
from tests.support.media import png_bytes, png_data_uri, video_bytes
from tests.support.platform_task import build_colour_task
from tests.support.session_gateway import ADAPTER, MODEL, GatewayProcess

DONE = "[data-testid=assistant-message]:not([data-state=streaming])"
METER = r"[\d.]+ s · first token [\d.]+ s · \d+ prompt \+ \d+ completion tokens"
TRAINING_TIMEOUT_MS = 240_000
SLOW_IMAGE_S = 2.0
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


def test_training_a_task_from_the_browser_and_chatting_with_the_new_version(
    page: Page, user: BrowserUser, tmp_path: Path
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
