"""The rules a PyPI upload must keep with the files of its release already there.

A release is one version of a project, compared as PEP 440 versions: `1.0`, `1.0.0` and
`1.0.0.0` are one release, as on PyPI (Warehouse's `canonical_version`). So:

- a file for a release that exists is stored under the release's version as first written,
  so the JSON API and PEP 700 `versions` list one release, never `1.0` and `1.0.0`;
- a release has at most one source distribution: `demo-1.0.tar.gz` then `demo-1.0.zip` or
  `demo-1.0.0.tar.gz` is refused, as PyPI refuses it ("Only one sdist may be uploaded per
  release"), since installers would pick one of two sdists that may build differently.
  A deleted sdist does not count; its filename still can't be reused.

`release_version` runs twice: before the upload's blobs are stored (so a refusal stores
nothing) and inside the write transaction that adds the row (so two uploads racing for one
release can't both pass).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection, select

from packhouse.db import repository_store
from packhouse.db.schema import artifacts
from packhouse.errors import InvalidUpload
from packhouse.formats.pypi.filenames import DistFilename


def release_version(conn: Connection, repo_id: int, dist: DistFilename, written: str) -> str:
    """The version text to store the file under (`written`, or the release's own text when
    the release exists), or InvalidUpload if the file breaks a release rule."""
    project = repository_store.get_project(conn, repo_id, dist.name)
    if project is None:
        return written
    rows = conn.execute(
        select(
            artifacts.c.version, artifacts.c.packagetype, artifacts.c.filename, artifacts.c.deleted
        )
        .where(artifacts.c.project_id == project.id)
        .order_by(artifacts.c.id)
    )
    release: str | None = None
    for row in rows:
        if row.version != written and not _same_release(row.version, dist.version):
            continue
        if release is None:
            release = row.version
        if dist.kind == "sdist" and row.packagetype == "sdist" and not row.deleted:
            raise InvalidUpload(
                f"release {row.version} of {project.display_name} already has a source"
                f" distribution, {row.filename!r}, and a release has only one (as on PyPI):"
                f" {dist.filename!r} is refused; upload wheels for this release, or a new"
                " version"
            )
    return written if release is None else release


def _same_release(stored: str, version: Version) -> bool:
    try:
        return Version(stored) == version
    except InvalidVersion:
        return False
