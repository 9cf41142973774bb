"""Training files in OpenAI's chat fine-tuning format: every bad line named, nothing half-accepted, and the
media of good lines turned into the trainer's turns and images (videos as timestamped frames)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from gateway.finetuning.training_file import MAX_PROBLEMS, TrainingFileError, parse_lines, resolve_media
from gateway.media.address import AddressGuard, AllowList
from gateway.media.fetch import Fetcher, FetchLimits
from gateway.media.pipeline import MediaLimits, MediaPipeline
from tests.support.media import video_bytes


def png_uri(colour: tuple[int, int, int] = (200, 10, 10)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def line(*messages: dict[str, Any]) -> str:
    return json.dumps({"messages": list(messages)})


USER = {"role": "user", "content": "What colour?"}
ANSWER = {"role": "assistant", "content": "red"}


def problems_of(*lines: str) -> list[str]:
    with pytest.raises(TrainingFileError) as caught:
        parse_lines("\n".join(lines).encode())
    return caught.value.problems


def test_good_lines_parse_with_weights_and_blank_lines_skipped() -> None:
    text = "\n".join(
        [
            line(USER, {**ANSWER, "weight": 0}, USER, ANSWER),
            "",
            line({"role": "system", "content": "s"}, USER, ANSWER),
        ]
    )
    parsed = parse_lines(text.encode())
    assert [p.number for p in parsed] == [1, 3]
    assert parsed[0].weights == {1: 0, 3: 1}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"prompt": "x", "completion": "y"}), "unknown key `completion`"),
        (json.dumps({"messages": []}), "non-empty list"),
        (line(USER), "no assistant message to learn"),
        (line(USER, {**ANSWER, "weight": 0}), "no assistant message to learn"),
        (line(USER, {**ANSWER, "weight": 2}), "must be 0 or 1"),
        (line({**USER, "weight": 1}, ANSWER), "only assistant messages have a weight"),
        (line({"role": "tool", "content": "x"}, ANSWER), "`tool` messages are not supported"),
        (line({"role": "robot", "content": "x"}, ANSWER), "`messages[0].role`: Invalid value 'robot'"),
        (line(ANSWER), "must start with a user message"),
        (line(USER, {"role": "assistant", "content": ""}), "needs text"),
        (line({"role": "user", "content": [{"type": "audio", "x": 1}]}, ANSWER), "`messages[0].content"),
        (json.dumps({"messages": [USER, ANSWER], "tools": []}), "`tools` is not supported"),
        (
            line({"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": png_uri()}}]}),
            "`messages[0]",
        ),
        (
            line(
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_uri()}}] * 11},
                ANSWER,
            ),
            "11 images; at most 10",
        ),
    ],
)
def test_each_bad_line_is_named_with_its_problem(bad: str, expected: str) -> None:
    (problem,) = problems_of(line(USER, ANSWER), bad)
    assert problem.startswith("line 2: ") and expected in problem, problem


def test_every_bad_line_is_reported_up_to_the_limit() -> None:
    with pytest.raises(TrainingFileError) as caught:
        parse_lines("\n".join(["nope"] * 30 + [line(USER, ANSWER)]).encode())
    assert caught.value.total == 30 and len(caught.value.problems) == MAX_PROBLEMS
    assert "the first 20 of 30" in str(caught.value)
    assert caught.value.problems[-1].startswith("line 20:")


def test_empty_and_non_utf8_files_are_refused() -> None:
    assert "empty" in problems_of("")[0]
    with pytest.raises(TrainingFileError, match="not UTF-8"):
        parse_lines(b"\xff\xfe\x00")


class NoImages:
    async def read(self, image_id: str, workspace: str | None) -> bytes:
        raise KeyError(image_id)


@pytest.fixture
async def media() -> Any:
    guard = AddressGuard(AllowList.parse([]), None)
    pipeline = MediaPipeline(
        MediaLimits(decode_isolation="thread"), Fetcher(guard, FetchLimits()), stored=NoImages()
    )
    yield pipeline
    await pipeline.close()


async def test_media_become_image_parts_and_videos_timestamped_frames(media: MediaPipeline) -> None:
    video = "data:video/mp4;base64," + base64.b64encode(video_bytes()).decode()
    user = {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": png_uri()}},
        {"type": "video_url", "video_url": {"url": video, "num_frames": 3}},
        {"type": "text", "text": "What happens?"},
    ]}  # fmt: skip
    (conversation,) = await resolve_media(media, parse_lines(line(user, ANSWER).encode()), "ws")
    assert len(conversation.images) == 4 and all(
        i[:4] == b"\x89PNG" or i[:2] == b"\xff\xd8" for i in conversation.images
    )
    parts = conversation.turns[0].content
    assert isinstance(parts, list)
    assert [p.type for p in parts].count("image") == 4
    assert any(p.text.startswith("Frame 3 at") for p in parts)
    assert conversation.turns[1].role == "assistant" and conversation.turns[1].content == "red"


async def test_unusable_media_name_the_line_and_the_part(media: MediaPipeline) -> None:
    def with_url(url: str) -> str:
        return line({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}, ANSWER)

    lines = parse_lines("\n".join([
        with_url(png_uri()),
        with_url("data:image/png;base64,aGVsbG8="),
        with_url("image://missing-id"),
        with_url("ftp://example.com/x.png"),
    ]).encode())  # fmt: skip
    with pytest.raises(TrainingFileError) as caught:
        await resolve_media(media, lines, "ws")
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4"]
    assert all("messages[0].content[0].image_url.url" in p for p in problems)
    assert "no stored image `missing-id`" in problems[1]
