"""PEP 740 provenance in process: a trusted publisher's upload with a real attestation,
the page naming the provenance file, and a promotion keeping it (the attestation is about
the bytes, which the promoted file shares)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.oidc_issuer import Issuer, github_identity, serve_issuer

from packhouse.config import Settings
from packhouse.db import artifact_store
from packhouse.db.engine import Database
from packhouse.errors import InvalidUpload
from packhouse.services.context import Context
from packhouse.services.promote import Release, promote
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format
from packhouse.wiring import Services

ASSETS = Path(__file__).parents[1] / "data" / "attestations"
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"
AUDIENCE = "packhouse-test"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        running.identity = github_identity()
        yield running


@pytest.fixture
def svc(tmp_path: Path, issuer: Issuer) -> Iterator[Services]:
    settings = Settings(
        data=tmp_path, upstream_allowed_networks=["127.0.0.0/8"], oidc_audience=AUDIENCE
    )
    db = Database("sqlite://")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    services = Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))
    for name in ("dev", "release"):
        create_repository(services.ctx, actor="t", fmt=Format.PYPI, name=name)
    services.oidc.add_issuer(actor="t", name="gh", url=issuer.url)
    services.oidc.add_publisher(
        actor="t",
        repository=services.catalog.get(Format.PYPI, "dev"),
        issuer="gh",
        claims={"repository": "acme/app"},
    )
    yield services
    services.close()


def upload(svc: Services, who: Any, attestations: str | None) -> None:
    incoming = IncomingFile(svc.ctx.tmp_dir, 10_000_000)
    incoming.write((ASSETS / WHEEL).read_bytes())
    incoming.finish()
    form = {":action": "file_upload", "name": "rfc8785", "version": "0.1.2"}
    if attestations is not None:
        form["attestations"] = attestations
    try:
        upload_pypi(svc.ctx, svc.catalog.get(Format.PYPI, "dev"), who, form, WHEEL, incoming)
    finally:
        incoming.discard()


def page_files(svc: Services, name: str) -> list[dict[str, Any]]:
    body = svc.pypi.project_page(svc.catalog.get(Format.PYPI, name), "rfc8785", "json").body
    files: list[dict[str, Any]] = json.loads(body)["files"]
    return files


def test_provenance_is_stored_served_and_promoted(svc: Services, issuer: Issuer) -> None:
    minted = svc.oidc.mint(issuer.token(AUDIENCE), Format.PYPI)
    who = svc.access.authenticate(f"Bearer {minted.secret}")
    attestation = json.loads((ASSETS / f"{WHEEL}.publish.attestation").read_text())
    upload(svc, who, json.dumps([attestation]))
    (entry,) = page_files(svc, "dev")
    sha = entry["hashes"]["sha256"]
    assert entry["provenance"] == f"../../../../files/{sha}/{WHEEL}.provenance"
    with svc.ctx.db.read() as conn:
        (stored,) = artifact_store.by_sha256(conn, sha)
    assert stored.provenance == {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {"kind": "gh", "repository": "acme/app"},
                "attestations": [attestation],
            }
        ],
    }
    promote(
        svc.ctx,
        svc.catalog.get(Format.PYPI, "dev"),
        svc.catalog.get(Format.PYPI, "release"),
        Release("rfc8785", "0.1.2"),
        actor="bob",
    )
    (promoted,) = page_files(svc, "release")
    assert promoted["provenance"] == entry["provenance"]
    with svc.ctx.db.read() as conn:
        copies = artifact_store.by_sha256(conn, sha)
    assert [c.provenance for c in copies] == [stored.provenance, stored.provenance]


def test_without_attestations_there_is_no_provenance(svc: Services, issuer: Issuer) -> None:
    minted = svc.oidc.mint(issuer.token(AUDIENCE), Format.PYPI)
    upload(svc, svc.access.authenticate(f"Bearer {minted.secret}"), None)
    (entry,) = page_files(svc, "dev")
    assert "provenance" not in entry


def test_a_tampered_statement_is_refused(svc: Services, issuer: Issuer) -> None:
    minted = svc.oidc.mint(issuer.token(AUDIENCE), Format.PYPI)
    who = svc.access.authenticate(f"Bearer {minted.secret}")
    other = json.loads((ASSETS / "pypi_attestations-0.0.19.tar.gz.publish.attestation").read_text())
    with pytest.raises(InvalidUpload, match=re.escape(f"not for '{WHEEL}'")):
        upload(svc, who, json.dumps([other]))
    dev = svc.catalog.get(Format.PYPI, "dev")
    with svc.ctx.db.read() as conn:
        assert artifact_store.by_filename(conn, dev.id, WHEEL) is None
