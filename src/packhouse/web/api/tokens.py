"""API tokens: `/api/v1/tokens`. The secret is in the creation response only.

Who manages which token is `services.access.may_manage_token`: administrators every token,
a password login its user's tokens, a call made with a token that token itself and the
tokens of its user it holds admin over.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from packhouse.db.token_store import Token
from packhouse.errors import PermissionDenied
from packhouse.services import accounts
from packhouse.services.access import Principal, covers, may_manage_token
from packhouse.types import Action
from packhouse.web.api.deps import ServicesDep, UserDep
from packhouse.web.api.models import TokenCreate, TokenCreated, TokenOut
from packhouse.web.api.params import NAME_LENGTH, TokenId
from packhouse.wiring import Services

router = APIRouter(tags=["tokens"])


@router.get(
    "/tokens",
    summary="List tokens (yours; administrators may name a user or see all)",
    description="A call made with a token lists that token and the tokens it may manage.",
)
def list_tokens(
    svc: ServicesDep,
    who: UserDep,
    user: Annotated[
        str | None, Query(max_length=NAME_LENGTH, description="Whose tokens (administrators).")
    ] = None,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
) -> list[TokenOut]:
    owner = user
    if who.full_admin:
        pass
    elif owner is None or owner == who.name:
        owner = who.name
    else:
        svc.access.require_admin(who)
    found = accounts.list_tokens(svc.ctx, owner, revoked=revoked)
    return [TokenOut.of(t) for t in found if may_manage_token(who, t)]


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token; the secret is shown once",
    description="A token's scope can never exceed what its owner holds. A call made with a"
    " token can only create tokens within that token's own scope, expiring no later than it.",
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
        not_after=who.token_expires_at,
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
        repositories is None or not covers(who.token_repositories, repositories)
    ):
        raise PermissionDenied(
            "a token scoped to some repositories can only create tokens for those repositories"
        )


def _managed(svc: Services, who: Principal, token_id: int) -> Token:
    token = accounts.get_token(svc.ctx, token_id)
    if may_manage_token(who, token):
        return token
    if token.user_id != who.user_id:
        svc.access.require_admin(who)
    raise PermissionDenied(
        f"this token may not manage token {token_id}: use the password, or a token with admin"
        " on every repository that token reaches"
    )


@router.get("/tokens/{token_id}", summary="One token (its owner or administrators)")
def get_token(token_id: TokenId, svc: ServicesDep, who: UserDep) -> TokenOut:
    return TokenOut.of(_managed(svc, who, token_id))


@router.delete("/tokens/{token_id}", summary="Revoke a token (its owner or administrators)")
def revoke_token(token_id: TokenId, svc: ServicesDep, who: UserDep) -> TokenOut:
    _managed(svc, who, token_id)
    return TokenOut.of(accounts.revoke_token(svc.ctx, actor=who.name, token_id=token_id))
