"""Administration pages: users (service accounts and their tokens, password resets),
groups, repositories (bases, proxy settings, cooldowns) and their permissions, the journal.
Only an administrator signed in with their password (a session) may see them; every change
is a form with the session's CSRF token and goes through the same services as the CLI and
the management API, so it is journaled the same way. An upstream's password is never shown
back: its field stays empty, and left empty keeps the stored one."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.errors import AuthenticationRequired, InvalidInput
from packhouse.services import accounts, audit, repos, ui_admin
from packhouse.services.sessions import SignedIn
from packhouse.types import Action, Format, RepoKind
from packhouse.units import parse_duration, parse_moment
from packhouse.web import deps
from packhouse.web.ui.account import (
    _redirect,
    _session_form,
    token_choice,
    token_listing,
)
from packhouse.web.ui.routes import _format, context, guarded
from packhouse.web.ui.state import signed_in, ui

MAX_FILTER = 200
MAX_JOURNAL = 500  # entries on one journal page


async def _admin(request: Request) -> SignedIn:
    session = await signed_in(request)
    if session is None:
        raise AuthenticationRequired("sign in as an administrator first")
    deps.services(request).access.require_admin(session.principal)
    return session


async def _admin_form(request: Request) -> tuple[SignedIn, FormData]:
    session, form = await _session_form(request)
    deps.services(request).access.require_admin(session.principal)
    return session, form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _page(
    request: Request, template: str, extra: dict[str, Any], status: int = 200
) -> Response:
    ctx = await context(request)
    shown = {**ctx, "section": template, **extra}
    return ui(request).renderer.page(request, template, shown, status=status)


async def users(request: Request) -> Response:
    await _admin(request)
    svc = deps.services(request)
    listed = await run_in_threadpool(accounts.list_users, svc.ctx)
    groups = await run_in_threadpool(ui_admin.memberships, svc.ctx)
    return await _page(request, "admin_users.html", {"users": listed, "groups": groups})


async def user_create(request: Request) -> Response:
    """A user with a password, or (`service` on) a service account: no password, only the
    tokens an administrator makes for it on its page."""
    session, form = await _admin_form(request)
    svc = deps.services(request)
    name, password = _text(form, "name"), form.get("password")
    service = form.get("service") == "on"
    if service:
        password = None
    elif not isinstance(password, str) or not password:
        raise InvalidInput("give the new user a password (a service account needs none)")
    await run_in_threadpool(
        lambda: accounts.create_user(
            svc.ctx,
            actor=session.principal.name,
            name=name,
            password=password if isinstance(password, str) else None,
            admin=form.get("admin") == "on" and not service,
            service=service,
        )
    )
    return _redirect(f"/ui/admin/users/{quote(name)}" if service else "/ui/admin/users")


async def user_page(
    request: Request, created: accounts.CreatedToken | None = None, status: int = 200
) -> Response:
    """One user: their live tokens; a password reset, or for a service account a form
    making a token for it (shown once)."""
    await _admin(request)
    svc = deps.services(request)
    name = request.path_params["name"]
    user = await run_in_threadpool(accounts.get_user, svc.ctx, name)
    listed = await run_in_threadpool(accounts.list_tokens, svc.ctx, name)
    repositories = sorted(svc.catalog.all(), key=lambda r: (r.format.value, r.name))
    return await _page(
        request,
        "admin_user.html",
        {"user": user, **token_listing(svc.ctx.clock(), listed, repositories, created)},
        status=status,
    )


async def user_password(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    name = request.path_params["name"]
    password, again = form.get("password"), form.get("again")
    if not isinstance(password, str) or not password:
        raise InvalidInput("give the new password")
    if password != again:
        raise InvalidInput("the two passwords differ: type the same new password twice")
    await run_in_threadpool(
        lambda: accounts.set_password(
            svc.ctx, actor=session.principal.name, name=name, password=password
        )
    )
    return _redirect(f"/ui/admin/users/{quote(name)}?changed=password")


async def user_token(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    name = request.path_params["name"]
    user = await run_in_threadpool(accounts.get_user, svc.ctx, name)
    if not user.is_service:
        raise InvalidInput(
            f"{name!r} signs in with a password and makes their own tokens; tokens are made"
            " here for service accounts"
        )
    action, expires = token_choice(form)
    picked = [str(v) for v in form.getlist("repo") if str(v)]
    if not picked:
        raise InvalidInput("pick at least one repository the token may reach")
    made = await run_in_threadpool(
        lambda: accounts.create_token(
            svc.ctx,
            svc.access,
            svc.catalog,
            actor=session.principal.name,
            owner=name,
            name=_text(form, "token_name"),
            repositories=picked,
            actions=[action],
            expires=expires,
        )
    )
    return await user_page(request, made, status=201)


async def user_token_revoke(request: Request) -> Response:
    session, _ = await _admin_form(request)
    svc = deps.services(request)
    name = request.path_params["name"]
    try:
        token_id = int(request.path_params["token_id"])
    except ValueError:
        raise InvalidInput("the token id is not a number") from None
    token = await run_in_threadpool(accounts.get_token, svc.ctx, token_id)
    if token.user_name != name:
        raise InvalidInput(f"token {token_id} is not one of {name!r}'s")
    await run_in_threadpool(
        lambda: accounts.revoke_token(svc.ctx, actor=session.principal.name, token_id=token_id)
    )
    return _redirect(f"/ui/admin/users/{quote(name)}")


async def user_change(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    name = request.path_params["name"]
    change = _text(form, "change")
    values = {
        "disable": {"disabled": True},
        "enable": {"disabled": False},
        "make-admin": {"admin": True},
        "revoke-admin": {"admin": False},
    }.get(change)
    if values is None:
        raise InvalidInput(f"unknown change {change!r}")
    if name == session.principal.name and change in ("disable", "revoke-admin"):
        raise InvalidInput("you cannot disable yourself or take away your own admin right here")
    await run_in_threadpool(
        lambda: accounts.update_user(svc.ctx, actor=session.principal.name, name=name, **values)
    )
    return _redirect("/ui/admin/users")


async def groups(request: Request) -> Response:
    await _admin(request)
    svc = deps.services(request)
    listed = await run_in_threadpool(accounts.list_groups, svc.ctx)
    users = await run_in_threadpool(accounts.list_users, svc.ctx)
    return await _page(request, "admin_groups.html", {"groups": listed, "users": users})


async def group_create(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    name = _text(form, "name")
    await run_in_threadpool(
        lambda: accounts.create_group(svc.ctx, actor=session.principal.name, name=name)
    )
    return _redirect("/ui/admin/groups")


async def group_change(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    group, change, user = request.path_params["name"], _text(form, "change"), _text(form, "user")
    actor = session.principal.name
    if change == "delete":
        await run_in_threadpool(lambda: accounts.delete_group(svc.ctx, actor=actor, name=group))
    elif change in ("add", "remove"):
        await run_in_threadpool(
            lambda: accounts.set_membership(
                svc.ctx, actor=actor, group=group, user=user, member=change == "add"
            )
        )
    else:
        raise InvalidInput(f"unknown change {change!r}: add, remove or delete")
    return _redirect("/ui/admin/groups")


async def repository_update(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    fmt: Format = _format(request.path_params["format"])
    name = request.path_params["repo"]
    repo = svc.catalog.get(fmt, name)
    days = _text(form, "min_age_days")
    clear: set[str] = set()
    min_age: int | None = None
    if days:
        try:
            min_age = round(float(days) * 86400)
        except ValueError:
            raise InvalidInput(f"the cooldown {days!r} is not a number of days") from None
        if min_age <= 0:
            clear.add("min_age")
            min_age = None
    elif repo.cooldown.min_age is not None:
        clear.add("min_age")

    exclude_newer = None
    if newer := _text(form, "exclude_newer"):
        exclude_newer = parse_moment(newer)
    elif repo.cooldown.exclude_newer is not None:
        clear.add("exclude_newer")

    def names(field: str) -> list[str]:
        return [n.strip() for n in _text(form, field).split(",") if n.strip()]

    proxy = _proxy_settings(form, repo, clear) if repo.kind is RepoKind.PROXY else {}
    wanted = repos.RepoSettings(
        bases=None if repo.kind is RepoKind.PROXY else names("bases"),
        description=_text(form, "description"),
        allow_upstream=names("allow_upstream"),
        min_age=min_age,
        exclude_newer=exclude_newer,
        cooldown_exempt=names("cooldown_exempt"),
        clear=frozenset(clear),
        **proxy,
    )
    await run_in_threadpool(
        lambda: repos.update_repository(
            svc.ctx, actor=session.principal.name, fmt=fmt, name=name, settings=wanted
        )
    )
    return _redirect(f"/ui/admin/repositories/{fmt.value}/{name}")


def _proxy_settings(form: FormData, repo: Repository, clear: set[str]) -> dict[str, Any]:
    """A proxy's upstream, credentials, ttl and offline switch from the settings form. The
    password field is never filled in: left empty it keeps the one stored."""
    found: dict[str, Any] = {
        "upstream_url": _text(form, "upstream") or None,
        "offline": form.get("offline") == "on",
    }
    if form.get("clear_auth") == "on":
        clear.add("upstream_auth")
    else:
        user, password = _text(form, "upstream_user"), form.get("upstream_password")
        if user and user != repo.proxy.user:
            found["upstream_user"] = user
        if isinstance(password, str) and password.strip():
            found["upstream_password"] = password
    if ttl := _text(form, "ttl"):
        found["ttl"] = int(parse_duration(ttl).total_seconds())
    elif repo.proxy.ttl is not None:
        clear.add("ttl")
    return found


async def repositories(request: Request) -> Response:
    await _admin(request)
    svc = deps.services(request)
    listed = sorted(svc.catalog.all(), key=lambda r: (r.format.value, r.name))
    public = {r.id: svc.access.is_public(r.id) for r in listed}
    return await _page(
        request, "admin_repositories.html", {"repositories": listed, "public_ids": public}
    )


async def repository_create(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    fmt = _format(_text(form, "format") or "pypi")
    bases = [b.strip() for b in _text(form, "bases").split(",") if b.strip()]
    upstream = _text(form, "upstream") or None
    made = await run_in_threadpool(
        lambda: repos.create_repository(
            svc.ctx,
            actor=session.principal.name,
            name=_text(form, "name"),
            fmt=fmt,
            kind=RepoKind.PROXY if upstream else RepoKind.HOSTED,
            bases=bases,
            public=form.get("public") == "on",
            description=_text(form, "description"),
            upstream_url=upstream,
        )
    )
    return _redirect(f"/ui/admin/repositories/{made.format.value}/{made.name}")


async def repository(request: Request) -> Response:
    await _admin(request)
    svc = deps.services(request)
    repo = svc.catalog.get(_format(request.path_params["format"]), request.path_params["repo"])
    found = await run_in_threadpool(audit.grants, svc.ctx, repo)
    return await _page(
        request,
        "admin_repository.html",
        {"repo": repo, "grants": found, "order": svc.catalog.order(repo)},
    )


async def permission(request: Request) -> Response:
    session, form = await _admin_form(request)
    svc = deps.services(request)
    fmt: Format = _format(request.path_params["format"])
    name = request.path_params["repo"]
    svc.catalog.get(fmt, name)
    action_text = _text(form, "action")
    if action_text not in ("none", "read", "upload", "admin"):
        raise InvalidInput(f"unknown action {action_text!r}: read, upload, admin or none")
    action = None if action_text == "none" else Action(action_text)
    kind = _text(form, "kind") or None
    if kind not in (None, "user", "group", "special"):
        raise InvalidInput(f"unknown principal kind {kind!r}: user, group or special")
    await run_in_threadpool(
        lambda: repos.set_permission(
            svc.ctx,
            actor=session.principal.name,
            fmt=fmt,
            name=name,
            principal=_text(form, "principal"),
            action=action,
            kind=kind,
        )
    )
    return _redirect(f"/ui/admin/repositories/{fmt.value}/{name}")


async def journal(request: Request) -> Response:
    await _admin(request)
    svc = deps.services(request)
    q = request.query_params
    filters = {k: q.get(k, "")[:MAX_FILTER] for k in ("repository", "actor", "action", "project")}
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        raise InvalidInput("the limit is not a number") from None
    limit = max(1, min(limit, MAX_JOURNAL))
    entries = await run_in_threadpool(
        lambda: audit.journal(
            svc.ctx,
            repository=filters["repository"],
            actor=filters["actor"],
            action=filters["action"],
            project=filters["project"],
            limit=limit,
        )
    )
    return await _page(
        request, "admin_journal.html", {"entries": entries, "filters": filters, "limit": limit}
    )


async def admin_root(request: Request) -> Response:
    return _redirect("/ui/admin/users")


routes = [
    Route("/ui/admin", guarded(admin_root), methods=["GET", "HEAD"]),
    Route("/ui/admin/users", guarded(users), methods=["GET", "HEAD"]),
    Route("/ui/admin/users", guarded(user_create), methods=["POST"]),
    Route("/ui/admin/users/{name}", guarded(user_page), methods=["GET", "HEAD"]),
    Route("/ui/admin/users/{name}", guarded(user_change), methods=["POST"]),
    Route("/ui/admin/users/{name}/password", guarded(user_password), methods=["POST"]),
    Route("/ui/admin/users/{name}/tokens", guarded(user_token), methods=["POST"]),
    Route(
        "/ui/admin/users/{name}/tokens/{token_id}/revoke",
        guarded(user_token_revoke),
        methods=["POST"],
    ),
    Route("/ui/admin/groups", guarded(groups), methods=["GET", "HEAD"]),
    Route("/ui/admin/groups", guarded(group_create), methods=["POST"]),
    Route("/ui/admin/groups/{name}", guarded(group_change), methods=["POST"]),
    Route("/ui/admin/repositories", guarded(repositories), methods=["GET", "HEAD"]),
    Route("/ui/admin/repositories", guarded(repository_create), methods=["POST"]),
    Route("/ui/admin/repositories/{format}/{repo}", guarded(repository), methods=["GET", "HEAD"]),
    Route(
        "/ui/admin/repositories/{format}/{repo}",
        guarded(repository_update),
        methods=["POST"],
    ),
    Route(
        "/ui/admin/repositories/{format}/{repo}/permissions",
        guarded(permission),
        methods=["POST"],
    ),
    Route("/ui/admin/journal", guarded(journal), methods=["GET", "HEAD"]),
]
