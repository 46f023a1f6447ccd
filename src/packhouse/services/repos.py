"""Repositories: creation, listing, bases and the resolution order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from sqlalchemy import Connection

from packhouse.auth.redact import redact_url
from packhouse.db import journal_store, repository_store, user_store
from packhouse.db.repository_store import Repository
from packhouse.errors import InvalidInput
from packhouse.services.context import Context
from packhouse.types import Action, Format, RepoKind, repo_name
from packhouse.upstream.netpolicy import NetworkPolicy

SPECIAL_PRINCIPALS = (":anonymous:", ":authenticated:")


@dataclass(frozen=True)
class RepoSettings:
    """What `create_repository` and `update_repository` may set; None leaves a field as it
    is (on create: the default). `clear` names fields to reset: upstream_auth, ttl,
    min_age, exclude_newer."""

    bases: Sequence[str] | None = None
    description: str | None = None
    upstream_url: str | None = None
    upstream_user: str | None = None
    upstream_password: str | None = None
    ttl: int | None = None
    offline: bool | None = None
    allow_upstream: Sequence[str] | None = None
    min_age: int | None = None
    exclude_newer: datetime | None = None
    cooldown_exempt: Sequence[str] | None = None
    clear: frozenset[str] = frozenset()


CLEARABLE = frozenset({"upstream_auth", "ttl", "min_age", "exclude_newer"})
_MAX_TTL = 365 * 86400
_MAX_AGE = 3650 * 86400


def create_repository(
    ctx: Context,
    *,
    actor: str,
    name: str,
    fmt: Format,
    kind: RepoKind = RepoKind.HOSTED,
    bases: Sequence[str] = (),
    public: bool = False,
    description: str = "",
    upstream_url: str | None = None,
    settings: RepoSettings | None = None,
) -> Repository:
    """A hosted repository, or a proxy of `upstream_url` (kind PROXY)."""
    valid = repo_name(name)
    wanted = settings or RepoSettings()
    if kind is RepoKind.PROXY and not upstream_url:
        raise InvalidInput("a proxy repository needs an upstream URL (--upstream URL)")
    if kind is RepoKind.HOSTED and upstream_url:
        raise InvalidInput("only a proxy repository has an upstream URL")
    if kind is RepoKind.PROXY and bases:
        raise InvalidInput("a proxy repository has no bases: make a repository with bases")
    if kind is RepoKind.HOSTED and (
        wanted.upstream_user or wanted.upstream_password or wanted.ttl or wanted.offline
    ):
        raise InvalidInput("upstream credentials, ttl and offline are for proxy repositories")
    url = check_upstream_url(upstream_url, _policy(ctx)) if upstream_url else None
    columns = _columns(fmt, wanted)
    with ctx.db.write() as conn:
        serial = journal_store.append(
            conn,
            actor=actor,
            action="repo.create",
            repository=f"{fmt}/{valid}",
            detail={
                "format": fmt.value,
                "kind": kind.value,
                "public": public,
                **({"upstream": redact_url(url)} if url else {}),
                **_journal_detail(columns),
            },
        )
        repo = repository_store.create(
            conn,
            name=valid,
            fmt=fmt,
            kind=kind,
            serial=serial,
            description=description,
            upstream_url=url,
            uploads_enabled=kind is RepoKind.HOSTED,
        )
        if columns:
            repository_store.update_settings(conn, repo.id, **columns)
        if bases:
            base_repos = [repository_store.get(conn, fmt, b) for b in bases]
            repository_store.set_bases(conn, repo, base_repos)
            _refuse_cycles(conn, repo)
        if public:
            user_store.grant(conn, repo.id, "special", ":anonymous:", Action.READ.value)
        return repository_store.get(conn, fmt, valid)


def update_repository(
    ctx: Context, *, actor: str, fmt: Format, name: str, settings: RepoSettings
) -> Repository:
    """Change a repository's bases, upstream, cooldown or allow list (journalled)."""
    unknown = settings.clear - CLEARABLE
    if unknown:
        raise InvalidInput(f"cannot clear {sorted(unknown)}: only {sorted(CLEARABLE)}")
    with ctx.db.write() as conn:
        repo = repository_store.get(conn, fmt, name)
        proxy_only = (
            (settings.upstream_url or settings.upstream_user or settings.upstream_password)
            is not None
            or settings.ttl is not None
            or settings.offline is not None
        )
        if repo.kind is not RepoKind.PROXY and (
            proxy_only or settings.clear & {"upstream_auth", "ttl"}
        ):
            raise InvalidInput(
                f"{repo.qualified_name} is not a proxy: upstream URL, credentials, ttl and"
                " offline are for proxy repositories"
            )
        if repo.kind is RepoKind.PROXY and settings.bases:
            raise InvalidInput("a proxy repository has no bases: make a repository with bases")
        columns = _columns(fmt, settings)
        if settings.upstream_url is not None:
            columns["upstream_url"] = check_upstream_url(settings.upstream_url, _policy(ctx))
        if settings.description is not None:
            columns["description"] = settings.description
        if not columns and settings.bases is None:
            raise InvalidInput("nothing to change: give at least one setting")
        detail = _journal_detail(columns)
        if settings.bases is not None:
            detail["bases"] = list(settings.bases)
        serial = journal_store.append(
            conn, actor=actor, action="repo.update", repository=repo.qualified_name, detail=detail
        )
        if columns:
            repository_store.update_settings(conn, repo.id, **columns)
        if settings.bases is not None:
            bases = [repository_store.get(conn, fmt, b) for b in settings.bases]
            repository_store.set_bases(conn, repo, bases)
            _refuse_cycles(conn, repo)
        repository_store.touch(conn, repo.id, serial)
        return repository_store.get(conn, fmt, name)


def _policy(ctx: Context) -> NetworkPolicy:
    return NetworkPolicy(ctx.settings.upstream_allowed_networks)


def check_upstream_url(url: str, policy: NetworkPolicy) -> str:
    """An upstream must be an http(s) URL with a host and no credentials in it (those are
    given apart, so they are never shown with the URL), and a host written as an address
    must be one `policy` allows (a name is checked each time it is resolved). Returned
    without a trailing slash for conda channels and with one for PyPI indexes is the
    caller's business."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise InvalidInput(f"the upstream URL {redact_url(text)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"the upstream URL {redact_url(text)!r} must start with http:// or https://"
            " (file:// and other schemes are refused)"
        )
    if not parts.hostname:
        raise InvalidInput(f"the upstream URL {redact_url(text)!r} has no host")
    if parts.username or parts.password:
        raise InvalidInput(
            "the upstream URL holds credentials: give --upstream-user and the password or"
            " token in a file or the environment instead, so they are never shown"
        )
    if parts.fragment or len(text) > 2000:
        raise InvalidInput(f"the upstream URL {redact_url(text)!r} is not usable as an upstream")
    refused = policy.numeric_host_refusal(parts.hostname)
    if refused:
        raise InvalidInput(
            f"the upstream URL {redact_url(text)!r} is refused: {refused}, and upstreams"
            " there are refused unless the setting upstream_allowed_networks lists its network"
        )
    return text


def normalise_names(fmt: Format, names: Sequence[str]) -> list[str]:
    """Project names (PyPI, normalised) or conda package names (lowercase), validated."""
    out: list[str] = []
    for raw in names:
        text = raw.strip()
        if not text:
            continue
        if fmt is Format.PYPI:
            if not _PYPI_NAME.match(text):
                raise InvalidInput(f"{text[:80]!r} is not a valid project name")
            out.append(canonicalize_name(text))
        else:
            if not _CONDA_NAME.match(text.lower()):
                raise InvalidInput(f"{text[:80]!r} is not a valid conda package name")
            out.append(text.lower())
    return sorted(set(out))


_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]{0,198}[A-Z0-9])$", re.IGNORECASE)
_CONDA_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,199}$")


def _columns(fmt: Format, s: RepoSettings) -> dict[str, Any]:
    """The repository columns a RepoSettings sets, validated."""
    columns: dict[str, Any] = {}
    if s.ttl is not None:
        if not 0 <= s.ttl <= _MAX_TTL:
            raise InvalidInput(f"the ttl must be between 0 and {_MAX_TTL} seconds")
        columns["upstream_ttl"] = s.ttl
    if s.min_age is not None:
        if not 0 < s.min_age <= _MAX_AGE:
            raise InvalidInput("the minimum age must be more than 0 and at most ten years")
        columns["min_age"] = s.min_age
    if s.exclude_newer is not None:
        columns["exclude_newer"] = s.exclude_newer
    if s.offline is not None:
        columns["offline"] = s.offline
    if s.upstream_user is not None:
        if not s.upstream_user or len(s.upstream_user) > 200 or ":" in s.upstream_user:
            raise InvalidInput("the upstream user must be 1 to 200 characters, without ':'")
        columns["upstream_user"] = s.upstream_user
    if s.upstream_password is not None:
        if not s.upstream_password.strip() or len(s.upstream_password) > 4096:
            raise InvalidInput("the upstream password or token is empty or too long")
        columns["upstream_password"] = s.upstream_password.strip()
    if s.allow_upstream is not None:
        columns["allow_upstream"] = normalise_names(fmt, s.allow_upstream)
    if s.cooldown_exempt is not None:
        columns["cooldown_exempt"] = normalise_names(fmt, s.cooldown_exempt)
    for name in s.clear:
        if name == "upstream_auth":
            columns["upstream_user"] = columns["upstream_password"] = None
        elif name == "ttl":
            columns["upstream_ttl"] = None
        else:
            columns[name] = None
    return columns


def _journal_detail(columns: dict[str, Any]) -> dict[str, Any]:
    """What the journal says of changed settings: never the upstream secret itself."""
    detail: dict[str, Any] = {}
    for key, value in columns.items():
        if key == "upstream_password":
            detail[key] = "set" if value else "cleared"
        elif isinstance(value, datetime):
            detail[key] = value.isoformat()
        else:
            detail[key] = value
    return detail


def _refuse_cycles(conn: Connection, repo: Repository) -> None:
    seen: set[str] = set()
    stack = [(repo.name, ())]  # type: list[tuple[str, tuple[str, ...]]]
    while stack:
        name, path = stack.pop()
        if name in path:
            chain = " -> ".join((*path, name))
            raise InvalidInput(f"the bases of {repo.name!r} would form a cycle: {chain}")
        if name in seen:
            continue
        seen.add(name)
        current = repository_store.get(conn, repo.format, name)
        stack.extend((b, (*path, name)) for b in current.bases)


def resolution_order(conn: Connection, repo: Repository) -> list[Repository]:
    """The repository, then its bases depth-first, each once, proxies last (devpi's order)."""
    ordered: list[Repository] = []
    seen: set[str] = set()

    def visit(r: Repository) -> None:
        if r.name in seen:
            return
        seen.add(r.name)
        ordered.append(r)
        for base in r.bases:
            visit(repository_store.get(conn, r.format, base))

    visit(repo)
    hosted = [r for r in ordered if r.kind is not RepoKind.PROXY]
    return hosted + [r for r in ordered if r.kind is RepoKind.PROXY]


def set_permission(
    ctx: Context,
    *,
    actor: str,
    fmt: Format,
    name: str,
    principal: str,
    action: Action | None,
    kind: str | None = None,
) -> str | None:
    """Grant `action` to a principal (None revokes), replacing what it held there, which is
    returned (None: nothing). `kind` is user, group or special."""
    principal_kind = kind or ("special" if principal in SPECIAL_PRINCIPALS else "user")
    if principal_kind == "special" and principal not in SPECIAL_PRINCIPALS:
        raise InvalidInput(
            f"unknown special principal {principal!r}: use one of {SPECIAL_PRINCIPALS}"
        )
    with ctx.db.write() as conn:
        repo = repository_store.get(conn, fmt, name)
        if principal_kind == "user":
            user_store.require_user(conn, principal)
        elif principal_kind == "group":
            user_store.require_group(conn, principal)
        before = user_store.granted(conn, repo.id, principal_kind, principal)
        serial = journal_store.append(
            conn,
            actor=actor,
            action="perm.grant" if action else "perm.revoke",
            repository=repo.qualified_name,
            detail={
                "principal": principal,
                "kind": principal_kind,
                "action": action,
                "was": before,
            },
        )
        if action is None:
            user_store.revoke(conn, repo.id, principal_kind, principal)
        else:
            user_store.grant(conn, repo.id, principal_kind, principal, action.value)
        repository_store.touch(conn, repo.id, serial)
    return before


def set_bases(ctx: Context, *, actor: str, fmt: Format, name: str, bases: Sequence[str]) -> None:
    update_repository(ctx, actor=actor, fmt=fmt, name=name, settings=RepoSettings(bases=bases))
