"""OpenAI chat-completions wire types (msgspec), separate from any serving logic.

Requests are decoded strictly: unknown fields are refused with a 400 that names them, because an ignored
field silently changes behaviour (vLLM ignores the old ``guided_*`` fields and answers unconstrained).
Responses and stream chunks mirror OpenAI's shapes exactly; fields that only vLLM adds are dropped.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta

# ---------------------------------------------------------------- request: content parts


class ImageUrl(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An image: a ``data:`` URI, an http(s) URL (the gateway fetches it) or ``image://<stored image id>``."""

    url: str
    detail: Literal["auto", "low", "high"] = "auto"


VideoMode = Literal["frames", "native"]
FrameCount = Annotated[int, Meta(ge=1, le=1024)]
# Every integer a request carries is bounded, so a huge number is a 400 naming the field, never an overflow
# further down (the engine's 64-bit sampling fields, database columns).
TokenCount = Annotated[int, Meta(ge=1, le=1_000_000)]
Seed = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Length = Annotated[int, Meta(ge=0, le=1_000_000)]
FramesPerSecond = Annotated[float, Meta(gt=0.0, le=120.0)]
Seconds = Annotated[float, Meta(ge=0.0)]


class VideoOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How to sample a video: ``num_frames`` uniformly or ``fps`` per second, within [start, end) seconds.

    ``mode`` ``frames`` (default) turns the frames into ordered images with their timestamps in the text, so
    any image model can answer about a video; ``native`` sends the sampled frames to the engine as a video.
    """

    num_frames: FrameCount | None = None
    fps: FramesPerSecond | None = None
    start: Seconds | None = None
    end: Seconds | None = None
    mode: VideoMode | None = None

    def __post_init__(self) -> None:
        _check_sampling(self.num_frames, self.fps, self.start, self.end)


class VideoUrl(VideoOptions, kw_only=True):
    """A video as a ``data:`` URI or an http(s) URL, with optional sampling options for this video."""

    url: str


def _check_sampling(
    num_frames: int | None, fps: float | None, start: float | None, end: float | None
) -> None:
    if num_frames is not None and fps is not None:
        raise ValueError("give either `num_frames` or `fps`, not both")
    if start is not None and end is not None and start >= end:
        raise ValueError("`start` must be before `end`")


class TextPart(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True, omit_defaults=True):
    text: str


class ImageUrlPart(
    msgspec.Struct, tag_field="type", tag="image_url", forbid_unknown_fields=True, omit_defaults=True
):
    image_url: ImageUrl


class VideoUrlPart(
    msgspec.Struct, tag_field="type", tag="video_url", forbid_unknown_fields=True, omit_defaults=True
):
    video_url: VideoUrl


ContentPart = TextPart | ImageUrlPart | VideoUrlPart
UserContent = str | Annotated[list[ContentPart], Meta(min_length=1)]
TextContent = str | list[TextPart]

# ---------------------------------------------------------------- request: messages


class _Instructions(msgspec.Struct, tag_field="role", forbid_unknown_fields=True, omit_defaults=True):
    """The fields of the two instruction roles (``developer`` is OpenAI's newer name for ``system``)."""

    content: TextContent
    name: str | None = None


class SystemMessage(_Instructions, tag="system"):
    pass


class DeveloperMessage(_Instructions, tag="developer"):
    pass


class UserMessage(
    msgspec.Struct, tag_field="role", tag="user", forbid_unknown_fields=True, omit_defaults=True
):
    content: UserContent
    name: str | None = None


class AssistantMessage(
    msgspec.Struct, tag_field="role", tag="assistant", forbid_unknown_fields=True, omit_defaults=True
):
    content: TextContent | None = None
    name: str | None = None
    refusal: str | None = None


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage

# ---------------------------------------------------------------- request: options


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    include_usage: bool = False


class JsonSchemaSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class TextFormat(
    msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True, omit_defaults=True
):
    pass


class JsonObjectFormat(
    msgspec.Struct, tag_field="type", tag="json_object", forbid_unknown_fields=True, omit_defaults=True
):
    pass


class JsonSchemaFormat(
    msgspec.Struct, tag_field="type", tag="json_schema", forbid_unknown_fields=True, omit_defaults=True
):
    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


class StructuredOutputs(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """vLLM's request extension: one of ``json``, ``regex``, ``choice``, ``grammar``, ``json_object``."""

    json: dict[str, Any] | str | None = None
    regex: str | None = None
    choice: Annotated[list[str], Meta(min_length=1)] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    whitespace_pattern: str | None = None


class EngineStructuredOutputs(msgspec.Struct, omit_defaults=True):
    """What the gateway sends to vLLM as ``structured_outputs`` (one field set)."""

    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None


class TemplateVariable(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A result-template variable in a request (the fields of the platform API's variables)."""

    name: str
    type: Literal["string", "integer", "float", "boolean", "array", "object"]
    required: bool = True
    description: str = ""
    choices: list[str | int | float] | str | None = None
    min_value: int | float | None = None
    max_value: int | float | None = None
    step_size: int | float | None = None
    min_length: Length | None = None
    max_length: Length | None = None
    default_value: Any = None


Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
StopList = Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(max_length=16)]


class ChatCompletionRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """POST /v1/chat/completions body: OpenAI's fields plus a few of vLLM's sampling extensions."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Probability | None = None
    n: Annotated[int, Meta(ge=1, le=128)] = 1
    stop: Annotated[str, Meta(min_length=1)] | StopList | None = None
    seed: Seed | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100.0, le=100.0)]] | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Accepted for client compatibility; the gateway does not store completions.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    # vLLM sampling extensions (send with the openai client's `extra_body`).
    top_k: Annotated[int, Meta(ge=-1, le=1_000_000)] | None = None
    min_p: Probability | None = None
    repetition_penalty: Annotated[float, Meta(gt=0.0)] | None = None
    min_tokens: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    # Gateway extension (send with `extra_body`): default sampling for every `video_url` part of the request.
    video_options: VideoOptions | None = None
    # Structured output: vLLM's extension, and the legacy fields the gateway translates (never passes on).
    structured_outputs: StructuredOutputs | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: Annotated[list[str], Meta(min_length=1)] | None = None
    guided_grammar: str | None = None
    # Gateway extensions: result templates, retries of invalid answers, per-field confidence.
    result_template: Annotated[str, Meta(min_length=1)] | None = None
    variables: list[TemplateVariable] | None = None
    template_format: Literal["json", "yaml", "xml", "csv", "text"] | None = None
    max_retries: Annotated[int, Meta(ge=0, le=5)] | None = None
    confidence: bool | None = None
    # Gateway extension: act in this workspace (an id the key's user may use) instead of the key's default;
    # read by the workspace dependency, never sent to the engine.
    workspace: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("`top_logprobs` requires `logprobs: true`")
        if self.stream_options is not None and not self.stream:
            raise ValueError("`stream_options` is only allowed when `stream` is true")


# ---------------------------------------------------------------- responses


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class ChoiceLogprobs(msgspec.Struct):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class PromptTokensDetails(msgspec.Struct, omit_defaults=True):
    cached_tokens: int = 0


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatMessage(msgspec.Struct):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "function_call"]


class Choice(msgspec.Struct):
    index: int
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    # Gateway extension (``confidence: true``): per-field confidence in [0, 1], by JSON path.
    confidence: dict[str, float] | msgspec.UnsetType = msgspec.UNSET


ChoiceT = TypeVar("ChoiceT")


class _Completion(msgspec.Struct, Generic[ChoiceT]):
    """What a whole answer and a stream chunk share; each says its ``object`` and kind of choice."""

    id: str
    created: int
    model: str
    choices: list[ChoiceT]
    object: str = ""
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class ChatCompletion(_Completion[Choice]):
    object: Literal["chat.completion"] = "chat.completion"


class Delta(msgspec.Struct, omit_defaults=True):
    """A stream delta: only the fields that changed (OpenAI sends `{}` on the final chunk)."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(_Completion[ChunkChoice]):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


# ---------------------------------------------------------------- models


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"
