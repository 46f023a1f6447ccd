"""Repositories and their permissions: `/api/v1/repositories`."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from fastapi import APIRouter, status

from packhouse.errors import PermissionDenied
from packhouse.services import audit
from packhouse.services.repos import create_repository, set_permission, update_repository
from packhouse.types import Action, Format, RepoKind
from packhouse.web.api.deps import AdminDep, PrincipalDep, ServicesDep
from packhouse.web.api.models import (
    PermissionOut,
    PermissionSet,
    RepositoryCreate,
    RepositoryOut,
    RepositorySettingsIn,
)
from packhouse.web.api.params import PrincipalPath, RepoPath

router = APIRouter(tags=["repositories"])


@router.get("/repositories", summary="Repositories the caller may read")
def list_repositories(svc: ServicesDep, who: PrincipalDep) -> list[RepositoryOut]:
    base = svc.ctx.settings.base_url
    return [
        RepositoryOut.of(r, svc.access.is_public(r.id), base)
        for r in sorted(svc.catalog.all(), key=lambda r: (r.format, r.name))
        if svc.access.can(who, r, Action.READ)
    ]


@router.post(
    "/repositories",
    status_code=status.HTTP_201_CREATED,
    summary="Create a hosted repository or a proxy (administrators); private unless public",
)
def create(body: RepositoryCreate, svc: ServicesDep, who: AdminDep) -> RepositoryOut:
    settings = body.settings()
    repo = create_repository(
        svc.ctx,
        actor=who.name,
        name=body.name,
        fmt=body.format,
        kind=RepoKind(body.kind),
        bases=body.bases or (),
        public=body.public,
        description=body.description or "",
        upstream_url=body.upstream_url,
        settings=replace(settings, bases=None, description=None, upstream_url=None),
    )
    return RepositoryOut.of(repo, body.public, svc.ctx.settings.base_url)


@router.patch(
    "/repositories/{fmt}/{name}",
    summary="Change bases, upstream, cooldown or allow list (repository admins)",
)
def update(
    fmt: Format,
    name: RepoPath,
    body: RepositorySettingsIn,
    svc: ServicesDep,
    who: PrincipalDep,
) -> RepositoryOut:
    svc.access.check(who, svc.catalog.get(fmt, name), Action.ADMIN)
    if body.upstream_url is not None and not who.full_admin:
        raise PermissionDenied("only administrators may point a proxy at another upstream")
    repo = update_repository(svc.ctx, actor=who.name, fmt=fmt, name=name, settings=body.settings())
    return RepositoryOut.of(repo, svc.access.is_public(repo.id), svc.ctx.settings.base_url)


@router.get("/repositories/{fmt}/{name}", summary="One repository (needs read)")
def get(fmt: Format, name: RepoPath, svc: ServicesDep, who: PrincipalDep) -> RepositoryOut:
    repo = svc.catalog.get(fmt, name)
    svc.access.check(who, repo, Action.READ)
    return RepositoryOut.of(repo, svc.access.is_public(repo.id), svc.ctx.settings.base_url)


@router.get("/repositories/{fmt}/{name}/permissions", summary="Who may do what (repository admins)")
def permissions(
    fmt: Format, name: RepoPath, svc: ServicesDep, who: PrincipalDep
) -> list[PermissionOut]:
    repo = svc.catalog.get(fmt, name)
    svc.access.check(who, repo, Action.ADMIN)
    return [PermissionOut.of(g) for g in audit.grants(svc.ctx, repo)]


@router.put(
    "/repositories/{fmt}/{name}/permissions",
    summary="Grant an action (replacing what that principal had; repository admins)",
)
def grant(
    fmt: Format, name: RepoPath, body: PermissionSet, svc: ServicesDep, who: PrincipalDep
) -> list[PermissionOut]:
    svc.access.check(who, svc.catalog.get(fmt, name), Action.ADMIN)
    set_permission(
        svc.ctx,
        actor=who.name,
        fmt=fmt,
        name=name,
        principal=body.principal,
        action=body.action,
        kind=body.kind,
    )
    return permissions(fmt, name, svc, who)


@router.delete(
    "/repositories/{fmt}/{name}/permissions/{kind}/{principal}",
    summary="Take away what a principal was granted (repository admins)",
)
def revoke(
    fmt: Format,
    name: RepoPath,
    kind: Literal["user", "group", "special"],
    principal: PrincipalPath,
    svc: ServicesDep,
    who: PrincipalDep,
) -> list[PermissionOut]:
    svc.access.check(who, svc.catalog.get(fmt, name), Action.ADMIN)
    set_permission(
        svc.ctx, actor=who.name, fmt=fmt, name=name, principal=principal, action=None, kind=kind
    )
    return permissions(fmt, name, svc, who)
