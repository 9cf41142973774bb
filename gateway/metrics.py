"""Prometheus metrics: requests by route and status, latency, tokens in and out, engine state.

Each app gets its own registry (no global state, so tests and several apps in one process stay apart).
``MetricsMiddleware`` is plain ASGI: it reads the status from the response start message and measures until
the last body chunk, so streamed responses are timed to their end.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The gateway's metric families, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vlmgw_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "vlmgw_request_duration_seconds", "HTTP request latency until the last byte, by route.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "vlmgw_tokens", "Tokens by model and direction (prompt = in, completion = out).",
            ["model", "direction"], registry=self.registry,
        )  # fmt: skip
        self.engine_up = Gauge(
            "vlmgw_engine_up", "1 when the engine answers its health check, else 0.",
            ["engine"], registry=self.registry,
        )  # fmt: skip
        self.engine_restarts = Gauge(
            "vlmgw_engine_restarts", "How often the supervisor restarted a spawned engine.",
            ["engine"], registry=self.registry,
        )  # fmt: skip

        self.structured_compile = Histogram(
            "vlmgw_structured_compile_seconds", "Time to compile a structured-output constraint, by kind.",
            ["kind"], buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0), registry=self.registry,
        )  # fmt: skip
        self.structured_cache = Counter(
            "vlmgw_structured_cache", "Constraint cache look-ups by kind and result (hit, miss).",
            ["kind", "result"], registry=self.registry,
        )  # fmt: skip
        self.structured_retries = Counter(
            "vlmgw_structured_retries", "Choices asked for again because they broke their constraint.",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.structured_invalid = Counter(
            "vlmgw_structured_invalid", "Answers that broke their constraint for good (error returned).",
            ["kind"], registry=self.registry,
        )  # fmt: skip

    def record_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting and timing every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._observe(scope, status["code"], time.perf_counter() - started)

    def _observe(self, scope: Any, status: int, elapsed: float) -> None:
        route = scope.get("path_template") or "unmatched"
        method = scope.get("method", "GET")
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.latency.labels(route, method).observe(elapsed)
