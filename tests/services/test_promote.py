"""Promotion over in-memory stores: PyPI releases and conda packages, every refusal."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from tests.builders import make_sdist, make_wheel, synth

from packhouse.db import artifact_store, journal_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, FileExists, InvalidInput, PermissionDenied
from packhouse.services import manage
from packhouse.services.access import Principal
from packhouse.services.conda_uploads import upload_conda
from packhouse.services.promote import Release, promote
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.types import Format, RepoKind, Sha256
from packhouse.wiring import Services

ROOT = Path(__file__).resolve().parents[2]
ALICE = Principal("alice", user_id=1)


@pytest.fixture
def svc(memory_services: Services) -> Services:
    for fmt in Format:
        for name in ("dev", "release"):
            create_repository(memory_services.ctx, actor="t", name=name, fmt=fmt)
    return memory_services


def repo(svc: Services, name: str, fmt: Format = Format.PYPI) -> Repository:
    return svc.catalog.get(fmt, name)


def incoming_of(svc: Services, data: bytes) -> IncomingFile:
    incoming = IncomingFile(svc.ctx.tmp_dir, 10_000_000)
    incoming.write(data)
    incoming.finish()
    return incoming


def upload(svc: Services, name: str, path: Path) -> None:
    project, version = path.name.split("-")[:2]
    form = {":action": "file_upload", "name": project, "version": version.removesuffix(".tar.gz")}
    incoming = incoming_of(svc, path.read_bytes())
    try:
        upload_pypi(svc.ctx, repo(svc, name), ALICE, form, path.name, incoming)
    finally:
        incoming.discard()


def put_conda(svc: Services, name: str, filename: str, data: bytes) -> None:
    incoming = incoming_of(svc, data)
    try:
        upload_conda(svc.ctx, repo(svc, name, Format.CONDA), ALICE, filename, incoming)
    finally:
        incoming.discard()


def files(svc: Services, name: str, fmt: Format = Format.PYPI) -> dict[str, Artifact]:
    """Every artifact of the repository, live or deleted, by filename."""
    target = repo(svc, name, fmt)
    with svc.ctx.db.read() as conn:
        found: dict[str, Artifact] = {}
        for normalised, _ in repository_store.project_names(conn, target.id):
            project = repository_store.get_project(conn, target.id, normalised)
            assert project is not None
            for a in artifact_store.for_project(conn, project.id, include_deleted=True):
                found[a.filename] = a
        return found


def blob_names(svc: Services) -> list[str]:
    return sorted(b.sha256 for b in svc.ctx.blobs.iter_blobs())


def page(svc: Services, name: str, project: str) -> dict[str, Any]:
    body = svc.pypi.project_page(repo(svc, name), project, "json").body
    result: dict[str, Any] = json.loads(body)
    return result


def repodata(svc: Services, name: str, subdir: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        svc.conda.page(repo(svc, name, Format.CONDA), subdir, "repodata.json").body
    )
    return {**doc["packages"], **doc["packages.conda"]}


def run(svc: Services, release: Release, fmt: Format = Format.PYPI, **kw: str) -> Any:
    source = repo(svc, kw.get("source", "dev"), fmt)
    target = repo(svc, kw.get("target", "release"), fmt)
    return promote(svc.ctx, source, target, release, actor="bob")


@pytest.fixture
def dev_release(svc: Services, tmp_path: Path) -> Services:
    """dev holds demo-pkg 1.0 (a wheel, yanked, and an sdist) and 2.0 (a wheel)."""
    upload(svc, "dev", make_wheel(tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.9"))
    upload(svc, "dev", make_sdist(tmp_path, "Demo.Pkg", "1.0"))
    upload(svc, "dev", make_wheel(tmp_path, "Demo.Pkg", "2.0"))
    manage.set_yanked(
        svc.ctx,
        repo(svc, "dev"),
        manage.Target("demo-pkg", filename="demo_pkg-1.0-py3-none-any.whl"),
        actor="t",
        yanked=True,
        reason="broken on 3.13",
    )
    return svc


WHEEL = "demo_pkg-1.0-py3-none-any.whl"
SDIST = "demo_pkg-1.0.tar.gz"


def test_pypi_release_is_copied_with_blobs_shared_and_journalled(dev_release: Services) -> None:
    svc = dev_release
    blobs_before = blob_names(svc)
    done = run(svc, Release("demo.pkg", "1.0.0"))  # names and versions as PEP 503/440 compare
    assert sorted(f.filename for f in done.copied) == sorted([SDIST, WHEEL])
    assert done.skipped == ()
    assert (done.source, done.target, done.project) == ("pypi/dev", "pypi/release", "demo-pkg")
    assert blob_names(svc) == blobs_before  # no bytes copied

    source, target = files(svc, "dev"), files(svc, "release")
    assert sorted(target) == sorted([SDIST, WHEEL])  # 2.0 stays in dev
    for filename, copy in target.items():
        original = source[filename]
        for field in (
            "sha256", "md5", "blake2b_256", "size", "version", "packagetype",
            "requires_python", "metadata_sha256", "metadata", "yanked", "yanked_reason",
        ):  # fmt: skip
            assert getattr(copy, field) == getattr(original, field), field
        assert copy.uploader == "bob"
    assert target[WHEEL].requires_python == ">=3.9"
    assert target[WHEEL].yanked_reason == "broken on 3.13"

    listed = {f["filename"]: f for f in page(svc, "release", "demo-pkg")["files"]}
    assert listed[WHEEL]["yanked"] == "broken on 3.13"
    assert listed[WHEEL]["requires-python"] == ">=3.9"
    assert listed[WHEEL]["core-metadata"]  # PEP 658 file shared too
    assert page(svc, "release", "demo-pkg")["versions"] == ["1.0"]

    with svc.ctx.db.read() as conn:
        entries = journal_store.entries(conn, repository="pypi/release", action="promote")
    assert sorted(e.filename or "" for e in entries) == sorted([SDIST, WHEEL])
    assert all(e.actor == "bob" and e.project == "demo-pkg" for e in entries)
    assert all(e.detail and e.detail["from"] == "pypi/dev" for e in entries)


def test_promoting_again_skips_what_is_there_and_changes_nothing(dev_release: Services) -> None:
    svc = dev_release
    run(svc, Release("demo-pkg", "1.0"))
    serial = svc.ctx.db.watcher.current()
    again = run(svc, Release("demo-pkg", "1.0"))
    assert again.copied == ()
    assert sorted(f.filename for f in again.skipped) == sorted([SDIST, WHEEL])
    assert svc.ctx.db.watcher.current() == serial


def test_a_file_already_there_with_the_same_bytes_is_skipped(
    dev_release: Services, tmp_path: Path
) -> None:
    svc = dev_release
    upload(svc, "release", tmp_path / WHEEL)
    done = run(svc, Release("demo-pkg", "1.0"))
    assert [f.filename for f in done.copied] == [SDIST]
    assert [f.filename for f in done.skipped] == [WHEEL]
    assert not files(svc, "release")[WHEEL].yanked  # the target's own file is left alone


def test_deleted_files_of_the_source_are_not_promoted(dev_release: Services) -> None:
    svc = dev_release
    manage.delete(svc.ctx, repo(svc, "dev"), manage.Target("demo-pkg", filename=SDIST), actor="t")
    done = run(svc, Release("demo-pkg", "1.0"))
    assert [f.filename for f in done.copied] == [WHEEL]
    # deleting the source's copy keeps the bytes the target's copy points at
    manage.delete(svc.ctx, repo(svc, "dev"), manage.Target("demo-pkg", "1.0"), actor="t")
    promoted = files(svc, "release")[WHEEL]
    assert promoted.metadata_sha256
    for sha in (promoted.sha256, promoted.metadata_sha256):
        assert svc.ctx.blobs.exists(Sha256(sha))


def assert_refused_with_nothing_stored(
    svc: Services, error: type[Exception], match: str, release: Release, **kw: Any
) -> None:
    serial = svc.ctx.db.watcher.current()
    before = files(svc, "release", kw.get("fmt", Format.PYPI))
    blobs = blob_names(svc)
    fmt = kw.get("fmt", Format.PYPI)
    source = kw.get("source_repo") or repo(svc, "dev", fmt)
    target = kw.get("target_repo") or repo(svc, "release", fmt)
    with pytest.raises(error, match=match):
        promote(svc.ctx, source, target, release, actor="bob")
    assert svc.ctx.db.watcher.current() == serial
    assert files(svc, "release", kw.get("fmt", Format.PYPI)) == before
    assert blob_names(svc) == blobs


def test_other_bytes_under_a_filename_refuse_the_whole_release(
    dev_release: Services, tmp_path: Path
) -> None:
    svc = dev_release
    other = tmp_path / "other"
    other.mkdir()
    upload(svc, "release", make_wheel(other, "demo-pkg", "1.0", module_source="X = 2\n"))
    assert_refused_with_nothing_stored(
        svc, FileExists, "nothing was copied: 'demo_pkg-1.0-py3-none-any.whl' is already in"
        " 'release' with different bytes", Release("demo-pkg", "1.0"),
    )  # fmt: skip
    assert SDIST not in files(svc, "release")


def test_a_deleted_filename_in_the_target_refuses(dev_release: Services, tmp_path: Path) -> None:
    svc = dev_release
    upload(svc, "release", tmp_path / SDIST)
    manage.delete(svc.ctx, repo(svc, "release"), manage.Target("demo-pkg", "1.0"), actor="t")
    assert_refused_with_nothing_stored(
        svc, FileExists, "was deleted from 'release'", Release("demo-pkg", "1.0")
    )


@pytest.mark.parametrize(
    ("release", "match"),
    [
        (Release("nothing-here", "1.0"), "no project 'nothing-here' at version '1.0' in 'dev'"),
        (Release("demo-pkg", "3.0"), "no project 'demo-pkg' at version '3.0' in 'dev'"),
        (Release("demo-pkg", "not a version"), "at version 'not a version'"),
    ],
)
def test_nothing_to_promote_is_not_found(
    dev_release: Services, release: Release, match: str
) -> None:
    assert_refused_with_nothing_stored(dev_release, ArtifactNotFound, match, release)


def test_a_version_deleted_from_the_source_is_not_found(dev_release: Services) -> None:
    svc = dev_release
    manage.delete(svc.ctx, repo(svc, "dev"), manage.Target("demo-pkg", "2.0"), actor="t")
    assert_refused_with_nothing_stored(
        svc, ArtifactNotFound, "nothing to promote", Release("demo-pkg", "2.0")
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"uploads_enabled": False}, "uploads to pypi/release are switched off"),
        ({"kind": RepoKind.PROXY}, "pypi/release is a proxy repository"),
    ],
)
def test_a_target_that_takes_no_uploads_is_refused(
    dev_release: Services, change: dict[str, Any], match: str
) -> None:
    svc = dev_release
    target = dataclasses.replace(repo(svc, "release"), **change)
    assert_refused_with_nothing_stored(
        svc, PermissionDenied, match, Release("demo-pkg", "1.0"),
        source_repo=repo(svc, "dev"), target_repo=target,
    )  # fmt: skip


def test_odd_requests_are_refused(dev_release: Services) -> None:
    svc = dev_release
    dev = repo(svc, "dev")
    cases: list[tuple[Repository, Repository, Release, str]] = [
        (dev, dev, Release("demo-pkg", "1.0"), "both the source and the target"),
        (dev, repo(svc, "release", Format.CONDA), Release("demo-pkg", "1.0"), "different formats"),
        (dev, repo(svc, "release"), Release("demo-pkg", "1.0", "noarch"), "PyPI releases have"),
        (dev, repo(svc, "release"), Release(" ", "1.0"), "name the project"),
    ]
    for source, target, release, match in cases:
        assert_refused_with_nothing_stored(
            svc, InvalidInput, match, release, source_repo=source, target_repo=target
        )


# -- conda -----------------------------------------------------------------------------------


@pytest.fixture
def channel(svc: Services) -> Services:
    """conda dev holds tool 1.0 for noarch (.conda) and linux-64 (.tar.bz2), and tool 2.0."""
    put_conda(svc, "dev", *synth.package_bytes("tool", "1.0", depends=["lib >=2"]))
    put_conda(
        svc,
        "dev",
        *synth.package_bytes("tool", "1.0", "1", subdir="linux-64", extension=".tar.bz2"),
    )
    put_conda(svc, "dev", *synth.package_bytes("tool", "2.0"))
    return svc


def test_conda_package_is_in_the_target_repodata_at_once(channel: Services) -> None:
    svc = channel
    assert repodata(svc, "release", "noarch") == {}  # a view rendered before the promotion
    done = run(svc, Release("tool", "1.0"), Format.CONDA)
    assert sorted((f.subdir, f.filename) for f in done.copied) == [
        ("linux-64", "tool-1.0-1.tar.bz2"),
        ("noarch", "tool-1.0-0.conda"),
    ]
    for subdir in ("noarch", "linux-64"):
        promoted = repodata(svc, "release", subdir)
        source = repodata(svc, "dev", subdir)
        assert promoted == {k: v for k, v in source.items() if k.startswith("tool-1.0-")}
    assert repodata(svc, "release", "noarch")["tool-1.0-0.conda"]["depends"] == ["lib >=2"]
    copy = files(svc, "release", Format.CONDA)["tool-1.0-0.conda"]
    original = files(svc, "dev", Format.CONDA)["tool-1.0-0.conda"]
    assert (copy.record, copy.metadata, copy.sha256) == (
        original.record,
        original.metadata,
        original.sha256,
    )
    channeldata = json.loads(svc.conda.channeldata(repo(svc, "release", Format.CONDA)).body)
    assert channeldata["packages"]["tool"]["subdirs"] == ["linux-64", "noarch"]


def test_conda_subdir_limits_the_promotion(channel: Services) -> None:
    svc = channel
    done = run(svc, Release("tool", "1.0", "linux-64"), Format.CONDA)
    assert [f.filename for f in done.copied] == ["tool-1.0-1.tar.bz2"]
    assert sorted(files(svc, "release", Format.CONDA)) == ["tool-1.0-1.tar.bz2"]
    assert repodata(svc, "release", "noarch") == {}
    later = run(svc, Release("tool", "1.0"), Format.CONDA)
    assert [f.filename for f in later.copied] == ["tool-1.0-0.conda"]
    assert [f.filename for f in later.skipped] == ["tool-1.0-1.tar.bz2"]


def test_conda_refusals_store_nothing(channel: Services) -> None:
    svc = channel
    conda = Format.CONDA
    for release, match in [
        (Release("tool", "1.0", "osx-arm64"), "no conda package 'tool' at version '1.0' in"
         " subdir 'osx-arm64' in 'dev'"),
        (Release("tool", "1.0", "Not/A/Subdir"), "is not valid"),
        (Release("Tool", "1.0"), "no conda package 'Tool'"),  # conda names are exact
    ]:  # fmt: skip
        error = InvalidInput if "valid" in match else ArtifactNotFound
        assert_refused_with_nothing_stored(svc, error, match, release, fmt=conda)

    # a file of that name with other bytes
    _, other = synth.package_bytes("tool", "1.0", timestamp=1)
    put_conda(svc, "release", "tool-1.0-0.conda", other)
    assert_refused_with_nothing_stored(
        svc, FileExists, "'tool-1.0-0.conda' is already in 'release' with different bytes",
        Release("tool", "1.0"), fmt=conda,
    )  # fmt: skip
    assert "tool-1.0-1.tar.bz2" not in files(svc, "release", conda)

    # that filename deleted from the target
    target = repo(svc, "release", conda)
    manage.delete(svc.ctx, target, manage.Target("tool", "1.0"), actor="t")
    assert_refused_with_nothing_stored(
        svc, FileExists, "was deleted from 'release'", Release("tool", "1.0", "noarch"), fmt=conda
    )


def test_conda_filename_in_another_subdir_of_the_target_refuses(channel: Services) -> None:
    svc = channel
    put_conda(svc, "release", *synth.package_bytes("tool", "2.0", subdir="linux-64"))
    assert_refused_with_nothing_stored(
        svc, FileExists, r"already in release/linux-64, not in noarch",
        Release("tool", "2.0"), fmt=Format.CONDA,
    )  # fmt: skip
