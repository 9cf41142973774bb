"""API keys in the database: create, verify, list, revoke; the built-in admin user and default workspace.

A key looks like ``vlmgw-<12 hex id>-<43 url-safe chars>``; the row keeps its first 18 characters
(``prefix``, to find the row), a random salt and ``sha256(salt + key)``; the key itself is shown once.
Keys belong to a user; the user may use one or more workspaces; the key's ``workspace`` is the default one.
The admin user (fixed id, ``is_admin``) may use every workspace; static ``--api-key`` keys act as it; a
database key is the admin's only when asked for (``admin=True``, ``vlmgw keys create --admin``).

Workspaces are owned: a workspace name is looked up among the user's own (and granted) workspaces, and a
new name makes a new workspace owned by the user, so two users who pick the same name get two workspaces.
Another user's workspace is joined only by an explicit grant (``grant_workspace``, ``vlmgw keys grant``).
The built-in ``default`` workspace has no owner and any user may join it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from gateway.db.models import ApiKey, User, UserWorkspace, Workspace

ADMIN_USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
ADMIN_USER_NAME = "admin"
DEFAULT_USER_NAME = "user"  # the user of keys created without a user name (not an admin)
DEFAULT_WORKSPACE_NAME = "default"
KEY_PREFIX_LEN = 19  # "vlmgw-" + 12 hex + "-"
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the user, the key's default workspace, and what else it may use."""

    user_id: uuid.UUID
    default_workspace: uuid.UUID
    workspaces: frozenset[uuid.UUID] = field(default_factory=frozenset)
    is_admin: bool = False
    key_id: uuid.UUID | None = None


class WorkspaceNotYours(ValueError):
    """A workspace of another user named without a grant, or a name that is not one workspace."""


@dataclass(frozen=True)
class CreatedKey:
    key: str
    row: ApiKey
    user: User
    workspaces: list[Workspace]


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256((salt + key).encode()).hexdigest()


def new_key() -> str:
    return f"vlmgw-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"


async def ensure_defaults() -> None:
    """Create the admin user and the default workspace if missing (safe with several gateways)."""
    try:
        workspace, _ = await Workspace.get_or_create(
            id=DEFAULT_WORKSPACE_ID, defaults={"name": DEFAULT_WORKSPACE_NAME}
        )
        user, _ = await User.get_or_create(
            id=ADMIN_USER_ID, defaults={"name": ADMIN_USER_NAME, "is_admin": True}
        )
        await UserWorkspace.get_or_create(user=user, workspace=workspace)
    except IntegrityError:  # another gateway created them at the same moment
        pass


async def resolve_workspace(ref: str, user: User | None = None) -> Workspace | None:
    """A workspace by id, or by name: with ``user``, only among the workspaces it owns or was granted."""
    try:
        return await Workspace.get_or_none(id=uuid.UUID(ref))
    except ValueError:
        pass
    if user is None:
        return await Workspace.filter(name=ref).order_by("created").first()
    if ref == DEFAULT_WORKSPACE_NAME:
        return await Workspace.get(id=DEFAULT_WORKSPACE_ID)
    granted = await UserWorkspace.filter(user_id=user.id).values_list("workspace_id", flat=True)
    query = Workspace.filter(name=ref).filter(Q(owner_id=user.id) | Q(id__in=list(granted)))
    return await query.order_by("created").first()


def may_join(user: User, workspace: Workspace, granted: bool) -> bool:
    """Whether ``user`` may use ``workspace`` without a new grant."""
    return granted or user.is_admin or workspace.id == DEFAULT_WORKSPACE_ID or workspace.owner_id == user.id


async def _users_workspace(user: User, ref: str) -> Workspace:
    """The workspace ``ref`` names for ``user``: its own or granted one, or a new one it owns."""
    workspace = await resolve_workspace(ref, user)
    if workspace is None:
        try:
            uuid.UUID(ref)
        except ValueError:
            return await Workspace.create(name=ref, owner=user)
        raise WorkspaceNotYours(f"no workspace has the id {ref}")
    granted = await UserWorkspace.filter(user_id=user.id, workspace_id=workspace.id).exists()
    if not may_join(user, workspace, granted):
        raise WorkspaceNotYours(
            f"workspace {workspace.name} ({workspace.id}) belongs to another user; grant it first with "
            f"`vlmgw keys grant --user {user.name} --workspace {workspace.id}`"
        )
    return workspace


async def grant_workspace(user_name: str, ref: str) -> tuple[User, Workspace]:
    """Let ``user_name`` (created if new) use the workspace ``ref`` (an id, or a name that only one
    workspace has): the explicit grant that sharing a workspace between users needs."""
    await ensure_defaults()
    try:
        matches = [w for w in [await Workspace.get_or_none(id=uuid.UUID(ref))] if w is not None]
    except ValueError:
        matches = await Workspace.filter(name=ref)
    if len(matches) != 1:
        what = "no workspace" if not matches else f"{len(matches)} workspaces (give its id)"
        raise WorkspaceNotYours(f"{what} named {ref!r}")
    user, _ = await User.get_or_create(name=user_name)
    await UserWorkspace.get_or_create(user=user, workspace=matches[0])
    return user, matches[0]


async def create_key(
    *, user_name: str = DEFAULT_USER_NAME, workspaces: list[str] | None = None, name: str = "",
    admin: bool = False,
) -> CreatedKey:  # fmt: skip
    """A new key for ``user_name`` (created if new) in the named workspaces (its own, granted ones, or
    new ones it then owns); ``admin``: a key of the admin user, who may use every workspace.

    The first workspace is the key's default; with none given it is the default workspace. A key is never
    an admin key unless ``admin`` is true; the admin user's name without it is refused.
    """
    await ensure_defaults()
    if admin:
        user = await User.get(id=ADMIN_USER_ID)
    else:
        user, _ = await User.get_or_create(name=user_name)
        if user.is_admin:
            raise WorkspaceNotYours(f"user {user_name!r} is the admin; create an admin key only with --admin")
    resolved: list[Workspace] = []
    for ref in workspaces or [str(DEFAULT_WORKSPACE_ID)]:
        workspace = await _users_workspace(user, ref)
        await UserWorkspace.get_or_create(user=user, workspace=workspace)
        resolved.append(workspace)
    key, salt = new_key(), secrets.token_hex(16)
    row = await ApiKey.create(
        user=user, workspace=resolved[0], name=name, prefix=key[:KEY_PREFIX_LEN], salt=salt,
        digest=_digest(salt, key),
    )  # fmt: skip
    return CreatedKey(key, row, user, resolved)


async def any_key_exists() -> bool:
    """Whether a key was ever created (revoked keys count: revoking all keys must not open the API)."""
    return await ApiKey.all().exists()


async def verify_key(key: str) -> Principal | None:
    """The principal of a valid, unrevoked key, else None."""
    if not key.startswith("vlmgw-") or len(key) < KEY_PREFIX_LEN + 8:
        return None
    for row in await ApiKey.filter(prefix=key[:KEY_PREFIX_LEN], revoked=None).prefetch_related("user"):
        if hmac.compare_digest(row.digest, _digest(row.salt, key)):
            now = datetime.now(UTC)
            if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:  # not a write per request
                await ApiKey.filter(id=row.id).update(last_used=now)
            return await principal_for(row.user, row.workspace_id, key_id=row.id)
    return None


async def principal_for(
    user: User, default_workspace: uuid.UUID, key_id: uuid.UUID | None = None
) -> Principal:
    allowed = await UserWorkspace.filter(user_id=user.id).values_list("workspace_id", flat=True)
    return Principal(
        user_id=user.id, default_workspace=default_workspace,
        workspaces=frozenset(uuid.UUID(str(w)) for w in allowed), is_admin=user.is_admin, key_id=key_id,
    )  # fmt: skip


async def admin_principal() -> Principal:
    """The principal of static keys and of the open (no keys at all) mode."""
    await ensure_defaults()
    user = await User.get(id=ADMIN_USER_ID)
    return await principal_for(user, DEFAULT_WORKSPACE_ID)


async def list_keys() -> list[ApiKey]:
    return await ApiKey.all().order_by("created").prefetch_related("user", "workspace")


async def revoke_key(ref: str) -> ApiKey | None:
    """Revoke a key by id, prefix or the full key; None when no key matches."""
    try:
        row = await ApiKey.get_or_none(id=uuid.UUID(ref))
    except ValueError:
        row = await ApiKey.filter(prefix=ref[:KEY_PREFIX_LEN]).first()
    if row is None:
        return None
    if row.revoked is None:
        row.revoked = datetime.now(UTC)
        await row.save(update_fields=["revoked"])
    return row
