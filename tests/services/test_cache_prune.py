"""`packhouse cache prune` over in-memory stores: by age, by size, dry runs, shared blobs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.builders import make_wheel
from tests.services.test_pypi_services import upload

from packhouse.services.cache_prune import prune
from packhouse.services.repos import create_repository
from packhouse.services.upstream_cache import StoredFile, StoredPage
from packhouse.types import Format, RepoKind, Sha256
from packhouse.wiring import Services

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def cache_file(svc: Services, repo_id: int, name: str, data: bytes, used: datetime) -> Sha256:
    sha = Sha256(hashlib.sha256(data).hexdigest())
    svc.ctx.blobs.put_bytes(sha, data)
    with svc.ctx.db.write() as conn:
        svc.upstreams.add_file(conn, StoredFile(repo_id, name, "p", None, sha, len(data)), used)
    return sha


def proxy_id(svc: Services) -> int:
    repo = create_repository(
        svc.ctx,
        actor="t",
        name="up",
        fmt=Format.PYPI,
        kind=RepoKind.PROXY,
        upstream_url="https://pypi.example.test/simple/",
    )
    return repo.id


def test_prune_by_age_keeps_recent_files(memory_services: Services) -> None:
    svc = memory_services
    svc.ctx.clock = lambda: NOW
    pid = proxy_id(svc)
    old = cache_file(svc, pid, "old-1.0.tar.gz", b"old bytes", NOW - timedelta(days=40))
    new = cache_file(svc, pid, "new-1.0.tar.gz", b"new bytes", NOW - timedelta(days=2))
    page = StoredPage(200, None, None, None, b"[]", None, 2, "d", NOW, NOW - timedelta(days=31))
    svc.upstreams.write_page(pid, "project/old", page)

    dry = prune(svc.ctx, older_than=timedelta(days=30), dry_run=True)
    assert (dry.files, dry.file_bytes, dry.pages, dry.kept_files) == (1, 9, 1, 1)
    assert svc.ctx.blobs.exists(old)
    assert svc.upstreams.file_in(pid, "old-1.0.tar.gz") is not None

    done = prune(svc.ctx, older_than=timedelta(days=30))
    assert (done.files, done.pages, done.blobs_deleted) == (1, 1, 1)
    assert not svc.ctx.blobs.exists(old)
    assert svc.ctx.blobs.exists(new)
    assert svc.upstreams.file_in(pid, "old-1.0.tar.gz") is None
    assert svc.upstreams.read_page(pid, "project/old") is None


def test_prune_by_size_drops_least_recently_used_first(memory_services: Services) -> None:
    svc = memory_services
    svc.ctx.clock = lambda: NOW
    pid = proxy_id(svc)
    names = [f"f{i}-1.0.tar.gz" for i in range(4)]
    shas = [
        cache_file(svc, pid, n, bytes([i]) * 100, NOW - timedelta(hours=10 - i))
        for i, n in enumerate(names)
    ]
    report = prune(svc.ctx, max_size=250)
    assert (report.files, report.kept_files, report.kept_bytes) == (2, 2, 200)
    assert [svc.ctx.blobs.exists(s) for s in shas] == [False, False, True, True]


def test_a_blob_a_hosted_artifact_uses_is_never_deleted(
    memory_services: Services, tmp_path: Path
) -> None:
    svc = memory_services
    svc.ctx.clock = lambda: NOW
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    wheel = make_wheel(tmp_path, "shared", "1.0")
    upload(svc, "main", wheel)
    pid = proxy_id(svc)
    sha = cache_file(svc, pid, wheel.name, wheel.read_bytes(), NOW - timedelta(days=90))
    report = prune(svc.ctx, older_than=timedelta(days=1))
    assert (report.files, report.blobs_deleted) == (1, 0)
    assert svc.ctx.blobs.exists(sha)
