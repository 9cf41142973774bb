"""HTTP client for one vLLM OpenAI-compatible server.

The gateway never imports vLLM; it speaks to the server over HTTP. Transport failures and the engine's
error answers become gateway errors here, in one place:

- connection refused / reset, or the engine dying mid-request: ``EngineUnavailable`` (503),
- a read time-out: ``EngineTimeout`` (504),
- the engine's 4xx answers: ``EngineRejected`` with the engine's status and message,
- the engine's 5xx answers: ``EngineFailed`` (502).

"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec

from adapters.errors import EngineFailed, EngineFault, EngineRejected, EngineTimeout, EngineUnavailable
from adapters.http_session import LazySession

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
    """Async client for one engine base URL (``http://host:port``, without ``/v1``).

    Uses aiohttp: on this proxy's hot path it costs about a tenth of the CPU per request that httpx does
    (measured in benchmarks/README.md). The session is created lazily inside the running event loop.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 600.0,
        max_connections: int = 512,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        # No total limit: a stream may run long; `sock_read` bounds the wait for the next bytes.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=request_timeout_s
        )
        self._max_connections = max_connections
        self._session = LazySession(self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections)
        return aiohttp.ClientSession(
            self.base_url, connector=connector, timeout=self._timeout, auto_decompress=False
        )

    def _http(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def aclose(self) -> None:
        await self._session.close()

    async def post_json(self, path: str, payload: bytes) -> bytes:
        """POST a JSON body; return the body of a 2xx answer or raise the mapped error."""
        return await self._body(lambda: self._http().post(path, data=payload, headers=JSON_HEADERS))

    async def get(self, path: str, timeout_s: float | None = None) -> bytes:
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        return await self._body(lambda: self._http().get(path, timeout=timeout))

    async def _body(self, request: Callable[[], Any]) -> bytes:
        """The body of a 2xx answer to ``request()`` (an aiohttp request), else the mapped error."""
        try:
            async with request() as resp:
                body: bytes = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        if resp.status >= 400:
            raise engine_error_from_response(resp.status, body, self.base_url)
        return body

    @asynccontextmanager
    async def stream_events(self, path: str, payload: bytes) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a streaming POST; errors before the first byte raise, then server-sent events are yielded
        as bytes: each item is one or more whole events (``data: ...\\n\\n``), as many as had arrived, so
        a relay can pass them on without splitting lines or decoding text. Line ends become ``\\n``."""
        try:
            resp = await self._http().post(path, data=payload, headers=JSON_HEADERS)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        try:
            if resp.status >= 400:
                body = await resp.read()
                raise engine_error_from_response(resp.status, body, self.base_url)
            yield self._events(resp)
        finally:
            resp.release()

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        pending = b""
        try:
            async for data in resp.content.iter_any():
                pending += data
                if b"\r" in pending:
                    pending = pending.replace(b"\r\n", b"\n")
                cut = pending.rfind(b"\n\n")
                if cut >= 0:
                    yield pending[: cut + 2]
                    pending = pending[cut + 2 :]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc) from exc
        if pending.strip():
            yield pending + b"\n\n"

    async def is_healthy(self, timeout_s: float = 2.0) -> bool:
        try:
            async with self._http().get("/health", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def list_models(self, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        body = await self.get("/v1/models", timeout_s=timeout_s)
        data = msgspec.json.decode(body).get("data", [])
        return [m for m in data if isinstance(m, dict)]

    async def load_lora(self, name: str, path: str) -> None:
        payload = msgspec.json.encode({"lora_name": name, "lora_path": path})
        await self.post_json("/v1/load_lora_adapter", payload)

    async def unload_lora(self, name: str) -> None:
        await self.post_json("/v1/unload_lora_adapter", msgspec.json.encode({"lora_name": name}))

    def _transport_error(self, exc: BaseException) -> EngineFault:
        name = type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return EngineUnavailable(f"engine at {self.base_url} is unreachable ({name})")
        if isinstance(exc, TimeoutError):
            return EngineTimeout(f"engine at {self.base_url} did not answer in time ({name})")
        return EngineUnavailable(f"engine at {self.base_url} failed mid-request ({name}: {exc})")
