"""The app's start gives page parts to PyPI files stored without them (before migration 0014),
so a server upgraded in place reads its big projects' pages from parts too."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from starlette.testclient import TestClient

from packhouse.config import Settings
from packhouse.db import artifact_store, journal_store, repository_store
from packhouse.db.artifact_store import NewArtifact
from packhouse.db.schema import api_parts, page_parts
from packhouse.services.bootstrap import first_start
from packhouse.types import Format
from packhouse.web.app import create_app
from packhouse.wiring import Services, build_context


def counts(svc: Services) -> tuple[int, int]:
    """Rows in page_parts and in api_parts."""
    with svc.ctx.db.read() as conn:
        pages, api = (
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (page_parts, api_parts)
        )
    return pages, api


def test_files_stored_without_parts_get_them_when_the_app_starts(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path, admin_password="start-admin-pw")
    svc = Services.of(build_context(settings))
    first_start(svc.ctx)
    repo = svc.catalog.get(Format.PYPI, "main")
    with svc.ctx.db.write() as conn:  # rows as a server before page parts wrote them
        serial = journal_store.append(conn, actor="t", action="t")
        project = repository_store.ensure_project(conn, repo.id, "old", "Old", serial)
        for i in range(3):
            digest = f"{i:064x}"
            new = NewArtifact(
                filename=f"old-1.{i}-py3-none-any.whl",
                version=f"1.{i}",
                packagetype="wheel",
                sha256=digest,
                md5=digest[:32],
                blake2b_256=digest,
                size=10,
                uploader="t",
                upload_time=svc.ctx.clock(),
            )
            artifact_store.add(conn, repo.id, project.id, new, serial)
        repository_store.touch(conn, repo.id, serial)
    assert counts(svc) == (0, 0)
    svc.close()

    with TestClient(create_app(settings)) as client:
        page = client.get("/pypi/main/simple/old/", auth=("admin", "start-admin-pw"))
        assert page.status_code == 200
        assert page.text.count("<a href=") == 3
    svc = Services.of(build_context(settings))
    try:
        assert counts(svc) == (3, 3)
    finally:
        svc.close()
