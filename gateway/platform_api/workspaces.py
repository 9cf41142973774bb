"""The workspaces a key may use (``GET /vlm/v2/workspace/``)."""

from __future__ import annotations

from gateway.db.keys import Principal
from gateway.db.models import Workspace
from gateway.platform_api import schemas as wire


async def list_workspaces(principal: Principal) -> wire.WorkspaceList:
    """The key's default workspace first, then the others its user may use (an admin: all)."""
    query = (
        Workspace.all()
        if principal.is_admin
        else Workspace.filter(id__in=[principal.default_workspace, *principal.workspaces])
    )
    rows = sorted(await query, key=lambda w: (w.id != principal.default_workspace, w.name, str(w.id)))
    results = [
        wire.Workspace(id=w.id, name=w.name, default=w.id == principal.default_workspace) for w in rows
    ]
    return wire.WorkspaceList(count=len(results), results=results)
