"""Structured chat completions: constrain the engine, check every answer, retry, add confidence.

Non-streaming: the engine's answer is checked choice by choice. A choice cut off by ``max_tokens`` keeps
``finish_reason: "length"`` unchecked (as OpenAI does); any other choice must pass its constraint's check.
Invalid choices are asked for again (``max_retries`` times, with a different seed when one was given);
if some are still invalid the request fails with a 502 ``invalid_structured_output`` error that says why.
An invalid answer is never returned with ``finish_reason: "stop"``.

Streaming: chunks are relayed as they come (no buffering), except that a chunk that finishes a choice (any
``finish_reason`` but ``length``) and everything after it is held back. When the engine's stream ends the
gateway checks every choice that finished; if all pass, the held chunks follow; an invalid one ends the
stream with an error event (OpenAI's error shape, code ``invalid_structured_output``) before ``[DONE]``
instead, so a client never sees ``finish_reason: "stop"`` on an invalid answer. Retries and
confidence are refused with ``stream: true`` because both need the whole answer first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway.errors import ErrorDetail, ErrorResponse, InvalidStructuredOutputError
from gateway.metrics import Metrics
from gateway.openai_api.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    JsonObjectFormat,
    JsonSchemaFormat,
)
from gateway.structured.constraints import ConstraintCache, InvalidOutput
from gateway.structured.planner import Plan, plan_request
from gateway.structured.spans import field_confidence

log = logging.getLogger("vlmgw.structured")

_encode = msgspec.json.Encoder().encode
_GATEWAY_FIELDS = (
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "result_template",
    "variables",
    "template_format",
    "max_retries",
    "confidence",
    "workspace",
)
_RETRY_SEED_STRIDE = 7919

EngineCall = Callable[[bytes], Awaitable[ChatCompletion]]


class StructuredOutputService:
    """Plans, checks and retries structured requests; one per app (it owns the compile cache)."""

    def __init__(self, metrics: Metrics, cache_size: int = 256, *, grammars: bool = True) -> None:
        """``grammars``: whether the engine's backend enforces grammars (else they are refused)."""
        self.metrics = metrics
        self.grammars = grammars
        self.cache = ConstraintCache(cache_size, self._observe_compile)

    def _observe_compile(self, kind: str, seconds: float, hit: bool) -> None:
        self.metrics.structured_cache.labels(kind, "hit" if hit else "miss").inc()
        if not hit:
            self.metrics.structured_compile.labels(kind).observe(seconds)

    def plan(self, req: ChatCompletionRequest) -> Plan | None:
        """None for a plain request; else the compiled plan (bad constraints raise 400s)."""
        return plan_request(req, self.cache, grammars=self.grammars)

    def upstream_body(
        self, req: ChatCompletionRequest, plan: Plan, *, n: int | None = None, seed: int | None = None
    ) -> bytes:
        """The engine's request: the client's, with the constraint as vLLM ``structured_outputs``."""
        body: dict[str, Any] = msgspec.to_builtins(req)
        for name in _GATEWAY_FIELDS:
            body.pop(name, None)
        if plan.constraint is not None:
            if isinstance(req.response_format, JsonSchemaFormat | JsonObjectFormat):
                body.pop("response_format")
            body["structured_outputs"] = msgspec.to_builtins(plan.constraint.engine)
        if plan.confidence:
            body["logprobs"] = True
        if n is not None:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        return _encode(body)

    async def complete(self, req: ChatCompletionRequest, plan: Plan, call: EngineCall) -> ChatCompletion:
        """Call the engine, check each choice, retry invalid ones, then add confidence."""
        result = await call(self.upstream_body(req, plan))
        invalid = self._invalid_choices(result, plan)
        for attempt in range(1, plan.max_retries + 1):
            if not invalid:
                break
            self.metrics.structured_retries.labels(self._kind(plan)).inc(len(invalid))
            seed = None if req.seed is None else req.seed + attempt * _RETRY_SEED_STRIDE
            retry = await call(self.upstream_body(req, plan, n=len(invalid), seed=seed))
            self._merge(result, retry, sorted(invalid))
            invalid = self._invalid_choices(result, plan)
        if invalid:
            self.metrics.structured_invalid.labels(self._kind(plan)).inc(len(invalid))
            index, reason = min(invalid.items())
            tries = plan.max_retries + 1
            raise InvalidStructuredOutputError(
                f"the model's answer (choice {index}) did not satisfy the constraint after {tries} "
                f"attempt{'s' if tries > 1 else ''}: {reason}. Raise `max_retries` or `max_tokens`, or "
                "simplify the constraint."
            )
        if plan.confidence:
            self._add_confidence(result, plan, keep_logprobs=bool(req.logprobs))
        return result

    def _kind(self, plan: Plan) -> str:
        return plan.constraint.kind if plan.constraint is not None else "none"

    def _invalid_choices(self, result: ChatCompletion, plan: Plan) -> dict[int, str]:
        if plan.constraint is None:
            return {}
        invalid: dict[int, str] = {}
        for choice in result.choices:
            if choice.finish_reason == "length":
                continue
            try:
                plan.constraint.check(choice.message.content or "")
            except InvalidOutput as exc:
                invalid[choice.index] = str(exc)
        return invalid

    def _merge(self, result: ChatCompletion, retry: ChatCompletion, indices: list[int]) -> None:
        by_index = {c.index: pos for pos, c in enumerate(result.choices)}
        for index, fresh in zip(indices, retry.choices, strict=False):
            fresh.index = index
            result.choices[by_index[index]] = fresh
        if result.usage is not None and retry.usage is not None:
            result.usage.completion_tokens += retry.usage.completion_tokens
            result.usage.prompt_tokens += retry.usage.prompt_tokens
            result.usage.total_tokens += retry.usage.total_tokens

    def _add_confidence(self, result: ChatCompletion, plan: Plan, keep_logprobs: bool) -> None:
        for choice in result.choices:
            text = choice.message.content or ""
            tokens = choice.logprobs.content if choice.logprobs is not None else None
            spans = plan.constraint.spans(text) if plan.constraint is not None else {"$": (0, len(text))}
            choice.confidence = field_confidence(text, tokens or [], spans)
            if not keep_logprobs:
                choice.logprobs = None

    def watch(self, plan: Plan) -> StreamWatch | None:
        return StreamWatch(plan, self.metrics) if plan.constraint is not None else None


class StreamWatch:
    """Collects a stream's text per choice and checks the finished ones at the end."""

    def __init__(self, plan: Plan, metrics: Metrics) -> None:
        self.plan = plan
        self.metrics = metrics
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.holding = False

    def see(self, chunk: ChatCompletionChunk) -> bool:
        """Record the chunk; True when it must be held back until the answer is checked: it finishes a
        choice that will be checked, or it follows one that does (the usage chunk)."""
        hold = self.holding
        for choice in chunk.choices:
            if choice.delta.content:
                self.texts.setdefault(choice.index, []).append(choice.delta.content)
            if choice.finish_reason:
                self.finish[choice.index] = choice.finish_reason
                hold = hold or choice.finish_reason != "length"
        self.holding = hold
        return hold

    def error(self) -> ErrorResponse | None:
        """The error event to send before ``[DONE]`` when a finished choice is invalid, else None."""
        constraint = self.plan.constraint
        if constraint is None:
            return None
        for index, reason in sorted(self.finish.items()):
            if reason == "length":
                continue
            try:
                constraint.check("".join(self.texts.get(index, [])))
            except InvalidOutput as exc:
                self.metrics.structured_invalid.labels(constraint.kind).inc()
                err = InvalidStructuredOutputError(
                    f"the streamed answer (choice {index}) did not satisfy the constraint: {exc}"
                )
                return ErrorResponse(ErrorDetail(err.message, err.error_type, None, err.code))
        return None
