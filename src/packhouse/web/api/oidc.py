"""Trusted publishing's issuers and publishers: `/api/v1/oidc/...`. Issuers are for
administrators; a repository's publishers for whoever holds admin on that repository."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from packhouse.db.oidc_store import Issuer, Publisher
from packhouse.services.access import Principal
from packhouse.types import Action
from packhouse.web.api.deps import AdminDep, ServicesDep, UserDep
from packhouse.web.api.params import MAX_ID, REPO_LENGTH
from packhouse.wiring import Services

router = APIRouter(tags=["trusted publishing"])

IssuerName = Annotated[str, Path(min_length=1, max_length=64)]
PublisherId = Annotated[int, Path(ge=1, le=MAX_ID, description="From `GET /oidc/publishers`.")]


class IssuerIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="A short name: github, gitlab.")
    url: str = Field(
        min_length=1, max_length=2000, description="The issuer URL, as its tokens' `iss`."
    )
    jwks: dict[str, Any] | None = Field(
        default=None,
        description="Fixed keys (a JWKS) for issuers this server cannot reach; else they are"
        " read from the issuer's discovery document.",
    )


class IssuerOut(BaseModel):
    name: str
    url: str
    keys: str = Field(description="`file` (fixed keys) or `discovery`.")
    created_at: datetime

    @classmethod
    def of(cls, i: Issuer) -> IssuerOut:
        return cls(
            name=i.name, url=i.url, keys="file" if i.jwks else "discovery", created_at=i.created_at
        )


class IssuersOut(BaseModel):
    audience: str = Field(description="The `aud` identity tokens must name.")
    issuers: list[IssuerOut]


class PublisherIn(BaseModel):
    repository: str = Field(min_length=1, max_length=REPO_LENGTH, description="FORMAT/NAME.")
    issuer: str = Field(min_length=1, max_length=64)
    claims: dict[str, str] = Field(
        min_length=1,
        description="Claim values an identity token must all carry, e.g."
        ' {"repository": "acme/app", "environment": "release"}.',
    )


class PublisherOut(BaseModel):
    id: int
    repository: str
    issuer: str
    claims: dict[str, str]
    created_at: datetime

    @classmethod
    def of(cls, p: Publisher) -> PublisherOut:
        return cls(
            id=p.id,
            repository=p.repository,
            issuer=p.issuer_name,
            claims=dict(p.claims),
            created_at=p.created_at,
        )


@router.get("/oidc/issuers", summary="Registered OIDC issuers and the audience (administrators)")
def list_issuers(svc: ServicesDep, who: AdminDep) -> IssuersOut:
    return IssuersOut(
        audience=svc.oidc.audience(),
        issuers=[IssuerOut.of(i) for i in svc.oidc.list_issuers()],
    )


@router.post(
    "/oidc/issuers",
    status_code=status.HTTP_201_CREATED,
    summary="Register an OIDC issuer (administrators); its keys are read now",
)
def add_issuer(body: IssuerIn, svc: ServicesDep, who: AdminDep) -> IssuerOut:
    made = svc.oidc.add_issuer(actor=who.name, name=body.name, url=body.url, jwks=body.jwks)
    return IssuerOut.of(made)


@router.delete(
    "/oidc/issuers/{name}", summary="Remove an issuer and its publishers (administrators)"
)
def remove_issuer(name: IssuerName, svc: ServicesDep, who: AdminDep) -> IssuerOut:
    return IssuerOut.of(svc.oidc.remove_issuer(actor=who.name, name=name))


@router.get(
    "/oidc/publishers",
    summary="Publishers: of one repository (its administrators), or all (administrators)",
)
def list_publishers(
    svc: ServicesDep,
    who: UserDep,
    repository: Annotated[
        str | None, Query(max_length=REPO_LENGTH, description="FORMAT/NAME.")
    ] = None,
) -> list[PublisherOut]:
    if repository is None:
        svc.access.require_admin(who)
        return [PublisherOut.of(p) for p in svc.oidc.list_publishers()]
    repo = svc.oidc.repository(repository)
    svc.access.check(who, repo, Action.ADMIN)
    return [PublisherOut.of(p) for p in svc.oidc.list_publishers(repo)]


@router.post(
    "/oidc/publishers",
    status_code=status.HTTP_201_CREATED,
    summary="Let identity tokens with these claims upload to a repository (its administrators)",
)
def add_publisher(body: PublisherIn, svc: ServicesDep, who: UserDep) -> PublisherOut:
    repo = svc.oidc.repository(body.repository)
    svc.access.check(who, repo, Action.ADMIN)
    made = svc.oidc.add_publisher(
        actor=who.name, repository=repo, issuer=body.issuer, claims=body.claims
    )
    return PublisherOut.of(made)


@router.delete(
    "/oidc/publishers/{publisher_id}",
    summary="Remove a publisher (its repository's administrators)",
)
def remove_publisher(publisher_id: PublisherId, svc: ServicesDep, who: UserDep) -> PublisherOut:
    _may_manage(svc, who, svc.oidc.get_publisher(publisher_id))
    return PublisherOut.of(svc.oidc.remove_publisher(actor=who.name, publisher_id=publisher_id))


def _may_manage(svc: Services, who: Principal, publisher: Publisher) -> None:
    svc.access.check(who, svc.oidc.repository(publisher.repository), Action.ADMIN)
