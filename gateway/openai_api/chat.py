"""The chat-completions service: route the model, call the engine, relay or return OpenAI-shaped answers.

Streams are relayed chunk by chunk as the engine sends them: each SSE event is decoded into the OpenAI chunk
type (dropping vLLM-only fields), re-encoded and yielded at once. The engine is always asked for usage so
that token metrics are complete; the usage chunk reaches the client only when it asked for it. An error after
the stream began ends the stream with an error event and ``[DONE]``.
"""

from __future__ import annotations

import functools
import logging
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
        with target.engine.track():
            body = await self.catalog.call(
                target, lambda engine: engine.client.post_json("/v1/chat/completions", request_body)
            )
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

        async def open_stream(engine: Engine) -> tuple[AbstractAsyncContextManager[Any], AsyncIterator[str]]:
            stream_cm = engine.client.stream_lines("/v1/chat/completions", body)
            return stream_cm, await stream_cm.__aenter__()

        target.engine.inflight += 1
        try:
            stream_cm, lines = await self.catalog.call(target, open_stream)
        except BaseException:
            target.engine.inflight -= 1
            media.release()
            raise
        wants_usage = req.stream_options is not None and req.stream_options.include_usage
        return self._relay(target, stream_cm, lines, wants_usage, media, watch)

    async def _relay(
        self,
        target: Target,
        stream_cm: AbstractAsyncContextManager[Any],
        lines: AsyncIterator[str],
        wants_usage: bool,
        media: PreparedMedia,
        watch: StreamWatch | None = None,
    ) -> AsyncIterator[bytes]:
        held: list[bytes] = []  # a constrained stream's finishing chunks, sent once the answer is checked
        try:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                out, hold = self._relay_event(data, target.model, wants_usage, watch)
                if out is not None:
                    if hold:
                        held.append(out)
                    else:
                        yield out
        except EngineFault as exc:
            if isinstance(exc, EngineUnavailable):
                self.catalog.engine_failed(target.engine, exc.message)
            log.warning("stream from %s broke: %s", target.engine.url, exc.message)
            yield sse(_encode(ErrorResponse(detail_for(exc)[1])))
        else:
            invalid = watch.error() if watch is not None else None
            if invalid is not None:  # a constrained answer that breaks its constraint: say so before [DONE]
                yield sse(_encode(invalid))
            else:
                for out in held:
                    yield out
        finally:
            target.engine.inflight -= 1
            media.release()
            await stream_cm.__aexit__(None, None, None)
        yield DONE

    def _relay_event(
        self, data: str, model: str, wants_usage: bool, watch: StreamWatch | None = None
    ) -> tuple[bytes | None, bool]:
        """The event to send for one engine event (None: nothing), and whether to hold it back until a
        constrained answer is checked (its finishing chunk, and what follows it)."""
        try:
            chunk = _decode_chunk(data)
        except msgspec.ValidationError:
            return sse(data.encode()), False  # an error event from the engine: pass it on as it is
        chunk.model = model
        hold = watch.see(chunk) if watch is not None else False
        if chunk.usage is not None and not chunk.choices:
            self.metrics.record_usage(model, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            if not wants_usage:
                return None, hold
        return sse(_encode(chunk)), hold


def _for_engine(req: ChatCompletionRequest, target: Target) -> ChatCompletionRequest:
    """The request with the model name the engine knows (a task model's adapter, say) and without the
    gateway's ``workspace`` selector."""
    if req.model == target.model and req.workspace is None:
        return req
    return msgspec.structs.replace(req, model=target.model, workspace=None)


def _ws(workspace: Workspace) -> str | None:
    return None if workspace is None else str(workspace)
