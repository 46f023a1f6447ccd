"""Repositories: creation, listing, bases and the resolution order."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from packhouse.db import journal_store, repository_store, user_store
from packhouse.db.repository_store import Repository
from packhouse.errors import InvalidInput
from packhouse.services.context import Context
from packhouse.types import Action, Format, RepoKind, repo_name

SPECIAL_PRINCIPALS = (":anonymous:", ":authenticated:")


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
) -> Repository:
    valid = repo_name(name)
    if kind is RepoKind.PROXY and not upstream_url:
        raise InvalidInput("a proxy repository needs an upstream URL")
    with ctx.db.write() as conn:
        serial = journal_store.append(
            conn,
            actor=actor,
            action="repo.create",
            repository=f"{fmt}/{valid}",
            detail={"format": fmt.value, "kind": kind.value, "public": public},
        )
        repo = repository_store.create(
            conn,
            name=valid,
            fmt=fmt,
            kind=kind,
            serial=serial,
            description=description,
            upstream_url=upstream_url,
            uploads_enabled=kind is RepoKind.HOSTED,
        )
        if bases:
            base_repos = [repository_store.get(conn, fmt, b) for b in bases]
            repository_store.set_bases(conn, repo, base_repos)
            _refuse_cycles(conn, repo)
        if public:
            user_store.grant(conn, repo.id, "special", ":anonymous:", Action.READ.value)
        return repository_store.get(conn, fmt, valid)


def set_bases(ctx: Context, *, actor: str, fmt: Format, name: str, bases: Sequence[str]) -> None:
    with ctx.db.write() as conn:
        repo = repository_store.get(conn, fmt, name)
        serial = journal_store.append(
            conn,
            actor=actor,
            action="repo.bases",
            repository=repo.qualified_name,
            detail={"bases": list(bases)},
        )
        repository_store.set_bases(conn, repo, [repository_store.get(conn, fmt, b) for b in bases])
        _refuse_cycles(conn, repo)
        repository_store.touch(conn, repo.id, serial)


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
) -> None:
    """Grant `action` to a principal (None revokes). `kind` is user, group or special."""
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
        serial = journal_store.append(
            conn,
            actor=actor,
            action="perm.grant" if action else "perm.revoke",
            repository=repo.qualified_name,
            detail={"principal": principal, "kind": principal_kind, "action": action},
        )
        if action is None:
            user_store.revoke(conn, repo.id, principal_kind, principal)
        else:
            user_store.grant(conn, repo.id, principal_kind, principal, action.value)
        repository_store.touch(conn, repo.id, serial)
