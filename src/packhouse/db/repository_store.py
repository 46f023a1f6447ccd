"""Repositories, their bases and their projects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from packhouse.db.schema import projects, repositories, repository_bases
from packhouse.errors import AlreadyExists, RepositoryNotFound
from packhouse.types import Format, RepoKind, RepoName
from packhouse.units import aware


@dataclass(frozen=True)
class Repository:
    id: int
    name: RepoName
    format: Format
    kind: RepoKind
    description: str
    uploads_enabled: bool
    upstream_url: str | None
    allow_upstream: tuple[str, ...]
    bases: tuple[RepoName, ...]
    last_serial: int
    proxy: ProxySettings = field(default_factory=lambda: ProxySettings())
    cooldown: Cooldown = field(default_factory=lambda: Cooldown())

    @property
    def qualified_name(self) -> str:
        """`format/name`: how the journal and token scopes name a repository."""
        return f"{self.format}/{self.name}"


@dataclass(frozen=True)
class ProxySettings:
    """How a proxy reaches its upstream. `password` is a secret: never shown or logged
    (the dataclass repr hides it)."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ttl: int | None = None  # seconds; None: the `upstream_ttl` setting
    offline: bool = False

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.password is None:
            return None
        return (self.user or "__token__", self.password)


@dataclass(frozen=True)
class Cooldown:
    """Upstream files a repository leaves out: younger than `min_age` seconds, or newer
    than `exclude_newer`, unless their name is in `exempt` (normalised)."""

    min_age: int | None = None
    exclude_newer: datetime | None = None
    exempt: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.min_age is not None or self.exclude_newer is not None

    def cutoff(self, now: datetime) -> datetime | None:
        """Files uploaded after this time are held back (None: none are)."""
        limits = []
        if self.min_age is not None:
            limits.append(now - timedelta(seconds=self.min_age))
        if self.exclude_newer is not None:
            limits.append(aware(self.exclude_newer))
        return min(limits) if limits else None


@dataclass(frozen=True)
class Project:
    id: int
    repository_id: int
    name: str
    display_name: str
    last_serial: int


def _bases(conn: Connection, repo_id: int) -> tuple[RepoName, ...]:
    rows = conn.execute(
        select(repositories.c.name)
        .select_from(
            repository_bases.join(repositories, repositories.c.id == repository_bases.c.base_id)
        )
        .where(repository_bases.c.repository_id == repo_id)
        .order_by(repository_bases.c.position)
    )
    return tuple(RepoName(r.name) for r in rows)


def _from_row(conn: Connection, r: Row[Any]) -> Repository:
    return Repository(
        id=r.id,
        name=RepoName(r.name),
        format=Format(r.format),
        kind=RepoKind(r.kind),
        description=r.description,
        uploads_enabled=r.uploads_enabled,
        upstream_url=r.upstream_url,
        allow_upstream=tuple(r.allow_upstream or ()),
        bases=_bases(conn, r.id),
        last_serial=r.last_serial,
        proxy=ProxySettings(
            user=r.upstream_user,
            password=r.upstream_password,
            ttl=r.upstream_ttl,
            offline=bool(r.offline),
        ),
        cooldown=Cooldown(
            min_age=r.min_age,
            exclude_newer=aware(r.exclude_newer) if r.exclude_newer else None,
            exempt=tuple(r.cooldown_exempt or ()),
        ),
    )


def get(conn: Connection, fmt: Format, name: str) -> Repository:
    row = conn.execute(
        select(repositories).where(repositories.c.format == fmt, repositories.c.name == name)
    ).first()
    if row is None:
        raise RepositoryNotFound(f"there is no {fmt} repository named {name!r}")
    return _from_row(conn, row)


def find(conn: Connection, fmt: Format, name: str) -> Repository | None:
    try:
        return get(conn, fmt, name)
    except RepositoryNotFound:
        return None


def list_all(conn: Connection, fmt: Format | None = None) -> Sequence[Repository]:
    query = select(repositories).order_by(repositories.c.format, repositories.c.name)
    if fmt is not None:
        query = query.where(repositories.c.format == fmt)
    return [_from_row(conn, row) for row in conn.execute(query)]


def create(
    conn: Connection,
    *,
    name: RepoName,
    fmt: Format,
    kind: RepoKind,
    serial: int,
    description: str = "",
    upstream_url: str | None = None,
    uploads_enabled: bool = True,
) -> Repository:
    if find(conn, fmt, name) is not None:
        raise AlreadyExists(f"a {fmt} repository named {name!r} already exists")
    conn.execute(
        insert(repositories).values(
            name=name,
            format=fmt,
            kind=kind,
            description=description,
            uploads_enabled=uploads_enabled,
            upstream_url=upstream_url,
            allow_upstream=[],
            last_serial=serial,
            created_at=datetime.now(UTC),
        )
    )
    return get(conn, fmt, name)


def set_bases(conn: Connection, repo: Repository, bases: Sequence[Repository]) -> None:
    conn.execute(delete(repository_bases).where(repository_bases.c.repository_id == repo.id))
    for position, base in enumerate(bases):
        conn.execute(
            insert(repository_bases).values(
                repository_id=repo.id, position=position, base_id=base.id
            )
        )


def update_settings(conn: Connection, repo_id: int, **values: Any) -> None:
    """Set columns of a repository (the service validated them)."""
    conn.execute(update(repositories).where(repositories.c.id == repo_id).values(**values))


def touch(conn: Connection, repo_id: int, serial: int) -> None:
    conn.execute(
        update(repositories).where(repositories.c.id == repo_id).values(last_serial=serial)
    )


def get_project(conn: Connection, repo_id: int, name: str) -> Project | None:
    row = conn.execute(
        select(projects).where(projects.c.repository_id == repo_id, projects.c.name == name)
    ).first()
    if row is None:
        return None
    return Project(row.id, row.repository_id, row.name, row.display_name, row.last_serial)


def ensure_project(
    conn: Connection, repo_id: int, name: str, display_name: str, serial: int
) -> Project:
    """Find or create the project and stamp it with `serial` (the change being made)."""
    existing = get_project(conn, repo_id, name)
    if existing is None:
        result = conn.execute(
            insert(projects).values(
                repository_id=repo_id, name=name, display_name=display_name, last_serial=serial
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Project(int(key[0]), repo_id, name, display_name, serial)
    conn.execute(update(projects).where(projects.c.id == existing.id).values(last_serial=serial))
    return Project(existing.id, repo_id, name, existing.display_name, serial)


def project_names(conn: Connection, repo_id: int) -> Sequence[tuple[str, str]]:
    """(normalised, as written) for every project with at least one live artifact."""
    from packhouse.db.schema import artifacts

    live = (
        select(artifacts.c.project_id)
        .where(artifacts.c.repository_id == repo_id, artifacts.c.deleted.is_(False))
        .distinct()
        .subquery()
    )
    rows = conn.execute(
        select(projects.c.name, projects.c.display_name)
        .where(projects.c.id.in_(select(live.c.project_id)))
        .order_by(projects.c.name)
    )
    return [(r.name, r.display_name) for r in rows]


def project_serials(conn: Connection, repo_ids: Sequence[int], name: str) -> dict[int, int]:
    rows = conn.execute(
        select(projects.c.repository_id, projects.c.last_serial).where(
            projects.c.repository_id.in_(repo_ids), projects.c.name == name
        )
    )
    return {r.repository_id: r.last_serial for r in rows}


def repo_serials(conn: Connection, repo_ids: Sequence[int] | None) -> dict[int, int]:
    """The `last_serial` of these repositories (None: of every one)."""
    query = select(repositories.c.id, repositories.c.last_serial)
    if repo_ids is not None:
        query = query.where(repositories.c.id.in_(repo_ids))
    return {r.id: r.last_serial for r in conn.execute(query)}
