"""API tokens: `/api/v1/tokens`. The secret is in the creation response only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from packhouse.errors import PermissionDenied
from packhouse.services import accounts
from packhouse.services.access import Principal
from packhouse.types import Action
from packhouse.web.api.deps import ServicesDep, UserDep
from packhouse.web.api.models import TokenCreate, TokenCreated, TokenOut

router = APIRouter(tags=["tokens"])


@router.get("/tokens", summary="List tokens (yours; administrators may name a user or see all)")
def list_tokens(
    svc: ServicesDep,
    who: UserDep,
    user: Annotated[str | None, Query(description="Whose tokens (administrators).")] = None,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
) -> list[TokenOut]:
    owner = user
    if who.full_admin:
        pass
    elif owner is None or owner == who.name:
        owner = who.name
    else:
        svc.access.require_admin(who)
    return [TokenOut.of(t) for t in accounts.list_tokens(svc.ctx, owner, revoked=revoked)]


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token; the secret is shown once",
    description="A token's scope can never exceed what its owner holds. A call made with a"
    " token can only create tokens within that token's own scope.",
)
def create_token(body: TokenCreate, svc: ServicesDep, who: UserDep) -> TokenCreated:
    owner = body.user or who.name
    if owner != who.name:
        svc.access.require_admin(who)
    _within_caller_token(who, body.repositories, body.actions)
    made = accounts.create_token(
        svc.ctx,
        svc.access,
        svc.catalog,
        actor=who.name,
        owner=owner,
        name=body.name,
        repositories=body.repositories,
        actions=body.actions,
        expires=body.expires,
    )
    return TokenCreated(**TokenOut.of(made.token).model_dump(), secret=made.secret)


def _within_caller_token(
    who: Principal, repositories: list[str] | None, actions: list[Action]
) -> None:
    if who.token_id is None or who.full_admin:
        return
    assert who.token_actions is not None
    if not all(any(held.implies(a) for held in who.token_actions) for a in actions):
        raise PermissionDenied("a token can only create tokens with actions it holds itself")
    if who.token_repositories is not None and (
        repositories is None or not set(repositories) <= who.token_repositories
    ):
        raise PermissionDenied(
            "a token scoped to some repositories can only create tokens for those repositories"
        )


@router.get("/tokens/{token_id}", summary="One token (its owner or administrators)")
def get_token(token_id: int, svc: ServicesDep, who: UserDep) -> TokenOut:
    token = accounts.get_token(svc.ctx, token_id)
    if token.user_id != who.user_id:
        svc.access.require_admin(who)
    return TokenOut.of(token)


@router.delete("/tokens/{token_id}", summary="Revoke a token (its owner or administrators)")
def revoke_token(token_id: int, svc: ServicesDep, who: UserDep) -> TokenOut:
    token = accounts.get_token(svc.ctx, token_id)
    if token.user_id != who.user_id:
        svc.access.require_admin(who)
    return TokenOut.of(accounts.revoke_token(svc.ctx, actor=who.name, token_id=token_id))
