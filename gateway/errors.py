"""One error hierarchy, and the one place that maps errors to HTTP statuses and OpenAI's error body.

Services raise subclasses of ``GatewayError``; ``exception_to_response`` turns any exception, ours or the
framework's, into ``{"error": {"message", "type", "param", "code"}}`` with the right status. A client's
mistake is always a 4xx; anything unexpected is a 500 whose body carries no stack trace.
"""

from __future__ import annotations

import errno
import logging
from typing import Any, ClassVar, get_type_hints

import msgspec
import msgspec.inspect
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from adapters.errors import (
    EngineFailed,
    EngineFault,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    UnknownModel,
)

log = logging.getLogger("vlmgw.errors")


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    # Platform API (/vlm/v2) validation errors: every bad field with its problem; absent elsewhere.
    fields: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose.

    A subclass says its HTTP status, OpenAI error ``type`` and default ``code`` in its header:
    ``class NotFoundError(ClientError, status=404, code="not_found")``; what it leaves out it inherits.
    """

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init_subclass__(
        cls, *, status: int | None = None, type: str | None = None, code: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        cls.status_code = status or cls.status_code
        cls.error_type = type or cls.error_type
        cls.default_code = code or cls.default_code

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def detail(self) -> ErrorDetail:
        return ErrorDetail(message=self.message, type=self.error_type, param=self.param, code=self.code)


class ClientError(GatewayError, status=400, type="invalid_request_error"):
    """Base of the client's mistakes (4xx): each names what was wrong."""


class BadRequestError(ClientError, status=400, code="invalid_request"):
    """400: the request is malformed or a value is out of its range."""


class FieldsInvalidError(BadRequestError):
    """One or more request fields are invalid; ``fields`` maps each field (JSON path) to its problem."""

    def __init__(self, fields: dict[str, str], *, message: str | None = None) -> None:
        first = next(iter(fields))
        text = message or "Invalid request: " + "; ".join(f"`{k}`: {v}" for k, v in fields.items())
        super().__init__(text, param=first, code="invalid_fields")
        self.fields = dict(fields)

    def detail(self) -> ErrorDetail:
        return ErrorDetail(self.message, self.error_type, self.param, self.code, fields=self.fields)


class AuthenticationError(ClientError, status=401, code="invalid_api_key"):
    """401: no key, or one the gateway does not know."""


class PermissionDeniedError(ClientError, status=403, code="permission_denied"):
    """403: the key may not do this."""


class NotFoundError(ClientError, status=404, code="not_found"):
    """404: no such object, or not in the caller's workspace."""


class ModelNotFoundError(NotFoundError, code="model_not_found"):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class MethodNotAllowedError(ClientError, status=405, code="method_not_allowed"):
    """405: the path exists, the method does not."""


class ConflictError(ClientError, status=409, code="conflict"):
    """409: the change clashes with the object's state or with other objects."""


class PayloadTooLargeError(ClientError, status=413, code="payload_too_large"):
    """413: the body is over its size limit."""


class UnprocessableError(ClientError, status=422, code="unprocessable"):
    """422: well-formed, but the gateway cannot act on it."""


class EngineError(GatewayError, status=502, type="engine_error", code="engine_error"):
    """The engine answered with an error that is not the client's fault."""


class InvalidStructuredOutputError(
    GatewayError, status=502, type="engine_error", code="invalid_structured_output"
):
    """The model's answer broke its structured-output constraint (after any retries)."""


class ServiceUnavailableError(GatewayError, status=503, type="service_unavailable"):
    """503 with ``Retry-After``: something the request needs is briefly unavailable; the same request may
    succeed later (a subclass says after how many seconds by default)."""

    retry_after_s: ClassVar[int] = 5

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        seconds = self.retry_after_s if retry_after is None else retry_after
        super().__init__(message, headers={"Retry-After": str(seconds)})


class EngineUnavailableError(ServiceUnavailableError, code="engine_unavailable"):
    """No engine can take the request now (starting, restarting, unreachable)."""


class DatabaseUnavailableError(ServiceUnavailableError, code="database_unavailable"):
    """The database cannot be reached or is locked for longer than the wait allows: nothing was written."""

    retry_after_s = 2


class InsufficientStorageError(GatewayError, status=507, code="insufficient_storage"):
    """The disk (or the file-size limit) is full: the file was not stored, and no part of it was kept."""


class EngineTimeoutError(GatewayError, status=504, type="timeout", code="engine_timeout"):
    """The engine did not answer in time."""


_REJECTED_BY_STATUS: dict[int, type[GatewayError]] = {
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: BadRequestError,  # vLLM answers 422 for some bad inputs; OpenAI clients expect 400 for those
}

_CLIENT_ERRORS: tuple[type[ClientError], ...] = (
    BadRequestError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    MethodNotAllowedError,
    ConflictError,
    PayloadTooLargeError,
    UnprocessableError,
)
# The error type and code of a framework HTTPException, by status: those of our classes, and two more.
_STATUS_TYPES: dict[int, tuple[str, str | None]] = {
    cls.status_code: (cls.error_type, cls.default_code) for cls in _CLIENT_ERRORS
} | {
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def describe_decode_error(exc: Exception, root: str = "") -> tuple[str, str | None]:
    """Message and JSON path (``param``) of a msgspec decode or validation error.

    msgspec says e.g. "Expected `int`, got `str` - at `$.max_tokens`"; the path after ``$.`` names the field.
    ``root`` is a prefix to drop (Litestar decodes the body as the field ``data`` of its signature model).
    """
    text = str(exc)
    path = ""
    if " - at `$" in text:
        text, _, path = text.rpartition(" - at `$")
        path = path.rstrip("`").lstrip(".")
    param = _field_path(path.removeprefix(root).lstrip(".") if root else path, text)
    where = f" at `{param}`" if param and f"`{param}`" not in text else ""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return f"The request body is not valid JSON: {text}", None
    return f"Invalid request: {text}{where}", param


def _field_path(path: str, message: str) -> str | None:
    """The field a path names; at the root, the field a missing/unknown-field message names."""
    if path:
        return path
    for marker in ("unknown field `", "required field `"):
        if marker in message:
            return message.split(marker, 1)[1].split("`", 1)[0]
    return None


def from_engine_fault(exc: EngineFault) -> GatewayError:
    """The gateway error for an engine-layer error."""
    if isinstance(exc, UnknownModel):
        return ModelNotFoundError(exc.model)
    if isinstance(exc, EngineUnavailable):
        return EngineUnavailableError(exc.message, retry_after=exc.retry_after)
    if isinstance(exc, EngineTimeout):
        return EngineTimeoutError(exc.message)
    if isinstance(exc, EngineRejected):
        cls = _REJECTED_BY_STATUS.get(exc.status, BadRequestError)
        return cls(exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, EngineFailed):
        return EngineError(exc.message)
    return EngineError(exc.message)


def detail_for(exc: BaseException) -> tuple[int, ErrorDetail, dict[str, str]]:
    """Status, error body and extra headers for any exception."""
    if isinstance(exc, EngineFault):
        exc = from_engine_fault(exc)
    if isinstance(exc, GatewayError):
        return exc.status_code, exc.detail(), exc.headers
    if isinstance(exc, IntegrityError):  # a concurrent change broke a constraint the service had checked
        log.info("integrity error: %s", exc)
        message = "The change conflicts with other data (it was modified concurrently); retry."
        return 409, ErrorDetail(message, "invalid_request_error", None, "conflict"), {}
    infrastructure = infrastructure_error(exc)
    if infrastructure is not None:
        log.warning("%s: %s", infrastructure.code, exc)
        return infrastructure.status_code, infrastructure.detail(), infrastructure.headers
    if isinstance(exc, msgspec.DecodeError):  # ValidationError is a DecodeError too
        message, param = describe_decode_error(exc)
        return 400, ErrorDetail(message, "invalid_request_error", param, "invalid_request"), {}
    decode_error = (
        _decode_error_behind(exc) if isinstance(exc, HTTPException) and exc.status_code == 400 else None
    )
    if decode_error is not None:
        message, param = describe_decode_error(decode_error, root="data")
        return 400, ErrorDetail(message, "invalid_request_error", param, "invalid_request"), {}
    if isinstance(exc, ValidationException):
        message, param = _litestar_validation_message(exc)
        return 400, ErrorDetail(message, "invalid_request_error", param, "invalid_request"), {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            return status, ErrorDetail(str(exc.detail), "server_error", None, None), {}
        err_type, code = _STATUS_TYPES.get(status, ("invalid_request_error", "invalid_request"))
        return status, ErrorDetail(str(exc.detail), err_type, None, code), dict(exc.headers or {})
    log.exception("unhandled error", exc_info=exc)
    return 500, ErrorDetail("The server had an internal error; it has been logged.", "server_error"), {}


# SQLite's words for a database that is there but cannot be used this moment (held by another writer for
# longer than the busy timeout, its file or folder unreadable); PostgreSQL's are exception classes.
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open database file",
                       "disk i/o error", "readonly database")  # fmt: skip
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def infrastructure_error(exc: BaseException) -> GatewayError | None:
    """A full disk (507) or an unavailable database (503 with Retry-After), else None.

    Both are faults of the machine, not of the request, and both leave nothing half-done: the store writes
    atomically, and a database statement that could not run changed nothing.
    """
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return InsufficientStorageError(
            f"The gateway's disk is full ({exc.strerror}); nothing was stored. Free space and retry."
        )
    if isinstance(exc, OperationalError) and not isinstance(exc, IntegrityError):
        text = str(exc).lower()
        if "database or disk is full" in text:
            return InsufficientStorageError(
                "The database's disk is full; nothing was written. Free space and retry."
            )
        if any(words in text for words in _SQLITE_UNAVAILABLE):
            return DatabaseUnavailableError(f"The database is unavailable for the moment ({exc}); retry.")
    if isinstance(exc, DBConnectionError | ConnectionError) or _is_postgres_connection_error(exc):
        return DatabaseUnavailableError(
            f"The database cannot be reached ({type(exc).__name__}: {exc}); nothing was written; retry."
        )
    return None


def _is_postgres_connection_error(exc: BaseException) -> bool:
    """asyncpg's errors for a lost or refused connection (raised as they are, not wrapped by Tortoise)."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency; SQLite-only installs would lack it
        return False
    lost = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
            asyncpg.AdminShutdownError)  # fmt: skip
    closed = isinstance(exc, asyncpg.InterfaceError) and ("closed" in str(exc) or "closing" in str(exc))
    return isinstance(exc, lost) or closed


def _decode_error_behind(exc: BaseException) -> msgspec.DecodeError | None:
    """The msgspec error that Litestar wrapped (it chains them through ``__cause__`` / ``__context__``)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, msgspec.DecodeError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _litestar_validation_message(exc: ValidationException) -> tuple[str, str | None]:
    """Litestar reports msgspec errors as `extra=[{"key": "data.<path>", "message": ...}]`: name the field."""
    extra = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    if not extra:
        return f"Invalid request: {exc.detail}", None
    parts, params = [], []
    for item in extra:
        message = str(item.get("message", "invalid value"))
        param = _field_path(str(item.get("key") or "").removeprefix("data").lstrip("."), message)
        params.append(param)
        parts.append(f"{message} at `{param}`" if param and f"`{param}`" not in message else message)
    return "Invalid request: " + "; ".join(parts), params[0]


PLATFORM_PREFIX = "/vlm/"


def body_field_errors(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Every bad field of a JSON body that failed to decode (msgspec stops at the first one).

    Checks each top-level field of the handler's ``data`` Struct on its own: unknown fields, missing
    required fields, and values that do not convert to the field's type and constraints.
    """
    try:
        raw = request._connection_state.body
        data_field = request.route_handler.parsed_data_field
        if not isinstance(raw, bytes) or data_field is None:
            return {}
        struct = data_field.annotation
        obj = msgspec.json.decode(raw)
        if (
            not isinstance(obj, dict)
            or not isinstance(struct, type)
            or not issubclass(struct, msgspec.Struct)
        ):
            return {}
        hints = get_type_hints(struct, include_extras=True)
        info = msgspec.inspect.type_info(struct)
    except Exception:  # anything unexpected: fall back to the first error only
        return {}
    errors: dict[str, str] = {}
    fields = {f.encode_name: f for f in info.fields}  # type: ignore[attr-defined]
    for key in obj:
        if key not in fields:
            errors[key] = "is not a field of this request"
    for name, field in fields.items():
        if name not in obj:
            if field.required:
                errors[name] = "is required"
            continue
        try:
            msgspec.convert(obj[name], hints[field.name], strict=True)
        except msgspec.ValidationError as exc:
            message, path = str(exc), ""
            if " - at `$" in message:
                message, _, path = message.rpartition(" - at `$")
                path = path.rstrip("`")
            errors[name + path] = message
    return errors


def exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    """Litestar exception handler: every error leaves the gateway in OpenAI's shape.

    On the platform API a 400 always carries ``fields`` (field -> problem), also for body decode errors.
    """
    status, detail, headers = detail_for(exc)
    on_platform = request.scope.get("path", "").startswith(PLATFORM_PREFIX)
    if on_platform and status == 400 and detail.fields is msgspec.UNSET:
        fields = body_field_errors(request) if detail.param is not None else {}
        detail.fields = fields or {detail.param or "body": detail.message}
        if len(fields) > 1:
            detail.message = "Invalid request: " + "; ".join(f"`{k}`: {v}" for k, v in fields.items())
    return Response(ErrorResponse(detail), status_code=status, headers=headers)
