"""The predictions service: check a request, run it now or store it as a batch job, and record outcomes.

Everything a request can get wrong is checked before anything is stored or run: the domain, the config
(schema, options), the callback URL (the SSRF guard), the model, the dataset of the machine-learning loop,
and every image or video (loaded and checked). A synchronous prediction then runs at once and answers 201
with its result; a failure is recorded (and its callback sent) and answered with the error's status. A
batch prediction is stored with its plan and its checked media and answered 201 ``pending`` at once; the
``BatchRunner`` runs it later (``run_claimed``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from adapters.errors import EngineUnavailable
from gateway.db.models import Prediction
from gateway.errors import BadRequestError, EngineUnavailableError, NotFoundError, detail_for
from gateway.predictions import schemas as wire
from gateway.predictions.callbacks import CallbackSender
from gateway.predictions.claims import ClaimStore
from gateway.predictions.domains import DomainRegistry
from gateway.predictions.executor import Outcome, PredictionExecutor
from gateway.predictions.intake import MediaBlobs, MediaIntake, MediaItem
from gateway.predictions.plan import Plan, build_plan
from gateway.predictions.runner import held
from gateway.predictions.training_loop import TrainingLoop, target_for
from gateway.predictions.webhook_secrets import WebhookSecrets

SCHEMA_VERSION = "1"
_encode = msgspec.json.Encoder().encode


class _Unusable(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Signals:
    """Wake-ups: a batch prediction was stored; a prediction finished (its callback may be due)."""

    batch: asyncio.Event
    finished: asyncio.Event


@dataclass(kw_only=True, eq=False)
class PredictionService:
    domains: DomainRegistry
    intake: MediaIntake
    executor: PredictionExecutor
    claims: ClaimStore
    blobs: MediaBlobs
    callbacks: CallbackSender
    secrets: WebhookSecrets
    training: TrainingLoop
    signals: Signals
    video_frames: int = 8
    max_attempts: int = 5
    retry_delay_s: float = 10.0

    # ------------------------------------------------------------ requests

    async def generate_image(self, ws: uuid.UUID, body: wire.ImageGenerateRequest) -> wire.PredictionResponse:
        plan = await self._plan(ws, body, "image", pages=len(body.images))
        return await self._submit(ws, body, plan, await self.intake.images(body.images))

    async def generate_video(self, ws: uuid.UUID, body: wire.VideoGenerateRequest) -> wire.PredictionResponse:
        if body.file_id is not None or body.url is None:
            raise BadRequestError(
                "send the video in `url` (an http(s) URL or a data: URI); uploaded files (`file_id`) are "
                "not supported", param="file_id" if body.file_id is not None else "url",
            )  # fmt: skip
        plan = await self._plan(ws, body, "video", pages=self.video_frames)
        if plan.training is not None:
            raise BadRequestError(
                "the machine-learning loop stores image predictions (a dataset sample holds images); send "
                "video predictions without `session_id`/`dataset` or with `allow_training: false`",
                param=plan.training.param,
            )
        return await self._submit(ws, body, plan, [await self.intake.video(body.url)])

    async def _plan(
        self,
        ws: uuid.UUID,
        body: wire.ImageGenerateRequest | wire.VideoGenerateRequest,
        kind: str,
        pages: int,
    ) -> Plan:
        domain = self.domains.get(body.domain, "image" if kind == "image" else "video")
        plan = build_plan(domain, body.config, pages)
        plan.training = target_for(body.metadata)
        if plan.training is not None and kind == "image":
            await self.training.check(ws, plan.training, plan.schema)
        if body.callback_url is not None:
            await self.callbacks.check_url(body.callback_url)
        await self.executor.check_model(body.model, str(ws))
        return plan

    async def _submit(
        self, ws: uuid.UUID, body: wire.ImageGenerateRequest | wire.VideoGenerateRequest, plan: Plan,
        media: list[MediaItem],
    ) -> wire.PredictionResponse:  # fmt: skip
        plan.mimes = [m.mime for m in media]
        fields: dict[str, Any] = {
            "workspace_id": ws, "kind": plan.kind, "domain": plan.domain, "model": body.model,
            "batch": body.batch, "plan": msgspec.to_builtins(plan), "media_count": len(media),
            "request_id": body.id or "", "request_created_at": body.created_at,
            "environment": body.metadata.environment, "session_id": body.metadata.session_id,
            "callback_url": body.callback_url,
        }  # fmt: skip
        prediction_id = uuid.uuid4()
        if body.batch:
            await self.blobs.write(prediction_id, media)
            await Prediction.create(id=prediction_id, status="pending", **fields)
            self.signals.batch.set()
        else:
            await Prediction.create(**fields, **self.claims.hold_new(prediction_id))
            async with held(self.claims, prediction_id, cancel_on_loss=False):
                await self._answer(prediction_id, ws, body.model, plan, media, raise_errors=True)
        return render(await Prediction.get(id=prediction_id))

    # ------------------------------------------------------------ running

    async def run_claimed(self, prediction_id: uuid.UUID) -> None:
        """Run a batch prediction this gateway has claimed (the runner's job function)."""
        row = await Prediction.get(id=prediction_id)
        try:
            plan, media = await self._stored_job(row)
        except _Unusable as exc:
            await self._fail(row.id, exc.message, exc.code)
            return
        await self._answer(row.id, row.workspace_id, row.model, plan, media, raise_errors=False)

    async def _stored_job(self, row: Prediction) -> tuple[Plan, list[MediaItem]]:
        if row.attempts > self.max_attempts:
            raise _Unusable(f"gave up after {row.attempts - 1} attempts", "too_many_attempts")
        try:
            plan = msgspec.convert(row.plan, Plan)
        except msgspec.ValidationError as exc:
            raise _Unusable(f"the stored plan is unusable: {exc}", "invalid_plan") from None
        try:
            return plan, await self.blobs.read(row.id, plan.mimes)
        except FileNotFoundError:
            raise _Unusable("the prediction's stored media are missing", "media_missing") from None

    async def _answer(
        self, prediction_id: uuid.UUID, ws: uuid.UUID, model: str, plan: Plan, media: list[MediaItem],
        *, raise_errors: bool,
    ) -> None:  # fmt: skip
        try:
            outcome = await self.executor.run(plan, media, model, str(ws))
        except (EngineUnavailable, EngineUnavailableError) as exc:
            if not raise_errors:  # a batch job waits for the engine instead of failing
                run_after = self.claims.clock() + dt.timedelta(seconds=self.retry_delay_s)
                await self.claims.release(prediction_id, run_after=run_after)
                return
            await self._fail(prediction_id, *_error_of(exc))
            raise
        except Exception as exc:
            await self._fail(prediction_id, *_error_of(exc))
            if raise_errors:
                raise
            return
        await self._complete(prediction_id, ws, plan, media, outcome)

    async def _complete(
        self, prediction_id: uuid.UUID, ws: uuid.UUID, plan: Plan, media: list[MediaItem], outcome: Outcome
    ) -> None:
        training = None
        if plan.training is not None:
            stored = await self.training.store(ws, plan, media, outcome.response, prediction_id)
            training = msgspec.to_builtins(stored)
        usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens}
        await self._finish(
            prediction_id, status="completed", response=outcome.response, confidence=outcome.confidence,
            usage=usage, training=training,
        )  # fmt: skip

    async def _fail(self, prediction_id: uuid.UUID, message: str, code: str | None) -> None:
        await self._finish(prediction_id, status="failed", error={"message": message, "code": code})

    async def _finish(self, prediction_id: uuid.UUID, **fields: Any) -> None:
        """Record the outcome once (if this gateway still holds the prediction), queue its callback, drop
        its stored media."""
        row = await Prediction.get(id=prediction_id)
        if row.callback_url is not None:
            fields |= {"callback_status": "pending", "callback_next_at": self.claims.clock()}
        if await self.claims.finish(prediction_id, **fields):
            if row.callback_url is not None:
                self.signals.finished.set()
            if row.batch:
                await self.blobs.delete(prediction_id)

    # ------------------------------------------------------------ reading

    async def get(self, ws: uuid.UUID, prediction_id: str) -> wire.PredictionResponse:
        try:
            pid = uuid.UUID(prediction_id)
        except ValueError:
            raise NotFoundError(f"Prediction {prediction_id} not found.", param="id") from None
        row = await Prediction.filter(id=pid, workspace_id=ws).first()
        if row is None:
            raise NotFoundError(f"Prediction {prediction_id} not found.", param="id")
        return render(row)

    async def listing(self, ws: uuid.UUID, skip: int, limit: int) -> list[wire.PredictionResponse]:
        """The workspace's predictions, newest first (vlm.run's ``skip``/``limit`` paging)."""
        rows = await Prediction.filter(workspace_id=ws).order_by("-created", "-id").offset(skip).limit(limit)
        return [render(row) for row in rows]

    def domain_list(self) -> list[wire.DomainInfo]:
        return [wire.DomainInfo(d.name, d.description, d.media) for d in self.domains.all()]

    def schema(self, body: wire.SchemaRequest) -> wire.SchemaResponse:
        """The answer schema of a domain under a config (grounding included), as vlm.run's ``/v1/schema``."""
        domain = self.domains.get(body.domain)
        plan = build_plan(domain, body.config, 1 if domain.media == "image" else self.video_frames)
        digest = msgspec.json.encode(plan.schema, order="sorted")
        return wire.SchemaResponse(
            domain=domain.name, description=domain.description, schema_version=SCHEMA_VERSION,
            schema_hash=hashlib.sha256(digest).hexdigest()[:16], gql_stmt="", json_schema=plan.schema,
        )  # fmt: skip

    async def webhook_secret(self, ws: uuid.UUID, *, rotate: bool = False) -> wire.WebhookSecretOut:
        row = await (self.secrets.rotate(ws) if rotate else self.secrets.get(ws))
        return wire.WebhookSecretOut(secret=row.secret, created_at=row.created)


def _error_of(exc: BaseException) -> tuple[str, str | None]:
    _status, detail, _headers = detail_for(exc)
    return detail.message, detail.code


def render(row: Prediction, *, with_callback: bool = True) -> wire.PredictionResponse:
    """A stored prediction in vlm.run's response shape."""
    usage = row.usage or {}
    out = wire.PredictionResponse(
        id=str(row.id), created_at=row.created, completed_at=row.completed, response=row.response,
        status=row.status,  # type: ignore[arg-type]
        usage=wire.CreditUsage(
            elements_processed=row.media_count, element_type=row.kind,  # type: ignore[arg-type]
            credits_used=0, prompt_tokens=usage.get("prompt_tokens", msgspec.UNSET),
            completion_tokens=usage.get("completion_tokens", msgspec.UNSET),
        ),
        domain=row.domain,
    )  # fmt: skip
    if row.confidence is not None:
        out.confidence = row.confidence
    if row.error is not None:
        out.error = wire.PredictionError(row.error.get("message", ""), row.error.get("code"))
    if row.training is not None:
        out.training = msgspec.convert(row.training, wire.TrainingSample)
    if with_callback and row.callback_url is not None and row.callback_status is not None:
        out.callback = wire.CallbackState(
            row.callback_url, row.callback_status,  # type: ignore[arg-type]
            row.callback_attempts, row.callback_error,
        )  # fmt: skip
    return out


def callback_body(row: Prediction) -> bytes:
    """What a callback POSTs: the prediction without its own delivery state."""
    return _encode(render(row, with_callback=False))
