"""Download counts add up on SQLite and PostgreSQL (the upsert differs by dialect)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.builders import make_wheel

from packhouse.config import Settings
from packhouse.db import download_store
from packhouse.db.engine import Database
from packhouse.db.schema import artifacts
from packhouse.services.access import Principal
from packhouse.services.context import Context
from packhouse.services.downloads import DownloadCounter
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format
from packhouse.wiring import Services


def counts_add_up(db: Database, tmp: object) -> None:

    assert isinstance(tmp, Path)
    (tmp / "tmp").mkdir(exist_ok=True)
    svc = Services.of(Context(settings=Settings(data=tmp), db=db, blobs=MemoryBlobStore()))
    repo = create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)

    wheel = make_wheel(tmp, "counted", "1.0")
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 20)
    incoming.write(wheel.read_bytes())
    incoming._file.flush()
    incoming._file.close()
    fields = {":action": "file_upload", "name": "counted", "version": "1.0"}
    upload_pypi(svc.ctx, repo, Principal("t", None, True), fields, wheel.name, incoming)
    incoming.discard()
    with db.read() as conn:
        artifact_id = conn.execute(select(artifacts.c.id)).scalar_one()
    counter = DownloadCounter(svc.ctx)
    for _ in range(3):
        counter.count(artifact_id)
    counter.flush()
    counter.count(artifact_id)
    counter.flush()
    with db.write() as conn:
        download_store.add(conn, {(artifact_id, "2026-01-01"): 5, (10**9, "2026-01-01"): 1})
    with db.read() as conn:
        assert download_store.per_artifact(conn, [artifact_id]) == {artifact_id: 9}
        assert download_store.per_day(conn, [artifact_id], "2026-01-02")[0][1] == 4
    found = counter.of_project(svc.catalog.order(repo), "counted")
    assert found.total == 4
    assert found.by_version == (("1.0", 9),)
    svc.close()


def test_counts_add_up_on_sqlite(tmp_path: Path) -> None:
    db = Database("sqlite://")
    db.upgrade()
    counts_add_up(db, tmp_path)


@pytest.mark.postgres
def test_counts_add_up_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    db = Database(postgres_url)
    db.upgrade()
    counts_add_up(db, tmp_path)
