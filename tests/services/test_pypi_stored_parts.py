"""Pages joined from the parts stored with each file (services/pypi_parts.py, pypi_api.py) are
byte for byte what a render from scratch gives: the simple pages (PEP 503 HTML, PEP 691 JSON)
and the JSON API documents, for a project with yanked files (with and without a reason),
core metadata files, provenance, requires-python, upload times, an sdist, equal versions
written two ways, files shadowed through a base, and rows stored without parts (as before
migration 0014). The stored sort keys order and equate versions as packaging does."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.version import InvalidVersion, Version
from sqlalchemy import delete, select
from tests.builders import make_sdist, make_wheel

from packhouse.config import Settings
from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import NewArtifact
from packhouse.db.engine import Database
from packhouse.db.schema import api_parts, artifacts, page_parts
from packhouse.errors import NotFound
from packhouse.formats.pypi import jsonapi, simple
from packhouse.services import manage
from packhouse.services.access import Principal
from packhouse.services.artifacts import PendingArtifact, add_row
from packhouse.services.context import Context
from packhouse.services.pypi_api import fill_all_parts, fill_parts
from packhouse.services.pypi_parts import WITH_PARTS, page_key
from packhouse.services.pypi_reads import PypiReader, _releases
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format
from packhouse.wiring import Services

ALICE = Principal("alice", user_id=1)
BASE = "http://packhouse.test:8080"


def upload(svc: Services, repo: str, path: Path, version: str) -> None:
    incoming = IncomingFile(svc.ctx.tmp_dir, 10_000_000)
    incoming.write(path.read_bytes())
    incoming.finish()
    form = {":action": "file_upload", "name": "Stored.Parts", "version": version}
    try:
        upload_pypi(svc.ctx, svc.catalog.get(Format.PYPI, repo), ALICE, form, path.name, incoming)
    finally:
        incoming.discard()


def add_direct(svc: Services, repo: str, filename: str, version: str, **extra: object) -> None:
    """A row added the way an upload ends (add_row), with what a test upload cannot send
    (a provenance object, an odd upload time)."""
    digest = hashlib.sha256(filename.encode()).hexdigest()
    fields: dict[str, object] = {
        "filename": filename,
        "version": version,
        "packagetype": "wheel",
        "sha256": digest,
        "md5": digest[:32],
        "blake2b_256": digest,
        "size": 4321,
        "uploader": "t",
        "upload_time": datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        "metadata": {"metadata_version": "2.1", "name": "Stored.Parts", "version": version},
    }
    fields.update(extra)
    new = NewArtifact(**fields)  # type: ignore[arg-type]
    target = svc.catalog.get(Format.PYPI, repo)
    with svc.ctx.db.write() as conn:
        add_row(conn, target, "t", PendingArtifact(new, "stored-parts", "Stored.Parts"), action="t")


@pytest.fixture(params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """The project below, on SQLite in memory and on PostgreSQL (bytea, timestamptz)."""
    if request.param == "sqlite":
        db = Database("sqlite://")
    else:
        db = Database(request.getfixturevalue("postgres_url"))
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    services = Services.of(
        Context(settings=Settings(data=tmp_path), db=db, blobs=MemoryBlobStore())
    )
    yield seeded(services, tmp_path)
    services.close()


def seeded(svc: Services, tmp_path: Path) -> Services:
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    create_repository(svc.ctx, actor="t", name="team", fmt=Format.PYPI, bases=["main"])
    for i, version in enumerate(["1.0", "1.1rc1", "2.0", "2.0.post1", "3.0.dev2", "0.9"]):
        d = tmp_path / f"w{i}"
        d.mkdir()
        upload(
            svc, "main", make_wheel(d, "Stored.Parts", version, requires_python=">=3.8,<4"), version
        )
    d = tmp_path / "sdist"
    d.mkdir()
    upload(svc, "main", make_sdist(d, "Stored.Parts", "2.0"), "2.0")
    add_direct(
        svc,
        "main",
        "stored_parts-4.0-py3-none-any.whl",
        "4.0",
        provenance={"version": 1, "attestation_bundles": []},
        requires_python="<4,>=3.9",
        metadata_sha256="ab" * 32,
    )
    add_direct(svc, "main", "stored_parts-4.0-cp311-abi3-manylinux_2_17_x86_64.whl", "4.0")
    add_direct(svc, "main", "stored_parts-5.0.0-py3-none-any.whl", "5.0.0")
    # equal to 5.0.0 by PEP 440; stored before the release-naming rule, as if by an old server
    add_direct(svc, "main", "stored_parts-5.0-py2-none-any.whl", "5.0")
    add_direct(svc, "main", "stored_parts-6.0-py3-none-any.whl", "6.0", yanked=True)
    repo = svc.catalog.get(Format.PYPI, "main")
    manage.set_yanked(
        svc.ctx, repo, manage.Target("stored-parts", "2.0.post1"), actor="t", yanked=True
    )
    manage.set_yanked(
        svc.ctx,
        repo,
        manage.Target("stored-parts", "1.1rc1"),
        actor="t",
        yanked=True,
        reason='<"broken">',
    )
    d = tmp_path / "team"
    d.mkdir()
    upload(svc, "team", make_wheel(d, "Stored.Parts", "1.0", module_source="x = 2\n"), "1.0")
    return svc


def from_scratch(svc: Services, repo: str) -> dict[str, bytes]:
    """Every page of the project rendered from its rows' columns (no stored part used):
    the models and serialisers of formats/pypi, as the static index and proxies use them."""
    target = svc.catalog.get(Format.PYPI, repo)
    order = svc.catalog.order(target, svc.ctx.db.watcher.current())
    seen: set[str] = set()
    files: list[artifact_store.Artifact] = []
    last_serial = 0
    with svc.ctx.db.read() as conn:
        for r in order:
            project = repository_store.get_project(conn, r.id, "stored-parts")
            if project is None:
                continue
            last_serial = max(last_serial, project.last_serial)
            for a in artifact_store.for_project(conn, project.id):
                if a.filename not in seen:
                    seen.add(a.filename)
                    files.append(a)
    files.sort(key=lambda a: (packaging_key(a.version), a.filename))
    page = simple.ProjectPage(
        name="stored-parts",
        files=[
            simple.SimpleFile(
                filename=a.filename,
                url=f"../../../../files/{a.sha256}/{a.filename}",
                sha256=a.sha256,
                requires_python=a.requires_python,
                yanked=(a.yanked_reason or "") if a.yanked else None,
                metadata_sha256=a.metadata_sha256,
                size=a.size,
                upload_time=a.upload_time,
                provenance=(
                    f"../../../../files/{a.sha256}/{a.filename}.provenance"
                    if a.provenance is not None
                    else None
                ),
            )
            for a in files
        ],
        # PEP 440 order; versions equal by it ("5.0", "5.0.0") by their text
        versions=sorted({a.version for a in files}, key=lambda v: (packaging_key(v), v)),
        last_serial=last_serial,
    )
    doc = jsonapi.JsonProject(
        name="stored-parts",
        releases=_releases(files, BASE),
        last_serial=last_serial,
        project_page_url=f"{BASE}/ui/pypi/{repo}/stored-parts/",
    )
    pages = {
        "html": simple.project_html(page),
        "json": simple.project_json(page),
        "api": jsonapi.project_json(doc),
    }
    for release in doc.releases:
        pages[f"api {release.version}"] = jsonapi.release_json(doc, release.version)
    return pages


def joined(svc: Services, repo: str, reader: PypiReader | None = None) -> dict[str, bytes]:
    reader = reader or svc.pypi
    target = svc.catalog.get(Format.PYPI, repo)
    pages = {k: reader.project_page(target, "stored-parts", k).body for k in ("html", "json")}
    pages["api"] = reader.json_api(target, "stored-parts", None, BASE).body
    for version in [k.removeprefix("api ") for k in from_scratch(svc, repo) if " " in k]:
        pages[f"api {version}"] = reader.json_api(target, "stored-parts", version, BASE).body
    return pages


def cold(svc: Services) -> PypiReader:
    """A reader as after a restart (no kept parts, no cached page); keeps parts of any size."""
    svc.ctx.pages.clear()
    return PypiReader(svc.ctx, svc.catalog, svc.pypi.proxy, parts_min_files=1)


@pytest.mark.parametrize("repo", ["main", "team"])
def test_pages_joined_from_stored_parts_equal_a_render_from_scratch(
    svc: Services, repo: str
) -> None:
    assert parts_missing(svc) == 0  # stored on upload, rendered again after a yank
    expected = from_scratch(svc, repo)
    assert set(expected) >= {"api 1.0", "api 5.0", "api 6.0"}
    assert joined(svc, repo, cold(svc)) == expected
    html = expected["html"]
    assert b'data-yanked="&lt;&quot;broken&quot;&gt;"' in html
    assert b'data-provenance="../../../../files/' in html
    assert b'data-requires-python="&lt;4,&gt;=3.9"' in html
    assert b'"upload-time":"2024-02-29T23:59:59.123456Z"' in expected["json"]


def parts_missing(svc: Services) -> int:
    """How many live files have no stored parts."""
    with svc.ctx.db.read() as conn:
        rows = conn.execute(
            select(page_parts.c.html, api_parts.c.api)
            .select_from(WITH_PARTS.outerjoin(api_parts, api_parts.c.artifact_id == artifacts.c.id))
            .where(artifacts.c.deleted.is_(False))
        ).all()
    assert len(rows) > 10
    return sum(1 for html, api in rows if html is None or api is None)


def test_rows_stored_without_parts_render_the_same_and_get_them_at_start(
    svc: Services,
) -> None:
    expected = from_scratch(svc, "main")
    with svc.ctx.db.write() as conn:
        for table in (page_parts, api_parts):
            stored = conn.execute(
                delete(table).where(
                    table.c.filename.like("%4.0%") | table.c.filename.like("%-1.0-%")
                )
            )
            assert stored.rowcount >= 3
    assert parts_missing(svc) >= 3
    assert joined(svc, "main", cold(svc)) == expected
    # what the app's start does (web/app.py), a batch at a time
    with svc.ctx.db.write() as conn:
        assert fill_parts(conn, limit=1) == 1
    assert fill_all_parts(svc.ctx) >= 2
    assert parts_missing(svc) == 0
    assert joined(svc, "main", cold(svc)) == expected


def test_yanks_and_uploads_after_the_first_render_keep_pages_equal(
    svc: Services, tmp_path: Path
) -> None:
    reader = cold(svc)
    assert joined(svc, "team", reader) == from_scratch(svc, "team")
    repo = svc.catalog.get(Format.PYPI, "main")
    manage.set_yanked(svc.ctx, repo, manage.Target("stored-parts", "4.0"), actor="t", yanked=True)
    manage.set_yanked(svc.ctx, repo, manage.Target("stored-parts", "6.0"), actor="t", yanked=False)
    (tmp_path / "late").mkdir()
    upload(svc, "main", make_wheel(tmp_path / "late", "Stored.Parts", "7.0a1"), "7.0a1")
    manage.delete(svc.ctx, repo, manage.Target("stored-parts", "0.9"), actor="t")
    assert joined(svc, "team", reader) == from_scratch(svc, "team")
    assert joined(svc, "team", cold(svc)) == from_scratch(svc, "team")


def test_a_missing_release_is_not_found(svc: Services) -> None:
    target = svc.catalog.get(Format.PYPI, "main")
    with pytest.raises(NotFound, match=r"has no release .8\.0."):
        svc.pypi.json_api(target, "stored-parts", "8.0", BASE)
    # PEP 440 equality finds a release written another way
    assert b'"version":"5.0",' in svc.pypi.json_api(target, "stored-parts", "5", BASE).body


def versions() -> list[str]:
    fixed = ["0", "0.0", "1", "1.0", "1.0.0", "01.2", "1.0a1", "1.0a2", "1.0b1", "1.0rc1"]
    fixed += ["1.0c1", "1.0pre1", "1.0.post1", "1.0-1", "1.0.dev1", "1.0.dev0", "1.0a1.dev1"]
    fixed += ["1.0a1.post1", "1.0.post1.dev1", "1.0+local", "1.0+local.1", "1.0+1", "1.0+1.a"]
    fixed += ["1.0+a.1", "1.0+ABC", "1.0+abc.0", "1!0.5", "2!1", "1.0.post0", "1.0a0", "10"]
    fixed += ["9", "255.0", "256.0", "65536.1", "1.2.3.4.5", "9" * 40, "bogus", "a\x00b", "a", ""]
    rnd = random.Random(20261204)
    for _ in range(400):
        release = ".".join(
            str(rnd.choice([0, 1, 2, 9, 10, 255, 256, 70000])) for _ in range(rnd.randint(1, 4))
        )
        suffix = rnd.choice(
            ["", "a1", "b2", "rc0", ".post3", ".dev4", "a1.dev2", "+x.1", "+1.x", "+1"]
        )
        fixed.append(rnd.choice(["", "1!"]) + release + suffix)
    return fixed


def packaging_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def test_stored_sort_keys_order_and_equate_versions_as_packaging_does() -> None:
    texts = versions()
    for a, b in itertools.combinations(texts, 2):
        ka, kb = packaging_key(a), packaging_key(b)
        assert (ka < kb) == (page_key(a) < page_key(b)), (a, b)
        assert (ka == kb) == (page_key(a) == page_key(b)), (a, b)


def test_stored_sort_keys_keep_their_bytes() -> None:
    """Keys are stored: a new encoding would sort old rows against new ones wrongly."""
    assert page_key("1.2") == b"\x01\x00\x01\x01\x01\x01\x01\x02\x00\x02\x00\x02\x00"
    assert page_key("1.2.0") == page_key("1.2")
    assert page_key("0") == b"\x01\x00\x00\x02\x00\x02\x00"
    assert page_key("1.0rc1") == b"\x01\x00\x01\x01\x01\x00\x01rc\x00\x00\x01\x01\x00\x02\x00"
    assert page_key("256.70000") == b"\x01\x00\x01\x02\x01\x00\x01\x03\x01\x11p\x00\x02\x00\x02\x00"
    local = b"\x01\x01\x02\x01\x01\x01\x00\x02\x01\x01\x03\x02"  # epoch 2, 1, post 3
    local += b"\x01\x01\x00local\x00\x00\x01\x01\x01\x07\x00"  # +local.7
    assert page_key("2!1.0.post3+local.7") == local
    assert page_key("bogus") == b"\x00bogus\x00\x00"
