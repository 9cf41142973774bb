"""The chat-completions service: route the model, call the engine, relay or return OpenAI-shaped answers.

Streams are relayed as the engine sends them (what arrived in one read leaves in one write), each event as
cheaply as it allows (``StreamRelay``): byte for byte when nothing in it must change, with a byte-level
model-name swap when only that differs, decoded into the OpenAI chunk type and encoded again only for
usage, structured-output checks and the unexpected. The engine is always asked for usage so that token
metrics are complete; the usage chunk reaches the client only when it asked for it. An error after the
stream began ends the stream with an error event and ``[DONE]``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from adapters.errors import EngineFault, EngineUnavailable
from adapters.pool import Engine
from gateway.catalog import ModelCatalog, Target
from gateway.catalog.catalog import Workspace
from gateway.errors import ErrorResponse, detail_for
from gateway.media.pipeline import MediaPipeline, PreparedMedia
from gateway.metrics import Metrics
from gateway.openai_api.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    StreamOptions,
)
from gateway.openai_api.streaming import DONE, sse
from gateway.structured.service import StreamWatch, StructuredOutputService

log = logging.getLogger("vlmgw.chat")

_encode = msgspec.json.Encoder().encode
_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_completion = msgspec.json.Decoder(ChatCompletion).decode
_MODEL_FIELD = re.compile(rb'"model":"(?:[^"\\]|\\.)*"')


class ChatService:
    """POST /v1/chat/completions, independent of the web framework.

    One order for whole answers and streams: plan the structured constraint (bad schemas fail before any
    work), resolve the model through the catalog (404 before any media is fetched), prepare the media, then
    call the engine through the catalog (which retries once when an engine lost an adapter).
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        metrics: Metrics,
        media: MediaPipeline,
        structured: StructuredOutputService,
    ) -> None:
        self.catalog = catalog
        self.metrics = metrics
        self.media = media
        self.structured = structured

    async def complete(self, req: ChatCompletionRequest, workspace: Workspace = None) -> ChatCompletion:
        """``workspace``: the caller's workspace (``image://ID`` parts, task models); None skips the check."""
        plan = self.structured.plan(req)
        target = await self.catalog.resolve(req.model, workspace)
        media = await self.media.prepare(_for_engine(req, target), _ws(workspace))
        try:
            if plan is not None:  # structured output: constrain, check, retry (gateway.structured)
                send = functools.partial(self._complete, target)
                return await self.structured.complete(media.request, plan, send)
            return await self._complete(target, _encode(media.request))
        finally:
            media.release()

    async def _complete(self, target: Target, request_body: bytes) -> ChatCompletion:
        target.engine.inflight += 1
        try:
            body = await self.catalog.call(
                target, lambda engine: engine.client.post_json("/v1/chat/completions", request_body)
            )
        finally:
            target.engine.inflight -= 1
        result = _decode_completion(body)
        result.model = target.model
        if result.usage is not None:
            self.metrics.record_usage(
                target.model, result.usage.prompt_tokens, result.usage.completion_tokens
            )
        return result

    async def stream(self, req: ChatCompletionRequest, workspace: Workspace = None) -> AsyncIterator[bytes]:
        """Open the engine's stream (errors before the first chunk raise) and return the relay."""
        plan = self.structured.plan(req)
        target = await self.catalog.resolve(req.model, workspace)
        media = await self.media.prepare(_for_engine(req, target), _ws(workspace))
        upstream = msgspec.structs.replace(media.request, stream_options=StreamOptions(include_usage=True))
        body = _encode(upstream) if plan is None else self.structured.upstream_body(upstream, plan)
        watch = None if plan is None else self.structured.watch(plan)

        async def open_stream(
            engine: Engine,
        ) -> tuple[AbstractAsyncContextManager[Any], AsyncIterator[bytes]]:
            stream_cm = engine.client.stream_events("/v1/chat/completions", body)
            return stream_cm, await stream_cm.__aenter__()

        target.engine.inflight += 1
        try:
            stream_cm, events = await self.catalog.call(target, open_stream)
        except BaseException:
            target.engine.inflight -= 1
            media.release()
            raise
        wants_usage = req.stream_options is not None and req.stream_options.include_usage
        relay = StreamRelay(target.model, wants_usage, self.metrics, watch)
        return self._relay(target, stream_cm, events, relay, media)

    async def _relay(
        self,
        target: Target,
        stream_cm: AbstractAsyncContextManager[Any],
        events: AsyncIterator[bytes],
        relay: StreamRelay,
        media: PreparedMedia,
    ) -> AsyncIterator[bytes]:
        done = False
        tail = b""  # after the engine's events when it ends without [DONE]: an error event, or the finish
        try:
            async for block in events:  # read to the end even after [DONE], so the connection is reused
                if done:
                    continue
                out, done = relay.block(block)
                if done:  # the answer is complete: its finish and [DONE] leave with its last events
                    out.append(_finish(relay) + DONE)
                if out:  # what the engine sent together goes on together: one write, not one per event
                    yield out[0] if len(out) == 1 else b"".join(out)
        except EngineFault as exc:
            if isinstance(exc, EngineUnavailable):
                self.catalog.engine_failed(target.engine, exc.message)
            log.warning("stream from %s broke: %s", target.engine.url, exc.message)
            tail = sse(_encode(ErrorResponse(detail_for(exc)[1])))
        else:
            tail = b"" if done else _finish(relay)
        finally:
            target.engine.inflight -= 1
            media.release()
            await stream_cm.__aexit__(None, None, None)
        if not done:
            yield tail + DONE


def _finish(relay: StreamRelay) -> bytes:
    """What goes before [DONE]: for a constrained answer that broke its constraint an error event, else the
    finishing chunks held until the answer was checked (none for an unconstrained answer)."""
    invalid = relay.watch.error() if relay.watch is not None else None
    return sse(_encode(invalid)) if invalid is not None else b"".join(relay.held)


class StreamRelay:
    """Turns the engine's server-sent events into the client's, as cheaply as each event allows.

    - Raw: an event that names the model the client gets, carries no usage and needs no structured check
      goes on byte for byte (no JSON decode or encode). This is almost every event of a stream.
    - Renamed: the same with another model name: the top-level ``"model"`` value is replaced in the bytes.
      Inside JSON strings quotes are escaped, so ``"model":"`` can only be a key; the first one in a chunk
      is the chunk's own (vLLM writes ``id, object, created, model`` before the choices).
    - Decoded: the usage event (recorded in the metrics; dropped unless the client asked for usage), every
      event of a structured stream (watched for the constraint) and anything unexpected are decoded into
      the OpenAI chunk type and encoded again, which also drops vLLM-only fields.
    """

    def __init__(self, model: str, wants_usage: bool, metrics: Metrics, watch: StreamWatch | None) -> None:
        self.model = model
        self.model_field = b'"model":' + _encode(model)
        self.wants_usage = wants_usage
        self.metrics = metrics
        self.watch = watch
        self.held: list[bytes] = []  # a constrained stream's finishing chunks, sent once it is checked

    def block(self, block: bytes) -> tuple[list[bytes], bool]:
        """The client's events for one or more whole engine events, and whether ``[DONE]`` was among them."""
        out: list[bytes] = []
        for event in block.split(b"\n\n"):
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return out, True
                relayed = self.event(data)
                if relayed is not None:
                    out.append(relayed)
        return out, False

    def event(self, data: bytes) -> bytes | None:
        if self.watch is None and b'"usage":{' not in data:
            if self.model_field in data:
                return b"data: " + data + b"\n\n"
            renamed, found = _MODEL_FIELD.subn(lambda _m: self.model_field, data, count=1)
            if found:
                return b"data: " + renamed + b"\n\n"
        return self.decoded(data)

    def decoded(self, data: bytes) -> bytes | None:
        try:
            chunk = _decode_chunk(data)
        except msgspec.ValidationError:
            return sse(data)  # an error event from the engine: pass it on as it is
        chunk.model = self.model
        hold = self.watch.see(chunk) if self.watch is not None else False  # its finishing chunk and after
        if chunk.usage is not None and not chunk.choices:
            self.metrics.record_usage(self.model, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            if not self.wants_usage:
                return None
        if hold:
            self.held.append(sse(_encode(chunk)))
            return None
        return sse(_encode(chunk))


def _for_engine(req: ChatCompletionRequest, target: Target) -> ChatCompletionRequest:
    """The request with the model name the engine knows (a task model's adapter, say) and without the
    gateway's ``workspace`` selector."""
    if req.model == target.model and req.workspace is None:
        return req
    return msgspec.structs.replace(req, model=target.model, workspace=None)


def _ws(workspace: Workspace) -> str | None:
    return None if workspace is None else str(workspace)
