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
from typing import Any, Protocol

import msgspec

from adapters.errors import EngineFault, EngineRejected, EngineUnavailable
from adapters.pool import Engine, EnginePool
from adapters.registry import AdapterRegistry
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


class ModelResolver(Protocol):
    """Maps names the gateway defines (a task's model) to the engine-side name; others pass unchanged."""

    async def resolve(self, model: str, workspace: str | None) -> str: ...


class ChatService:
    """POST /v1/chat/completions, independent of the web framework."""

    resolver: ModelResolver | None = None  # set by the app when trained task models are served

    def __init__(
        self,
        pool: EnginePool,
        metrics: Metrics,
        media: MediaPipeline,
        structured: StructuredOutputService | None = None,
        adapters: AdapterRegistry | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.media = media
        self.structured = structured or StructuredOutputService(metrics)
        self.adapters = adapters

    async def route(self, model: str) -> Engine:
        """The engine for ``model``: for a registered adapter, one serving its base with it loaded."""
        if self.adapters is not None:
            engine = await self.adapters.engine_for(model)
            if engine is not None:
                return engine
        return self.pool.route(model)

    async def _reloaded(self, engine: Engine, model: str, exc: EngineRejected) -> bool:
        """After the engine said "not found" for a registered adapter it had loaded (it restarted between
        two polls): load it again and say so, so the caller retries once."""
        if exc.status != 404 or self.adapters is None or self.adapters.get(model) is None:
            return False
        self.adapters.forget(engine, model)
        await self.adapters.ensure_loaded(engine, model)
        return True

    async def complete(self, req: ChatCompletionRequest, workspace: str | None = None) -> ChatCompletion:
        """``workspace``: the caller key's workspace (``image://ID`` parts, task models)."""
        req = await self._resolved(req, workspace)
        plan = self.structured.plan(req)  # checked before any media is fetched: bad schemas fail fast
        media = await self.media.prepare(req, workspace)
        try:
            if plan is not None:  # structured output: constrain, check, retry (gateway.structured)
                send = functools.partial(self._complete, req.model)
                return await self.structured.complete(media.request, plan, send)
            return await self._complete(req.model, _encode(media.request))
        finally:
            media.release()

    async def _resolved(self, req: ChatCompletionRequest, workspace: str | None) -> ChatCompletionRequest:
        if self.resolver is None:
            return req
        model = await self.resolver.resolve(req.model, workspace)
        return req if model == req.model else msgspec.structs.replace(req, model=model)

    async def _complete(self, model: str, request_body: bytes) -> ChatCompletion:
        engine = await self.route(model)
        with engine.track():
            call = engine.client.post_json
            try:
                body = await self._guard(engine, call("/v1/chat/completions", request_body))
            except EngineRejected as exc:
                if not await self._reloaded(engine, model, exc):
                    raise
                body = await self._guard(engine, call("/v1/chat/completions", request_body))
        result = _decode_completion(body)
        result.model = model
        if result.usage is not None:
            self.metrics.record_usage(model, result.usage.prompt_tokens, result.usage.completion_tokens)
        return result

    async def stream(self, req: ChatCompletionRequest, workspace: str | None = None) -> AsyncIterator[bytes]:
        """Open the engine's stream (errors before the first chunk raise) and return the relay."""
        req = await self._resolved(req, workspace)
        plan = self.structured.plan(req)
        engine = await self.route(req.model)
        media = await self.media.prepare(req, workspace)
        upstream = msgspec.structs.replace(media.request, stream_options=StreamOptions(include_usage=True))
        body = _encode(upstream) if plan is None else self.structured.upstream_body(upstream, plan)
        watch = None if plan is None else self.structured.watch(plan)
        engine.inflight += 1
        try:
            stream_cm = engine.client.stream_lines("/v1/chat/completions", body)
            try:
                lines = await self._guard(engine, stream_cm.__aenter__())
            except EngineRejected as exc:
                if not await self._reloaded(engine, req.model, exc):
                    raise
                stream_cm = engine.client.stream_lines("/v1/chat/completions", body)
                lines = await self._guard(engine, stream_cm.__aenter__())
        except BaseException:
            engine.inflight -= 1
            media.release()
            raise
        wants_usage = req.stream_options is not None and req.stream_options.include_usage
        return self._relay(engine, stream_cm, lines, req.model, wants_usage, media, watch)

    async def _relay(
        self,
        engine: Engine,
        stream_cm: AbstractAsyncContextManager[Any],
        lines: AsyncIterator[str],
        model: str,
        wants_usage: bool,
        media: PreparedMedia,
        watch: StreamWatch | None = None,
    ) -> AsyncIterator[bytes]:
        try:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                out = self._relay_event(data, model, wants_usage, watch)
                if out is not None:
                    yield out
        except EngineFault as exc:
            if isinstance(exc, EngineUnavailable):
                self.pool.mark_down(engine, exc.message)
            log.warning("stream from %s broke: %s", engine.url, exc.message)
            yield sse(_encode(ErrorResponse(detail_for(exc)[1])))
        else:
            invalid = watch.error() if watch is not None else None
            if invalid is not None:  # a constrained answer that breaks its constraint: say so before [DONE]
                yield sse(_encode(invalid))
        finally:
            engine.inflight -= 1
            media.release()
            await stream_cm.__aexit__(None, None, None)
        yield DONE

    def _relay_event(
        self, data: str, model: str, wants_usage: bool, watch: StreamWatch | None = None
    ) -> bytes | None:
        try:
            chunk = _decode_chunk(data)
        except msgspec.ValidationError:
            return sse(data.encode())  # an error event from the engine: pass it on as it is
        chunk.model = model
        if watch is not None:
            watch.see(chunk)
        if chunk.usage is not None and not chunk.choices:
            self.metrics.record_usage(model, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            if not wants_usage:
                return None
        return sse(_encode(chunk))

    async def _guard(self, engine: Engine, call: Any) -> Any:
        """Await an engine call; a transport failure marks the engine down before the error propagates."""
        try:
            return await call
        except EngineUnavailable as exc:
            self.pool.mark_down(engine, exc.message)
            raise
