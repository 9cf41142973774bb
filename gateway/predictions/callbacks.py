"""Callbacks: POST the finished prediction to its ``callback_url``, signed, retried, exactly once.

``CallbackSender`` goes out through the same SSRF guard as media fetching (``gateway.media.address``): the
URL must be http(s), and its host must be, or resolve only to, public addresses unless the administrator
allowed it (``VLMGW_MEDIA_FETCH_ALLOW``); the connection goes to exactly the checked address. A blocked URL
is refused when the prediction is requested (400), so no job is accepted whose callback could never go
out. Redirects are not followed (a 3xx is a failed attempt).

``CallbackDispatcher`` delivers what is due: finishing a prediction marks its callback pending in the same
conditional UPDATE that records the outcome (once per prediction), a dispatcher claims it (one gateway at
a time), POSTs, and records ``delivered``; a failure (connection error, time-out, non-2xx answer) is tried
again after ``backoff_s`` doubling each time, and recorded ``failed`` after ``max_attempts``. The body is
the prediction as ``GET /v1/predictions/{id}`` shows it; receivers can use its ``id`` to drop a repeat,
which can only happen when a gateway dies between the receiver's answer and recording it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from adapters.http_session import LazySession
from gateway import __version__
from gateway.db.models import Prediction
from gateway.errors import BadRequestError
from gateway.media.address import AddressGuard, is_odd_ipv4_encoding, parse_ip_literal
from gateway.media.errors import MediaBlocked, MediaError, MediaUnreachable
from gateway.media.fetch import GuardedResolver
from gateway.predictions.claims import ClaimStore
from gateway.predictions.runner import poll_forever
from gateway.predictions.webhook_secrets import HEADER, WebhookSecrets, sign

log = logging.getLogger("vlmgw.predictions")

MAX_BACKOFF_S = 600.0
Render = Callable[[Prediction], bytes]


class CallbackFailed(Exception):
    """One delivery attempt failed; the message says why."""


class CallbackSender:
    """POSTs JSON to checked http(s) URLs; one aiohttp session, created on first use."""

    def __init__(self, guard: AddressGuard, timeout_s: float = 10.0) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        self._session = LazySession(self._new_session)

    async def check_url(self, url: str, param: str = "callback_url") -> None:
        """Refuse (400) a URL that is not http(s) or whose host the guard blocks; an unresolvable host is
        accepted (DNS may be back by the time the prediction finishes)."""
        try:
            await self._check(URL(url))
        except MediaUnreachable:
            return
        except (MediaError, ValueError) as exc:
            reason = exc.message if isinstance(exc, MediaError) else "not a valid URL"
            raise BadRequestError(
                f"The callback URL is refused: {reason}", param=param, code="callback_url_blocked"
            ) from None

    async def _check(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise MediaBlocked("only http(s) URLs with a host are accepted")
        await self.guard.checked_addresses(url.raw_host, url.port or 0)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """One attempt; raises ``CallbackFailed`` unless the receiver answers 2xx."""
        target = URL(url)
        try:
            host = target.raw_host or ""
            if parse_ip_literal(host) is not None or is_odd_ipv4_encoding(host) or not host:
                await self._check(target)  # literals never reach the resolver
            else:
                self.guard.check_name(host)
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            headers = {"Content-Type": "application/json", **headers}
            async with self._session.get().post(
                target, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as resp:
                if not 200 <= resp.status < 300:
                    raise CallbackFailed(f"the receiver answered HTTP {resp.status}")
        except MediaError as exc:
            raise CallbackFailed(exc.message) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CallbackFailed(f"could not deliver ({type(exc).__name__}: {exc})") from None

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), use_dns_cache=False)
        user_agent = {"User-Agent": f"vlm-gateway/{__version__}"}
        return aiohttp.ClientSession(connector=connector, trust_env=False, headers=user_agent)

    async def close(self) -> None:
        await self._session.close()


class CallbackDispatcher:
    """Delivers due callbacks in the background (at most ``concurrency`` at once per gateway); setting
    ``wake`` makes it look at once (a prediction just finished), else it looks every poll interval."""

    def __init__(
        self,
        claims: ClaimStore,
        sender: CallbackSender,
        secrets: WebhookSecrets,
        render: Render,
        *,
        max_attempts: int = 5,
        backoff_s: float = 2.0,
        poll_interval_s: float = 2.0,
        concurrency: int = 8,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.claims = claims
        self.sender = sender
        self.secrets = secrets
        self.render = render
        self.max_attempts = max(max_attempts, 1)
        self.backoff_s = backoff_s
        self.poll_interval_s = poll_interval_s
        self.concurrency = concurrency
        self._wake = wake or asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = poll_forever(self.deliver_due, self._wake, self.poll_interval_s, "prediction callbacks")
        self._loop = asyncio.create_task(loop, name="prediction-callbacks")

    async def close(self) -> None:
        """Stop; deliveries in flight are abandoned (their claims lapse and another pass retries them)."""
        tasks = [t for t in (self._loop, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sender.close()

    async def deliver_due(self) -> None:
        free = self.concurrency - len(self._sending)
        if free <= 0:
            return
        for prediction_id in await self.claims.due_callbacks(free):
            if await self.claims.claim_callback(prediction_id):
                task = asyncio.create_task(self.deliver(prediction_id))
                self._sending.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("prediction callback failed unexpectedly", exc_info=task.exception())
        self._wake.set()

    async def deliver(self, prediction_id: uuid.UUID) -> None:
        """One attempt at a claimed callback, and its record."""
        row = await Prediction.get(id=prediction_id)
        body = self.render(row)
        secret = (await self.secrets.get(row.workspace_id)).secret
        headers = {HEADER: sign(secret, body), "X-VLMRun-Attempt": str(row.callback_attempts + 1)}
        attempts = row.callback_attempts + 1
        try:
            await self.sender.post(row.callback_url or "", body, headers)
        except CallbackFailed as exc:
            await self.claims.callback_done(prediction_id, **self._failure(attempts, str(exc)))
            log.info("callback of prediction %s failed (attempt %d): %s", prediction_id, attempts, exc)
            return
        await self.claims.callback_done(
            prediction_id, callback_status="delivered", callback_attempts=attempts, callback_error=None
        )

    def _failure(self, attempts: int, error: str) -> dict[str, Any]:
        if attempts >= self.max_attempts:
            return {"callback_status": "failed", "callback_attempts": attempts, "callback_error": error}
        delay = min(self.backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
        next_at = self.claims.clock() + dt.timedelta(seconds=delay)
        return {"callback_attempts": attempts, "callback_error": error, "callback_next_at": next_at}
