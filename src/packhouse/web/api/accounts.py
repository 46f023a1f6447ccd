"""Users and groups: `/api/v1/me`, `/api/v1/users`, `/api/v1/groups`."""

from __future__ import annotations

from fastapi import APIRouter, status

from packhouse.errors import PermissionDenied
from packhouse.services import accounts
from packhouse.web.api.deps import AdminDep, PrincipalDep, ServicesDep, UserDep
from packhouse.web.api.models import GroupCreate, GroupOut, Me, UserCreate, UserOut, UserUpdate
from packhouse.web.api.params import GroupPath, UserPath
from packhouse.wiring import Services

router = APIRouter()


def _out(svc: Services, name: str) -> UserOut:
    user = accounts.get_user(svc.ctx, name)
    return UserOut.of(user, svc.access.snapshot().groups.get(user.id, frozenset()))


@router.get("/me", tags=["users"], summary="Who the credentials name")
async def me(who: PrincipalDep) -> Me:
    return Me(
        name=who.name,
        anonymous=who.anonymous,
        admin=who.is_admin,
        groups=sorted(who.groups),
        token_id=who.token_id,
        token_repositories=None
        if who.token_repositories is None
        else sorted(who.token_repositories),
        token_actions=None if who.token_actions is None else sorted(who.token_actions),
    )


@router.get("/users", tags=["users"], summary="List users (administrators)")
def list_users(svc: ServicesDep, _: AdminDep) -> list[UserOut]:
    groups = svc.access.snapshot().groups
    return [UserOut.of(u, groups.get(u.id, frozenset())) for u in accounts.list_users(svc.ctx)]


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (administrators)",
)
def create_user(body: UserCreate, svc: ServicesDep, who: AdminDep) -> UserOut:
    accounts.create_user(
        svc.ctx,
        actor=who.name,
        name=body.name,
        password=body.password,
        admin=body.admin,
        service=body.service,
    )
    return _out(svc, body.name)


@router.get("/users/{name}", tags=["users"], summary="One user (administrators, or themselves)")
def get_user(name: UserPath, svc: ServicesDep, who: UserDep) -> UserOut:
    if who.name != name:
        svc.access.require_admin(who)
    return _out(svc, name)


@router.patch(
    "/users/{name}",
    tags=["users"],
    summary="Change a password, the admin flag or disable a user",
    description="Administrators may change anything; a user may change their own password.",
)
def update_user(name: UserPath, body: UserUpdate, svc: ServicesDep, who: UserDep) -> UserOut:
    if body.admin is not None or body.disabled is not None or who.name != name:
        svc.access.require_admin(who)
    if who.token_id is not None and not who.full_admin:
        raise PermissionDenied("a scoped token cannot change a user; use the password")
    if body.password is not None:
        accounts.set_password(svc.ctx, actor=who.name, name=name, password=body.password)
    accounts.update_user(
        svc.ctx, actor=who.name, name=name, admin=body.admin, disabled=body.disabled
    )
    return _out(svc, name)


@router.get("/groups", tags=["groups"], summary="List groups and their members")
def list_groups(svc: ServicesDep, _: AdminDep) -> list[GroupOut]:
    return [GroupOut.of(g) for g in accounts.list_groups(svc.ctx)]


@router.post("/groups", tags=["groups"], status_code=status.HTTP_201_CREATED)
def create_group(body: GroupCreate, svc: ServicesDep, who: AdminDep) -> GroupOut:
    return GroupOut.of(accounts.create_group(svc.ctx, actor=who.name, name=body.name))


@router.get("/groups/{name}", tags=["groups"])
def get_group(name: GroupPath, svc: ServicesDep, _: AdminDep) -> GroupOut:
    return GroupOut.of(accounts.get_group(svc.ctx, name))


@router.delete(
    "/groups/{name}",
    tags=["groups"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a group and every permission granted to it",
)
def delete_group(name: GroupPath, svc: ServicesDep, who: AdminDep) -> None:
    accounts.delete_group(svc.ctx, actor=who.name, name=name)


@router.put("/groups/{name}/members/{user}", tags=["groups"], summary="Add a member")
def add_member(name: GroupPath, user: UserPath, svc: ServicesDep, who: AdminDep) -> GroupOut:
    accounts.set_membership(svc.ctx, actor=who.name, group=name, user=user, member=True)
    return GroupOut.of(accounts.get_group(svc.ctx, name))


@router.delete("/groups/{name}/members/{user}", tags=["groups"], summary="Remove a member")
def remove_member(name: GroupPath, user: UserPath, svc: ServicesDep, who: AdminDep) -> GroupOut:
    accounts.set_membership(svc.ctx, actor=who.name, group=name, user=user, member=False)
    return GroupOut.of(accounts.get_group(svc.ctx, name))
