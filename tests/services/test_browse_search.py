"""The web UI's search over in-memory stores: what a viewer may read, names a proxy has
cached (as the repository page lists them), the dependency-confusion rule, and the index
following uploads, yanks and deletes through the services that make them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert
from tests.builders import make_wheel, metadata_text
from tests.services.test_pypi_services import upload

from packhouse.db.schema import upstream_pages
from packhouse.services import manage
from packhouse.services.access import ANONYMOUS, Principal
from packhouse.services.browse import Browse
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format, RepoKind
from packhouse.wiring import Services

ADMIN = Principal("admin", user_id=1, is_admin=True)


def wheel(directory: Path, name: str, version: str, summary: str) -> Path:
    return make_wheel(
        directory, name, version, metadata=metadata_text(name, version, summary=summary)
    )


def cache_page(svc: Services, repo: str, name: str, status: int = 200) -> None:
    """A proxy's cached project page, as upstream_cache stores one."""
    proxy = svc.catalog.get(Format.PYPI, repo)
    now = svc.ctx.clock()
    with svc.ctx.db.write() as conn:
        conn.execute(
            insert(upstream_pages).values(
                repository_id=proxy.id, key=f"project/{name}", status=status, body=b"{}",
                size=2, digest="0" * 64, fetched_at=now, checked_at=now,
            )
        )  # fmt: skip


@pytest.fixture
def svc(memory_services: Services, tmp_path: Path) -> Services:
    ctx = memory_services.ctx
    create_repository(ctx, actor="t", name="main", fmt=Format.PYPI)
    create_repository(ctx, actor="t", name="hidden", fmt=Format.PYPI)
    create_repository(
        ctx, actor="t", name="mirror", fmt=Format.PYPI, kind=RepoKind.PROXY,
        upstream_url="https://pypi.example.invalid/simple/",
    )  # fmt: skip
    create_repository(ctx, actor="t", name="all", fmt=Format.PYPI, bases=["main", "mirror"])
    set_permission(
        ctx, actor="t", fmt=Format.PYPI, name="all", principal=":anonymous:", action=Action.READ
    )
    upload(memory_services, "main", wheel(tmp_path, "requests-helper", "1.0", "Helps requests"))
    upload(memory_services, "main", wheel(tmp_path, "shadowed", "1.0", "Ours, not theirs"))
    upload(memory_services, "hidden", wheel(tmp_path, "requests-secret", "1.0", "Private"))
    for name in ("requests", "requests-toolbelt", "shadowed"):
        cache_page(memory_services, "mirror", name)
    cache_page(memory_services, "mirror", "requests-gone", status=404)
    return memory_services


def found(svc: Services, who: Principal, query: str) -> list[tuple[str, str, bool]]:
    browse = Browse(svc.ctx, svc.catalog, svc.access, svc.upstreams)
    return [(h.entry.name, h.repository.name, h.proxied) for h in browse.search(who, query)]


def test_cached_names_are_found_where_the_repository_page_lists_them(svc: Services) -> None:
    # anonymous reads only the group: its own names and the proxy's cached ones, shown there
    assert found(svc, ANONYMOUS, "requests") == [
        ("requests", "all", True),  # the exact name first, even from the cache
        ("requests-helper", "all", False),
        ("requests-toolbelt", "all", True),
    ]  # fmt: skip
    assert found(svc, ANONYMOUS, "toolbelt") == [("requests-toolbelt", "all", True)]
    assert found(svc, ANONYMOUS, "gone") == []  # the upstream said 404: not a name
    assert found(svc, ANONYMOUS, "secret") == []  # hidden is not readable
    # a hosted name keeps the proxy's copy out: listed once, from main
    assert found(svc, ANONYMOUS, "shadowed") == [("shadowed", "all", False)]
    # the repository page's filter ranks the same way, with where each name comes from
    group = svc.catalog.get(Format.PYPI, "all")
    browse = Browse(svc.ctx, svc.catalog, svc.access, svc.upstreams)
    named = browse.names(group, "requests")
    assert [(n.name, n.origin.name) for n in named] == [
        ("requests", "mirror"), ("requests-helper", "main"), ("requests-toolbelt", "mirror")
    ]  # fmt: skip
    assert [n.shadowed_upstream for n in browse.names(group, "shadowed")] == [True]


def test_an_administrator_sees_each_name_in_the_repository_holding_it(svc: Services) -> None:
    hits = found(svc, ADMIN, "requests")
    assert hits[0] == ("requests", "mirror", True)
    assert ("requests-helper", "main", False) in hits  # main itself, before the group
    assert ("requests-secret", "hidden", False) in hits


def test_the_index_follows_yanks_and_deletes(svc: Services, tmp_path: Path) -> None:
    upload(svc, "main", wheel(tmp_path, "requests-helper", "2.0", "Helps, newly"))
    browse = Browse(svc.ctx, svc.catalog, svc.access, svc.upstreams)
    hits = browse.search(ADMIN, "requests-helper")
    assert (hits[0].entry.version, hits[0].entry.summary) == ("2.0", "Helps, newly")
    main = svc.catalog.get(Format.PYPI, "main")
    manage.set_yanked(
        svc.ctx, main, manage.Target("requests-helper", "2.0"), actor="t", yanked=True
    )
    hits = browse.search(ADMIN, "requests-helper")
    assert (hits[0].entry.version, hits[0].entry.summary) == ("1.0", "Helps requests")
    assert browse.search(ADMIN, "newly") == []
    for version in ("1.0", "2.0"):
        manage.delete(svc.ctx, main, manage.Target("requests-helper", version), actor="t")
    assert [h.entry.name for h in browse.search(ADMIN, "helper")] == []
    assert "requests-helper" not in {n.name for n in browse.names(main)}
