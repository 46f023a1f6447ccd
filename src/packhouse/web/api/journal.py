"""The journal, newest first: `/api/v1/journal` (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from packhouse.services import audit
from packhouse.web.api.deps import AdminDep, ServicesDep
from packhouse.web.api.models import JournalOut
from packhouse.web.api.params import NAME_LENGTH, REPO_LENGTH, TEXT_LENGTH, Serial

router = APIRouter(tags=["journal"])


@router.get("/journal", summary="Who did what, when; newest first (administrators)")
def journal(
    svc: ServicesDep,
    _: AdminDep,
    repository: Annotated[
        str | None, Query(max_length=REPO_LENGTH, description="Repository name.")
    ] = None,
    actor: Annotated[
        str | None, Query(max_length=NAME_LENGTH, description="Who made the change.")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=TEXT_LENGTH, description="e.g. upload, token.create.")
    ] = None,
    project: Annotated[
        str | None, Query(max_length=TEXT_LENGTH, description="Project or package name.")
    ] = None,
    since: Serial | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JournalOut]:
    found = audit.journal(
        svc.ctx,
        repository=repository,
        actor=actor,
        action=action,
        project=project,
        since=since,
        limit=limit,
    )
    return [JournalOut.of(e) for e in found]
