"""Training files in OpenAI's chat fine-tuning format: check every line, then turn lines into examples.

A file is JSON lines, one conversation each: ``{"messages": [{"role": "system"|"user"|"assistant", "content":
"..." or [parts]}, ...]}``. User messages may carry ``image_url`` parts (``data:`` URIs, http(s) URLs fetched
through the media guard, ``image://<id>`` stored images) and ``video_url`` parts (sampled into frames, each
with its timestamp line, exactly as a chat request's video is). An assistant message may have ``"weight": 0``
(shown, not learned); at least one must be learned.

``parse_lines`` checks the structure (no I/O); ``resolve_media`` runs each line's media through the chat
request's media pipeline, so a file is accepted only when every image and video can be used. Problems are
collected for every line (up to ``MAX_PROBLEMS`` are reported, with the total), never stopping at the
first, and a file with any problem is refused whole.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from finetune.spec import MAX_IMAGES_PER_EXAMPLE, ChatTurn, TurnPart
from gateway.media.errors import MediaError
from gateway.media.pipeline import MediaPipeline, decode_data_uri
from gateway.openai_api.protocol import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    ImageUrlPart,
    Message,
    SystemMessage,
    TextPart,
    UserMessage,
)

MAX_PROBLEMS = 20
MAX_LINES = 50_000
UNSUPPORTED_KEYS = ("tools", "functions", "parallel_tool_calls")
_messages = msgspec.json.Decoder(list[Message])


class TrainingFileError(ValueError):
    """The file cannot be trained on; ``problems`` names each bad line and what is wrong with it."""

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        self.total = total if total is not None else len(problems)
        more = f" (the first {MAX_PROBLEMS} of {self.total})" if self.total > MAX_PROBLEMS else ""
        super().__init__(f"{self.total} problem(s){more}: " + "; ".join(self.problems))


@dataclass
class Line:
    """One checked conversation: its line number, messages and the weights of its assistant messages."""

    number: int
    messages: list[Message]
    weights: dict[int, int] = field(default_factory=dict)  # message index -> weight (assistant only)


@dataclass
class Conversation:
    """A line ready for the trainer: turns with ``image`` parts, and the images' bytes in order."""

    number: int
    turns: list[ChatTurn]
    images: list[bytes]


def parse_lines(data: bytes) -> list[Line]:
    """Every line checked for structure; raises ``TrainingFileError`` naming each bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingFileError([f"the file is not UTF-8 text (byte {exc.start})"]) from None
    lines: list[Line] = []
    problems: list[str] = []
    numbered = [(n, raw) for n, raw in enumerate(text.splitlines(), 1) if raw.strip()]
    if not numbered:
        raise TrainingFileError(["the file has no examples (it is empty)"])
    if len(numbered) > MAX_LINES:
        raise TrainingFileError([f"the file has {len(numbered)} examples; at most {MAX_LINES} are allowed"])
    for number, raw in numbered:
        try:
            lines.append(_parse_line(number, raw))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        raise TrainingFileError(problems)
    return lines


def _parse_line(number: int, raw: str) -> Line:
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object with `messages`")
    unsupported = [k for k in UNSUPPORTED_KEYS if k in obj]
    if unsupported:
        raise ValueError(f"`{unsupported[0]}` is not supported (function calling cannot be fine-tuned here)")
    unknown = sorted(set(obj) - {"messages"})
    if unknown:
        raise ValueError(f"unknown key `{unknown[0]}`; a line has `messages` only")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ValueError("`messages` must be a non-empty list of messages")
    weights = _weights(raw_messages)
    try:
        messages = _messages.decode(msgspec.json.encode(raw_messages))
    except msgspec.ValidationError as exc:
        text, _, path = str(exc).rpartition(" - at `$")
        where = f"messages{path.rstrip('`')}" if text else "messages"
        raise ValueError(f"`{where}`: {text or exc}") from None
    _check_conversation(messages, weights)
    return Line(number, messages, weights)


def _weights(raw_messages: list[Any]) -> dict[int, int]:
    """Take the ``weight`` out of each message (the chat types have none); only assistants may have one."""
    weights: dict[int, int] = {}
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict):
            raise ValueError(f"`messages[{i}]` must be an object with `role` and `content`")
        role = message.get("role")
        if role in ("tool", "function"):
            raise ValueError(f"`messages[{i}].role`: `{role}` messages are not supported")
        if "weight" in message:
            weight = message.pop("weight")
            if role != "assistant":
                raise ValueError(f"`messages[{i}].weight`: only assistant messages have a weight")
            if weight not in (0, 1) or isinstance(weight, bool):
                raise ValueError(f"`messages[{i}].weight`: must be 0 or 1 (got {weight!r})")
            weights[i] = int(weight)
        elif role == "assistant":
            weights[i] = 1
    return weights


def _check_conversation(messages: list[Message], weights: dict[int, int]) -> None:
    for i, message in enumerate(messages):
        if isinstance(message, AssistantMessage):
            if message.refusal is not None:
                raise ValueError(f"`messages[{i}].refusal`: refusals cannot be trained on")
            if not _text(message.content):
                raise ValueError(f"`messages[{i}].content`: an assistant message needs text")
    if not any(weights.values()):
        raise ValueError("no assistant message to learn (at least one with weight 1 is needed)")
    first = next((m for m in messages if not isinstance(m, SystemMessage | DeveloperMessage)), None)
    if not isinstance(first, UserMessage):
        raise ValueError("the conversation must start with a user message (after any system message)")
    images = sum(
        isinstance(p, ImageUrlPart)
        for m in messages
        if isinstance(m, UserMessage) and isinstance(m.content, list)
        for p in m.content
    )
    if images > MAX_IMAGES_PER_EXAMPLE:
        raise ValueError(f"{images} images; at most {MAX_IMAGES_PER_EXAMPLE} per example")


def _text(content: str | list[TextPart] | None) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(p.text for p in content)


async def resolve_media(
    media: MediaPipeline, lines: list[Line], workspace: str, *, concurrency: int = 4
) -> list[Conversation]:
    """Every line's media fetched, checked and converted (videos into frames); ``TrainingFileError`` naming
    each line whose media cannot be used."""
    gate = asyncio.Semaphore(concurrency)

    async def one(line: Line) -> Conversation | str:
        async with gate:
            try:
                return await _conversation(media, line, workspace)
            except MediaError as exc:
                return f"line {line.number}: {exc.message}"
            except ValueError as exc:
                return f"line {line.number}: {exc}"

    results = await asyncio.gather(*(one(line) for line in lines))
    problems = [r for r in results if isinstance(r, str)]
    if problems:
        raise TrainingFileError(problems)
    return [r for r in results if isinstance(r, Conversation)]


async def _conversation(media: MediaPipeline, line: Line, workspace: str) -> Conversation:
    request = ChatCompletionRequest(model="fine-tune", messages=line.messages)
    prepared = await media.prepare(request, workspace)
    try:
        turns: list[ChatTurn] = []
        images: list[bytes] = []
        for i, message in enumerate(prepared.request.messages):
            turns.append(await _turn(message, line.weights.get(i, 1), images))
    finally:
        prepared.release()
    if len(images) > MAX_IMAGES_PER_EXAMPLE:
        raise ValueError(
            f"{len(images)} images once videos are sampled into frames; at most {MAX_IMAGES_PER_EXAMPLE} "
            "per example (ask for fewer frames with `num_frames`)"
        )
    return Conversation(line.number, turns, images)


async def _turn(message: Message, weight: int, images: list[bytes]) -> ChatTurn:
    if isinstance(message, UserMessage):
        if isinstance(message.content, str):
            return ChatTurn(role="user", content=message.content)
        parts: list[TurnPart] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append(TurnPart(type="text", text=part.text))
            elif isinstance(part, ImageUrlPart):
                images.append(await asyncio.to_thread(_checked_bytes, part.image_url.url))
                parts.append(TurnPart(type="image"))
            else:  # frames mode only: a native clip cannot be trained on
                raise ValueError("videos are trained on as frames; `mode: native` is not supported here")
        return ChatTurn(role="user", content=parts)
    if isinstance(message, AssistantMessage):
        return ChatTurn(role="assistant", content=_text(message.content), weight=weight)
    return ChatTurn(role="system", content=_text(message.content))


def _checked_bytes(url: str) -> bytes:
    """The bytes of a media part the pipeline produced: a data URI, or a hand-off file."""
    if url.startswith("data:"):
        return decode_data_uri(url, 1 << 31)
    if url.startswith("file://"):
        return Path(url.removeprefix("file://")).read_bytes()
    raise ValueError("unexpected media URL after checking")  # the pipeline makes only these two


def conversation_payload(conversation: Conversation, image_paths: list[str]) -> dict[str, Any]:
    """A conversation as the training spec's example (``finetune.spec.Example`` with ``messages``)."""
    return {
        "sample_id": f"line-{conversation.number}",
        "messages": msgspec.to_builtins(conversation.turns),
        "images": image_paths,
    }


def image_extension(data: bytes) -> str:
    """A file extension for image bytes the media step produced (PNG, JPEG or WebP)."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "jpg"
