"""HTTP client for one vLLM OpenAI-compatible server.

The gateway never imports vLLM; it speaks to the server over HTTP. Transport failures and the engine's
error answers become gateway errors here, in one place:

- connection refused / reset, or the engine dying mid-request: ``EngineUnavailable`` (503),
- a read time-out: ``EngineTimeout`` (504),
- the engine's 4xx answers: ``EngineRejected`` with the engine's status and message,
- the engine's 5xx answers: ``EngineFailed`` (502).

The transport is injectable (``httpx.MockTransport`` in unit tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from adapters.errors import EngineFailed, EngineFault, EngineRejected, EngineTimeout, EngineUnavailable

JSON_HEADERS = {"Content-Type": "application/json"}


class _EngineErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: Any = None


class _EngineErrorEnvelope(msgspec.Struct):
    error: _EngineErrorBody | None = None
    # Older vLLM versions sent the fields at the top level.
    message: str | None = None
    object: str | None = None


def engine_error_from_response(status: int, body: bytes, url: str) -> EngineFault:
    """Map an engine's error answer to an engine-layer error, keeping its message."""
    message, param = _engine_message(body)
    if 400 <= status < 500:
        code = "context_length_exceeded" if "maximum context length" in message else None
        return EngineRejected(status, f"engine rejected the request: {message}", param=param, code=code)
    if status == 503:
        return EngineUnavailable(f"engine at {url} is not ready: {message}")
    return EngineFailed(f"engine at {url} failed (HTTP {status}): {message}")


def _engine_message(body: bytes) -> tuple[str, str | None]:
    try:
        env = msgspec.json.decode(body, type=_EngineErrorEnvelope)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace")[:500] or "no details", None
    if env.error is not None:
        return env.error.message, env.error.param
    return env.message or "no details", None


class EngineClient:
    """Async client for one engine base URL (``http://host:port``, without ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 512,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        timeout = httpx.Timeout(request_timeout_s, connect=connect_timeout_s)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, limits=limits, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post_json(self, path: str, payload: bytes) -> bytes:
        """POST a JSON body; return the body of a 2xx answer or raise the mapped error."""
        try:
            resp = await self._http.post(path, content=payload, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if resp.status_code >= 400:
            raise engine_error_from_response(resp.status_code, resp.content, self.base_url)
        return resp.content

    async def get(self, path: str, timeout_s: float | None = None) -> bytes:
        try:
            resp = await self._http.get(
                path, timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if resp.status_code >= 400:
            raise engine_error_from_response(resp.status_code, resp.content, self.base_url)
        return resp.content

    @asynccontextmanager
    async def stream_lines(self, path: str, payload: bytes) -> AsyncIterator[AsyncIterator[str]]:
        """Open a streaming POST; errors before the first byte raise, then lines are yielded as they come."""
        request = self._http.build_request("POST", path, content=payload, headers=JSON_HEADERS)
        try:
            resp = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            if resp.status_code >= 400:
                body = await resp.aread()
                raise engine_error_from_response(resp.status_code, body, self.base_url)
            yield self._lines(resp)
        finally:
            await resp.aclose()

    async def _lines(self, resp: httpx.Response) -> AsyncIterator[str]:
        try:
            async for line in resp.aiter_lines():
                yield line
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def is_healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            resp = await self._http.get("/health", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def list_models(self, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        body = await self.get("/v1/models", timeout_s=timeout_s)
        data = msgspec.json.decode(body).get("data", [])
        return [m for m in data if isinstance(m, dict)]

    async def load_lora(self, name: str, path: str) -> None:
        payload = msgspec.json.encode({"lora_name": name, "lora_path": path})
        await self.post_json("/v1/load_lora_adapter", payload)

    async def unload_lora(self, name: str) -> None:
        await self.post_json("/v1/unload_lora_adapter", msgspec.json.encode({"lora_name": name}))

    def _transport_error(self, exc: httpx.HTTPError) -> EngineFault:
        name = type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
            return EngineUnavailable(f"engine at {self.base_url} is unreachable ({name})")
        if isinstance(exc, httpx.TimeoutException):
            return EngineTimeout(f"engine at {self.base_url} did not answer in time ({name})")
        return EngineUnavailable(f"engine at {self.base_url} failed mid-request ({name}: {exc})")
