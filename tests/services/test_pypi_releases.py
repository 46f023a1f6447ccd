"""PyPI release rules over in-memory stores: equal versions are one release, whatever text
the files were stored under (files stored before the upload rule included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from tests.builders import make_sdist, make_wheel
from tests.services.test_pypi_services import upload

from packhouse.db.schema import artifacts
from packhouse.errors import InvalidUpload
from packhouse.services.repos import create_repository
from packhouse.types import Format
from packhouse.wiring import Services


@pytest.fixture
def svc(memory_services: Services) -> Services:
    create_repository(memory_services.ctx, actor="t", name="main", fmt=Format.PYPI)
    return memory_services


def releases(svc: Services, version: str | None = None) -> dict[str, object]:
    repo = svc.catalog.get(Format.PYPI, "main")
    doc: dict[str, object] = json.loads(svc.pypi.json_api(repo, "ph-eq", version, "http://x").body)
    return doc


def test_an_upload_joins_the_release_of_an_equal_version(svc: Services, tmp_path: Path) -> None:
    upload(svc, "main", make_sdist(tmp_path, "ph-eq", "1.0"))
    outcome = upload(svc, "main", make_wheel(tmp_path, "ph-eq", "1.0.0"))
    assert outcome.version == "1.0"  # stored under the release's text
    with pytest.raises(InvalidUpload, match="only one"):
        upload(svc, "main", make_sdist(tmp_path, "ph-eq", "1.0.0.0"))
    assert list(releases(svc)["releases"]) == ["1.0"]  # type: ignore[call-overload]


def test_files_stored_before_the_rule_are_one_release(svc: Services, tmp_path: Path) -> None:
    upload(svc, "main", make_sdist(tmp_path, "ph-eq", "1.0"))
    upload(svc, "main", make_wheel(tmp_path, "ph-eq", "1.0.0"))
    with svc.ctx.db.write() as conn:  # as an older Packhouse stored it
        conn.execute(
            update(artifacts)
            .where(artifacts.c.filename == "ph_eq-1.0.0-py3-none-any.whl")
            .values(version="1.0.0")
        )
    rels = releases(svc)["releases"]
    assert isinstance(rels, dict)
    assert len(rels) == 1, list(rels)
    (files,) = rels.values()
    assert len(files) == 2
    assert len(releases(svc, "1.0.0")["urls"]) == 2  # type: ignore[arg-type]
