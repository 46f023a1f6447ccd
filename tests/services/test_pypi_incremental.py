"""A big project's simple page after a change: rendered from kept parts plus the changed
artifacts only, and byte for byte what a full render gives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from tests.builders import make_sdist, make_wheel

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.errors import ProjectNotFound
from packhouse.services import manage
from packhouse.services.access import Principal
from packhouse.services.context import Context
from packhouse.services.pypi_reads import PypiReader
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format
from packhouse.wiring import Services

ALICE = Principal("alice", user_id=1)
KINDS: tuple[Literal["html", "json"], ...] = ("html", "json")
FILES = 240  # above the reader's default parts_min_files (200)


def upload(svc: Services, repo: str, path: Path) -> None:
    target = svc.catalog.get(Format.PYPI, repo)
    incoming = IncomingFile(svc.ctx.tmp_dir, 10_000_000)
    incoming.write(path.read_bytes())
    incoming.finish()
    name, version = path.name.split("-")[:2]
    form = {":action": "file_upload", "name": name, "version": version.removesuffix(".tar.gz")}
    try:
        upload_pypi(svc.ctx, target, ALICE, form, path.name, incoming)
    finally:
        incoming.discard()


def version(i: int) -> str:
    # Mixed shapes so the order is not the upload order: pre-releases, posts, zero padding.
    return [f"{i // 10}.{i % 10}", f"{i // 10}.{i % 10}rc1", f"{i // 10}.{i % 10}.post1"][i % 3]


def seed(svc: Services, tmp_path: Path) -> Services:
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    for i in range(FILES):
        directory = tmp_path / f"w{i}"
        directory.mkdir()
        make = make_sdist if i % 7 == 0 else make_wheel
        upload(svc, "main", make(directory, "Big.Project", version(i)))
    return svc


@pytest.fixture
def svc(memory_services: Services, tmp_path: Path) -> Services:
    return seed(memory_services, tmp_path)


@pytest.fixture
def file_svc(tmp_path: Path) -> Iterator[Services]:
    """Over a SQLite file, which (unlike the in-memory database) threads can read at once."""
    db = Database(f"sqlite:///{tmp_path / 'packhouse.db'}")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    svc = Services.of(Context(settings=Settings(data=tmp_path), db=db, blobs=MemoryBlobStore()))
    yield seed(svc, tmp_path)
    svc.close()


def pages(svc: Services, repo: str, reader: PypiReader | None = None) -> dict[str, bytes]:
    reader = reader or svc.pypi
    target = svc.catalog.get(Format.PYPI, repo)
    return {k: reader.project_page(target, "big-project", k).body for k in KINDS}


def full_render(svc: Services, repo: str) -> dict[str, bytes]:
    """The page rendered whole, by a reader that keeps no parts, past the page cache."""
    svc.ctx.pages.clear()
    return pages(svc, repo, PypiReader(svc.ctx, svc.catalog, svc.pypi.proxy, parts_min_files=10**9))


def check(svc: Services, repo: str = "main") -> dict[str, bytes]:
    """The (incremental) page, after asserting it equals a full render, byte for byte."""
    incremental = pages(svc, repo)
    assert incremental == full_render(svc, repo)
    return incremental


def test_after_each_change_the_page_is_read_incrementally_and_equals_a_full_render(
    svc: Services, tmp_path: Path
) -> None:
    stats = svc.pypi.parts_stats
    check(svc)
    assert stats.full_reads == 1  # the first render reads everything and keeps the parts
    repo = svc.catalog.get(Format.PYPI, "main")

    def changed(expect_rows: int) -> dict[str, bytes]:
        full, rows = stats.full_reads, stats.rows_read
        body = check(svc)
        assert stats.full_reads == full  # nothing read whole (check()'s own reader aside)
        assert stats.rows_read == rows + expect_rows  # only the changed artifacts
        return body

    (tmp_path / "new").mkdir()
    upload(svc, "main", make_wheel(tmp_path / "new", "big-project", "10.0a1"))
    body = changed(1)
    assert b"big_project-10.0a1-py3-none-any.whl" in body["html"]

    manage.set_yanked(svc.ctx, repo, manage.Target("big-project", "3.3"), actor="t", yanked=True)
    body = changed(1)
    assert b'data-yanked=""' in body["html"]
    manage.set_yanked(
        svc.ctx,
        repo,
        manage.Target("big-project", version(55)),
        actor="t",
        yanked=True,
        reason="<bad>",
    )
    body = changed(1)
    assert b'data-yanked="&lt;bad&gt;"' in body["html"]
    assert b'"yanked":"<bad>"' in body["json"]

    manage.set_yanked(svc.ctx, repo, manage.Target("big-project", "3.3"), actor="t", yanked=False)
    body = changed(1)
    assert b'data-yanked=""' not in body["html"]

    # Deleting the only file of a version drops the version from the JSON `versions`.
    manage.delete(svc.ctx, repo, manage.Target("big-project", "0.7rc1"), actor="t")
    body = changed(1)
    assert b'"0.7rc1"' not in body["json"]
    manage.delete(svc.ctx, repo, manage.Target("big-project", "10.0a1"), actor="t")
    body = changed(1)
    assert b"10.0a1" not in body["html"]

    # Several changes between two renders are read together.
    for v in ("0.0.dev1", "99"):
        (tmp_path / v).mkdir()
        upload(svc, "main", make_wheel(tmp_path / v, "big-project", v))
    manage.set_yanked(
        svc.ctx, repo, manage.Target("big-project", version(23)), actor="t", yanked=True
    )
    changed(3)
    assert stats.fallbacks == 0

    # Nothing changed: the page comes from the page cache, no read at all.
    rows = stats.rows_read
    assert pages(svc, "main") == body | pages(svc, "main")
    assert stats.rows_read == rows


def test_resolution_order_changes_and_shadowing_follow_too(svc: Services, tmp_path: Path) -> None:
    """A repository on top of `main`: its files win over main's of the same name, and a
    change in either is applied; a new repository order starts from a full read."""
    create_repository(svc.ctx, actor="t", name="team", fmt=Format.PYPI, bases=["main"])
    check(svc, "team")
    stats = svc.pypi.parts_stats
    full = stats.full_reads

    (tmp_path / "t1").mkdir()
    upload(svc, "team", make_wheel(tmp_path / "t1", "big-project", "50.0"))  # new in team
    (tmp_path / "m1").mkdir()
    upload(svc, "main", make_wheel(tmp_path / "m1", "big-project", "51.0"))
    team = check(svc, "team")
    assert b"50.0" in team["html"]
    assert b"51.0" in team["html"]
    # The same filename in both, different bytes: team's wins, then main's once team's goes.
    (tmp_path / "t2").mkdir()
    upload(svc, "team", make_wheel(tmp_path / "t2", "big-project", "51.0", module_source="x=1\n"))
    check(svc, "team")
    manage.delete(
        svc.ctx,
        svc.catalog.get(Format.PYPI, "team"),
        manage.Target("big-project", "51.0"),
        actor="t",
    )
    check(svc, "team")
    manage.delete(
        svc.ctx,
        svc.catalog.get(Format.PYPI, "main"),
        manage.Target("big-project", "51.0"),
        actor="t",
    )
    check(svc, "team")
    assert stats.full_reads == full
    assert stats.fallbacks == 0


def test_a_project_whose_files_are_all_deleted_is_gone(svc: Services) -> None:
    check(svc)
    repo = svc.catalog.get(Format.PYPI, "main")
    for i in range(FILES):
        manage.delete(svc.ctx, repo, manage.Target("big-project", version(i)), actor="t")
    with pytest.raises(ProjectNotFound):
        pages(svc, "main")
    assert svc.pypi.parts_stats.full_reads == 1


def test_inconsistent_parts_fall_back_to_a_full_read(svc: Services, tmp_path: Path) -> None:
    check(svc)
    stats = svc.pypi.parts_stats
    # Parts that claim to be newer than the database (as an older snapshot would look).
    for parts, _ in svc.pypi._parts._entries.values():
        parts.projects = {r: (p, s + 1000) for r, (p, s) in parts.projects.items()}
    (tmp_path / "n").mkdir()
    upload(svc, "main", make_wheel(tmp_path / "n", "big-project", "77"))
    full = stats.full_reads
    check(svc)
    assert stats.fallbacks == 1
    assert stats.full_reads == full + 1  # the fallback (check()'s full render has its own)


def test_small_projects_and_a_small_budget_keep_no_parts(
    memory_services: Services, tmp_path: Path
) -> None:
    svc = memory_services
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    upload(svc, "main", make_wheel(tmp_path, "small", "1.0"))
    target = svc.catalog.get(Format.PYPI, "main")
    svc.pypi.project_page(target, "small", "html")
    assert len(svc.pypi._parts) == 0
    tiny = PypiReader(svc.ctx, svc.catalog, svc.pypi.proxy, parts_min_files=1, parts_max_bytes=100)
    svc.ctx.pages.clear()
    tiny.project_page(target, "small", "json")
    assert len(tiny._parts) == 0
    roomy = PypiReader(svc.ctx, svc.catalog, svc.pypi.proxy, parts_min_files=1)
    svc.ctx.pages.clear()
    roomy.project_page(target, "small", "json")
    assert len(roomy._parts) == 1
    assert roomy._parts.size > 0


def test_concurrent_renders_after_changes_agree(file_svc: Services, tmp_path: Path) -> None:
    svc = file_svc
    check(svc)
    target = svc.catalog.get(Format.PYPI, "main")
    for n in range(3):
        (tmp_path / f"c{n}").mkdir()
        upload(svc, "main", make_wheel(tmp_path / f"c{n}", "big-project", f"60.{n}"))
        bodies: list[bytes] = []
        errors: list[BaseException] = []

        def render(
            kind: Literal["html", "json"],
            bodies: list[bytes] = bodies,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                bodies.append(svc.pypi.project_page(target, "big-project", kind).body)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=render, args=(KINDS[i % 2],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        expected = full_render(svc, "main")
        assert set(bodies) == {expected["html"], expected["json"]}


def test_a_catch_up_cut_short_is_not_used_again(
    svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packhouse.services import pypi_parts

    check(svc)
    (tmp_path / "x").mkdir()
    upload(svc, "main", make_wheel(tmp_path / "x", "big-project", "88"))

    def boom(row: object) -> None:
        raise RuntimeError("cut short")

    with monkeypatch.context() as patched:
        patched.setattr(pypi_parts, "part_of", boom)
        with pytest.raises(RuntimeError):
            pages(svc, "main")
    check(svc)
    assert svc.pypi.parts_stats.fallbacks == 1
