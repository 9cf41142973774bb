"""Prometheus metrics: requests by route and status, latency, tokens in and out, engine state.

Each app gets its own registry (no global state, so tests and several apps in one process stay apart).
``MetricsMiddleware`` is plain ASGI: it reads the status from the response start message and measures until
the last body chunk, so streamed responses are timed to their end. The per-request metrics keep their
label children by label values (``labels()`` builds and locks on every call: a few microseconds a request
on the hottest path); the children are the same objects ``labels()`` returns, so what is exported is the
same.
"""

from __future__ import annotations

import time

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

        # label values -> children: (requests, latency) per (route, method, status); (prompt, completion)
        # tokens per model. Bounded as the labels are: route templates, statuses, served model names.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._token_children: dict[str, tuple[Counter, Counter]] = {}

    def record_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        children = self._token_children.get(model)
        if children is None:
            children = (self.tokens.labels(model, "prompt"), self.tokens.labels(model, "completion"))
            self._token_children[model] = children
        children[0].inc(prompt_tokens)
        children[1].inc(completion_tokens)

    def record_request(self, route: str, method: str, status: int, elapsed: float) -> None:
        """One HTTP request answered: counted by route, method and status, its latency observed."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

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
            route = scope.get("path_template") or "unmatched"
            method: str = scope.get("method", "GET")  # type: ignore[assignment]  # http scopes have one
            self.metrics.record_request(route, method, status["code"], time.perf_counter() - started)
