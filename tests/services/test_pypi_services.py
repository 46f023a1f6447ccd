"""The PyPI use cases over in-memory stores: uploads, pages, yanks, deletes, bases."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from tests.builders import make_sdist, make_wheel

from packhouse.errors import (
    FileExists,
    InvalidInput,
    InvalidUpload,
    PermissionDenied,
    ProjectNotFound,
)
from packhouse.services import manage
from packhouse.services.access import Principal
from packhouse.services.pypi_uploads import UploadOutcome, upload_pypi
from packhouse.services.repos import RepoSettings, create_repository, update_repository
from packhouse.storage.base import IncomingFile
from packhouse.types import Action, Format, RepoKind
from packhouse.wiring import Services

ALICE = Principal("alice", user_id=1)


def upload(svc: Services, repo: str, path: Path, **fields: str) -> UploadOutcome:
    target = svc.catalog.get(Format.PYPI, repo)
    incoming = IncomingFile(svc.ctx.tmp_dir, 10_000_000)
    incoming.write(path.read_bytes())
    incoming.finish()
    name, version = path.name.split("-")[:2]
    form = {":action": "file_upload", "name": name, "version": version.removesuffix(".tar.gz")}
    form.update(fields)
    try:
        return upload_pypi(svc.ctx, target, ALICE, form, path.name, incoming)
    finally:
        incoming.discard()


def page(svc: Services, repo: str, project: str) -> dict[str, object]:
    target = svc.catalog.get(Format.PYPI, repo)
    result: dict[str, object] = json.loads(svc.pypi.project_page(target, project, "json").body)
    return result


@pytest.fixture
def svc(memory_services: Services) -> Services:
    create_repository(memory_services.ctx, actor="t", name="main", fmt=Format.PYPI)
    return memory_services


def test_upload_is_on_the_next_page_and_the_cache_follows_changes(
    svc: Services, tmp_path: Path
) -> None:
    first = upload(svc, "main", make_wheel(tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.8"))
    assert first.created
    assert first.project == "demo-pkg"
    listed = page(svc, "main", "Demo.Pkg")
    assert [f["filename"] for f in listed["files"]] == ["demo_pkg-1.0-py3-none-any.whl"]  # type: ignore[index]
    assert listed["versions"] == ["1.0"]

    upload(svc, "main", make_sdist(tmp_path, "demo-pkg", "1.1"))
    listed = page(svc, "main", "demo-pkg")
    assert listed["versions"] == ["1.0", "1.1"]
    files = {f["filename"]: f for f in listed["files"]}  # type: ignore[union-attr]
    assert files["demo_pkg-1.0-py3-none-any.whl"]["requires-python"] == ">=3.8"
    assert "core-metadata" in files["demo_pkg-1.0-py3-none-any.whl"]
    assert files["demo_pkg-1.1.tar.gz"]["core-metadata"] is False  # no PEP 658 for sdists

    repo = svc.catalog.get(Format.PYPI, "main")
    manage.set_yanked(
        svc.ctx, repo, manage.Target("demo-pkg", "1.0"), actor="t", yanked=True, reason="bad"
    )
    files = {f["filename"]: f for f in page(svc, "main", "demo-pkg")["files"]}  # type: ignore[union-attr]
    assert files["demo_pkg-1.0-py3-none-any.whl"]["yanked"] == "bad"

    manage.delete(svc.ctx, repo, manage.Target("demo-pkg", "1.1"), actor="t")
    assert page(svc, "main", "demo-pkg")["versions"] == ["1.0"]
    manage.delete(svc.ctx, repo, manage.Target("demo-pkg", "1.0"), actor="t")
    with pytest.raises(ProjectNotFound):
        page(svc, "main", "demo-pkg")
    assert list(svc.ctx.blobs.iter_blobs()) == []  # nothing else used those bytes


def test_identical_reupload_changes_nothing_other_bytes_are_refused(
    svc: Services, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "same", "1.0")
    assert upload(svc, "main", wheel).created
    serial = svc.ctx.db.watcher.current()
    assert not upload(svc, "main", wheel).created
    assert svc.ctx.db.watcher.current() == serial
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with pytest.raises(FileExists, match="already exists"):
        upload(svc, "main", make_wheel(other_dir, "same", "1.0", module_source="x = 2\n"))


def test_a_deleted_filename_is_never_reused(svc: Services, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "gone", "1.0")
    upload(svc, "main", wheel)
    manage.delete(
        svc.ctx, svc.catalog.get(Format.PYPI, "main"), manage.Target("gone", "1.0"), actor="t"
    )
    with pytest.raises(FileExists, match="deleted"):
        upload(svc, "main", wheel)


def test_form_problems_are_listed_together(svc: Services, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "listed", "1.0")
    with pytest.raises(InvalidUpload) as info:
        upload(svc, "main", wheel, name="other", version="2.0", sha256_digest="00" * 32)
    assert len(info.value.problems) == 3


def test_bases_are_read_after_the_repository_itself(svc: Services, tmp_path: Path) -> None:
    create_repository(svc.ctx, actor="t", name="team", fmt=Format.PYPI, bases=["main"])
    upload(svc, "main", make_wheel(tmp_path, "shared", "1.0"))
    newer = tmp_path / "newer"
    newer.mkdir()
    upload(svc, "team", make_wheel(newer, "shared", "2.0"))
    assert page(svc, "team", "shared")["versions"] == ["1.0", "2.0"]
    assert page(svc, "main", "shared")["versions"] == ["1.0"]
    team = svc.catalog.get(Format.PYPI, "team")
    index = json.loads(svc.pypi.index_page(team, "json").body)
    assert index["projects"] == [{"name": "shared"}]


def test_uploads_to_a_proxy_or_a_closed_repository_are_refused(
    svc: Services, tmp_path: Path
) -> None:
    create_repository(
        svc.ctx,
        actor="t",
        name="mirror",
        fmt=Format.PYPI,
        kind=RepoKind.PROXY,
        upstream_url="https://example.invalid/simple/",
    )
    with pytest.raises(PermissionDenied, match="switched off"):
        upload(svc, "mirror", make_wheel(tmp_path, "x", "1.0"))


def test_private_by_default_and_public_on_request(svc: Services) -> None:
    from packhouse.services.access import ANONYMOUS

    create_repository(svc.ctx, actor="t", name="open", fmt=Format.PYPI, public=True)
    main = svc.catalog.get(Format.PYPI, "main")
    public = svc.catalog.get(Format.PYPI, "open")
    assert not svc.access.can(ANONYMOUS, main, Action.READ)
    assert svc.access.can(ANONYMOUS, public, Action.READ)
    assert not svc.access.can(ANONYMOUS, public, Action.UPLOAD)


def test_resolution_order_is_depth_first_and_cycles_are_refused(svc: Services) -> None:
    from packhouse.errors import InvalidInput
    from packhouse.services.repos import set_bases

    for name, bases in [("a", ["main"]), ("b", []), ("c", ["a", "b"])]:
        create_repository(svc.ctx, actor="t", name=name, fmt=Format.PYPI, bases=bases)
    c = svc.catalog.get(Format.PYPI, "c")
    assert [r.name for r in svc.catalog.order(c)] == ["c", "a", "main", "b"]
    with pytest.raises(InvalidInput, match="cycle"):
        set_bases(svc.ctx, actor="t", fmt=Format.PYPI, name="main", bases=["c"])
    assert [r.name for r in svc.catalog.order(svc.catalog.get(Format.PYPI, "main"))] == ["main"]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://169.254.169.254/latest/", "169.254.169.254 is link-local"),
        ("http://[::ffff:169.254.169.254]/simple/", "::ffff:169.254.169.254"),
        ("http://10.1.2.3/simple/", "10.1.2.3 is"),
        ("http://0x7f000001/simple/", "127.0.0.1 is loopback"),
        ("http://127.1:8080/simple/", "127.0.0.1 is loopback"),
    ],
)
def test_an_upstream_written_as_a_refused_address_is_refused_when_set(
    svc: Services, url: str, named: str
) -> None:
    """Refused at once (not only at the first fetch), on create and on update; nothing kept.
    No connection is made: the host is read as an address without asking any server."""
    with pytest.raises(InvalidInput, match=re.escape(named)) as refused:
        create_repository(
            svc.ctx, actor="t", name="m", fmt=Format.PYPI, kind=RepoKind.PROXY, upstream_url=url
        )
    assert "upstream_allowed_networks" in refused.value.message
    assert not any(r.name == "m" for r in svc.catalog.all())
    create_repository(
        svc.ctx,
        actor="t",
        name="ok",
        fmt=Format.PYPI,
        kind=RepoKind.PROXY,
        upstream_url="https://pypi.example.invalid/simple/",  # a name: checked when resolved
    )
    with pytest.raises(InvalidInput, match=re.escape(named)):
        update_repository(
            svc.ctx, actor="t", fmt=Format.PYPI, name="ok", settings=RepoSettings(upstream_url=url)
        )
    assert svc.catalog.get(Format.PYPI, "ok").upstream_url == "https://pypi.example.invalid/simple/"


def test_an_upstream_address_in_the_allowed_networks_is_accepted(
    memory_services: Services,
) -> None:
    ctx = memory_services.ctx
    allowed = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"upstream_allowed_networks": ["10.0.0.0/8"]})
    )
    repo = create_repository(
        allowed,
        actor="t",
        name="inside",
        fmt=Format.PYPI,
        kind=RepoKind.PROXY,
        upstream_url="http://10.1.2.3/simple/",
    )
    assert repo.upstream_url == "http://10.1.2.3/simple/"
