"""The shared commit/drop flow keeps every live artifact's bytes, whatever runs beside it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.builders import make_wheel
from tests.services.test_pypi_services import upload
from typer.testing import CliRunner

from packhouse.cli.main import app
from packhouse.errors import Unavailable
from packhouse.services import blob_claims, manage
from packhouse.services.repos import create_repository
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format, Sha256
from packhouse.wiring import Services


class HookedStore(MemoryBlobStore):
    """Runs `hook` once, right after a put_file: another process acting in between."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[], None] | None = None

    def put_file(self, sha256: Sha256, path: Path) -> None:
        super().put_file(sha256, path)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


def test_a_delete_between_blob_write_and_commit_cannot_lose_the_bytes(
    memory_services: Services, tmp_path: Path
) -> None:
    svc = memory_services
    store = HookedStore()
    svc.ctx.blobs = store
    for name in ("a", "b"):
        create_repository(svc.ctx, actor="t", name=name, fmt=Format.PYPI)
    wheel = make_wheel(tmp_path, "shared-bytes", "1.0")
    first = upload(svc, "a", wheel)

    # While the same bytes are uploaded to b, a's copy is deleted: at that moment nothing
    # live uses the blob, so the delete drops it; the upload must put it back.
    repo_a = svc.catalog.get(Format.PYPI, "a")
    store.hook = lambda: manage.delete(
        svc.ctx, repo_a, manage.Target("shared-bytes", "1.0"), actor="t"
    )
    assert upload(svc, "b", wheel).created
    assert store.exists(Sha256(first.sha256))
    found = svc.pypi.find_file(first.sha256, wheel.name)
    assert [r.name for r in found.holders] == ["b"]


def test_bytes_shared_by_two_repositories_outlive_one_delete(
    memory_services: Services, tmp_path: Path
) -> None:
    svc = memory_services
    for name in ("a", "b"):
        create_repository(svc.ctx, actor="t", name=name, fmt=Format.PYPI)
    wheel = make_wheel(tmp_path, "twice", "1.0")
    sha = Sha256(upload(svc, "a", wheel).sha256)
    upload(svc, "b", wheel)
    manage.delete(
        svc.ctx, svc.catalog.get(Format.PYPI, "a"), manage.Target("twice", "1.0"), actor="t"
    )
    assert svc.ctx.blobs.exists(sha)
    manage.delete(
        svc.ctx, svc.catalog.get(Format.PYPI, "b"), manage.Target("twice", "1.0"), actor="t"
    )
    assert not svc.ctx.blobs.exists(sha)


def test_fsck_removes_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    env = {"PACKHOUSE_ADMIN_PASSWORD": "x", "PACKHOUSE_DATA": str(data)}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    blobs = data / "blobs"
    young, old = "a" * 64, "b" * 64
    for sha in (young, old):
        path = blobs / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True)
        path.write_bytes(b"orphan")
    two_hours_ago = time.time() - 7200
    os.utime(blobs / old[:2] / old[2:4] / old, (two_hours_ago, two_hours_ago))

    result = runner.invoke(app, ["fsck", "--remove"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{young} (young, kept)" in result.output
    assert f"{old} (removed)" in result.output
    assert (blobs / young[:2] / young[2:4] / young).exists()
    assert not (blobs / old[:2] / old[2:4] / old).exists()


class LockWatchingStore(MemoryBlobStore):
    """Records every blob-store call made while a write transaction is open."""

    def __init__(self) -> None:
        super().__init__()
        self.in_write = 0
        self.under_lock: list[str] = []

    def _note(self, what: str) -> None:
        if self.in_write:
            self.under_lock.append(what)

    def put_file(self, sha256: Sha256, path: Path) -> None:
        self._note("put_file")
        super().put_file(sha256, path)

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        self._note("put_bytes")
        super().put_bytes(sha256, data)

    def exists(self, sha256: Sha256) -> bool:
        self._note("exists")
        return super().exists(sha256)

    def delete(self, sha256: Sha256) -> None:
        self._note("delete")
        super().delete(sha256)


def test_no_blob_store_call_runs_inside_a_write_transaction(
    memory_services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an S3 request inside the write transaction would stall every writer of every process
    svc = memory_services
    store = LockWatchingStore()
    svc.ctx.blobs = store
    write = svc.ctx.db.write

    @contextmanager
    def watched() -> Iterator[Any]:
        with write() as conn:
            store.in_write += 1
            try:
                yield conn
            finally:
                store.in_write -= 1

    monkeypatch.setattr(svc.ctx.db, "write", watched)
    create_repository(svc.ctx, actor="t", name="a", fmt=Format.PYPI)
    wheel = make_wheel(tmp_path, "watched", "1.0")
    sha = Sha256(upload(svc, "a", wheel).sha256)
    assert store.exists(sha)
    repo = svc.catalog.get(Format.PYPI, "a")
    manage.delete(svc.ctx, repo, manage.Target("watched", "1.0"), actor="t")
    assert not store.exists(sha)
    assert store.under_lock == []


def test_an_upload_waits_for_a_delete_of_the_same_bytes_then_gives_up(
    memory_services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = memory_services
    store = HookedDeleteStore()
    svc.ctx.blobs = store
    for name in ("a", "b"):
        create_repository(svc.ctx, actor="t", name=name, fmt=Format.PYPI)
    wheel = make_wheel(tmp_path, "racing", "1.0")
    sha = Sha256(upload(svc, "a", wheel).sha256)
    monkeypatch.setattr(blob_claims, "WAIT_SECONDS", 0.2)
    refused: list[str] = []

    def upload_meanwhile() -> None:  # another process, while the delete talks to the store
        with pytest.raises(Unavailable, match="deleting a file with the same bytes") as info:
            upload(svc, "b", wheel)
        refused.append(info.value.message)

    store.hook = upload_meanwhile
    repo = svc.catalog.get(Format.PYPI, "a")
    manage.delete(svc.ctx, repo, manage.Target("racing", "1.0"), actor="t")
    assert refused
    assert not store.exists(sha)
    # once the delete is over, the same bytes upload and stay
    assert upload(svc, "b", wheel).created
    assert store.exists(sha)


class HookedDeleteStore(MemoryBlobStore):
    """Runs `hook` once, right before a delete."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[], None] | None = None

    def delete(self, sha256: Sha256) -> None:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        super().delete(sha256)
