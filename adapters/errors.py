"""Errors of the engine layer. ``adapters`` does not import ``gateway``; the gateway maps these to HTTP
statuses and OpenAI's error body in ``gateway.errors`` (the one mapping place)."""

from __future__ import annotations


class EngineFault(Exception):
    """Base of the engine layer's errors."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class EngineUnavailable(EngineFault):
    """No engine can take the request now (starting, restarting, unreachable): HTTP 503."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineTimeout(EngineFault):
    """The engine did not answer in time: HTTP 504."""


class EngineFailed(EngineFault):
    """The engine answered with a server error: HTTP 502."""


class EngineRejected(EngineFault):
    """The engine refused the request as the client's mistake (its 4xx): passed on with its status."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.status = status
        self.code = code


class UnknownModel(EngineFault):
    """No engine serves a model or adapter of this name: HTTP 404 model_not_found."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
        self.model = model
