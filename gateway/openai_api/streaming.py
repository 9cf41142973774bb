"""Server-sent events: framing, and a streaming response that keeps its own content type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar.response import Stream

DONE = b"data: [DONE]\n\n"
EVENT_STREAM = "text/event-stream"


def sse(payload: bytes) -> bytes:
    """One SSE event carrying a JSON payload."""
    return b"data: " + payload + b"\n\n"


class EventStream(Stream):
    """A ``text/event-stream`` response relayed from an async iterator, chunk by chunk.

    Litestar 2.25 lets the route's media type (JSON, from the non-streaming return type) override the
    response's own, so this subclass pins it.
    """

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(
            events, media_type=EVENT_STREAM, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = EVENT_STREAM
        return super().to_asgi_response(*args, **kwargs)
