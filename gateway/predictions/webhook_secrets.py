"""Per-workspace secrets that sign prediction callbacks, as vlm.run signs its webhooks:
``X-VLMRun-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>``.

A workspace gets its secret the first time one is needed (read through the API, or a callback is sent);
rotating replaces it at once (callbacks sent afterwards carry the new signature).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from tortoise.exceptions import IntegrityError

from gateway.db.models import WebhookSecret

HEADER = "X-VLMRun-Signature"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (for receivers; constant-time)."""
    return hmac.compare_digest(sign(secret, body), header)


class WebhookSecrets:
    async def get(self, workspace: uuid.UUID) -> WebhookSecret:
        """The workspace's secret, made on first use (a concurrent first use keeps one of them)."""
        row = await WebhookSecret.filter(workspace_id=workspace).first()
        if row is not None:
            return row
        try:
            return await WebhookSecret.create(workspace_id=workspace, secret=new_secret())
        except IntegrityError:
            return await WebhookSecret.get(workspace_id=workspace)

    async def rotate(self, workspace: uuid.UUID) -> WebhookSecret:
        row = await self.get(workspace)
        await WebhookSecret.filter(id=row.id).update(secret=new_secret())
        return await WebhookSecret.get(id=row.id)
