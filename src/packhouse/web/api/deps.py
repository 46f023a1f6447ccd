"""Typed dependencies of the management API (`Annotated` aliases, used as parameter types)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from packhouse.services.access import Principal
from packhouse.web import deps as web_deps
from packhouse.wiring import Services


def get_services(request: Request) -> Services:
    return web_deps.services(request)


async def get_principal(request: Request) -> Principal:
    return await web_deps.principal(request)


async def get_user_principal(request: Request) -> Principal:
    who = await web_deps.principal(request)
    web_deps.services(request).access.require_user(who)
    return who


async def get_admin(request: Request) -> Principal:
    who = await web_deps.principal(request)
    web_deps.services(request).access.require_admin(who)
    return who


ServicesDep = Annotated[Services, Depends(get_services)]
# whoever is calling, anonymous included
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# a user, by password or token (401 otherwise)
UserDep = Annotated[Principal, Depends(get_user_principal)]
# an administrator not narrowed by a scoped token (401/403 otherwise)
AdminDep = Annotated[Principal, Depends(get_admin)]
