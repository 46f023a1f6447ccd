"""`packhouse export` and `packhouse import`: SQLite + disk to PostgreSQL + S3 (SeaweedFS) and
back, every row and every blob equal, pip installing from the moved server; and what import
refuses (a target that is not empty, damaged exports), leaving nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from packhouse.db.dump_store import seeded_tables
from packhouse.db.schema import metadata
from tests.clients.populated import populate
from tests.clients.test_pypi_clients import installed_version, pip_install
from tests.conftest import (
    VENV_BIN,
    S3Server,
    make_venv,
    start_server,
    stop_server,
)

pytestmark = [pytest.mark.clients, pytest.mark.postgres, pytest.mark.s3]


def packhouse(*args: str | Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKHOUSE_")}
    result = subprocess.run(
        [str(VENV_BIN / "packhouse"), *map(str, args)],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"packhouse {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def raw_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with SQLAlchemy directly (not through the export)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
                for t in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def tables_of(export: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in export.glob("*.jsonl")}


def local_blobs(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (data / "blobs").glob("??/??/*")}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped SQLite + disk server's data directory holding a bit of everything."""
    root = tmp_path_factory.mktemp("source")
    server = start_server(root / "data")
    try:
        populate(server, root / "dist")
    finally:
        stop_server(server)
    return root / "data"


def s3_env(seaweedfs: S3Server, prefix: str) -> dict[str, str]:
    return {
        "PACKHOUSE_STORAGE": "s3",
        "PACKHOUSE_S3__ENDPOINT_URL": seaweedfs.endpoint,
        "PACKHOUSE_S3__BUCKET": seaweedfs.bucket,
        "PACKHOUSE_S3__PREFIX": prefix,
        "PACKHOUSE_S3__ACCESS_KEY_ID": "packhouse-tests",
        "PACKHOUSE_S3__SECRET_ACCESS_KEY": "packhouse-tests",
    }


def test_sqlite_disk_to_postgres_s3_and_back_loses_nothing(
    source: Path, tmp_path: Path, postgres_url: str, seaweedfs: S3Server
) -> None:
    first = tmp_path / "export-1"
    out = packhouse("export", first, "--data", source)
    assert "exported" in out
    manifest = json.loads((first / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("packhouse-export", 1)
    rows = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert rows["artifacts"] == 10  # 6 PyPI files (one a tombstone) and 4 conda packages
    assert (rows["users"], rows["groups"], rows["tokens"]) == (2, 1, 1)
    assert (rows["conda_patches"], rows["repository_bases"]) == (1, 3)

    # into PostgreSQL + S3
    prefix = seaweedfs.new_prefix()
    pg_env = {"PACKHOUSE_DATABASE_URL": postgres_url, **s3_env(seaweedfs, prefix)}
    packhouse("import", first, "--data", tmp_path / "pg-data", env=pg_env)
    stored = {key.rsplit("/", 1)[1] for key in seaweedfs.keys(prefix)}
    assert stored == set(local_blobs(source))
    second = tmp_path / "export-2"
    packhouse("export", second, "--data", tmp_path / "pg-data", env=pg_env)
    assert tables_of(second) == tables_of(first)  # every row, as PostgreSQL holds it

    # and back into SQLite + disk
    back = tmp_path / "back"
    packhouse("import", second, "--data", back)
    assert raw_rows(f"sqlite:///{back / 'packhouse.db'}") == raw_rows(
        f"sqlite:///{source / 'packhouse.db'}"
    )
    assert local_blobs(back) == local_blobs(source)
    third = tmp_path / "export-3"
    packhouse("export", third, "--data", back)
    assert tables_of(third) == tables_of(first)

    # the moved server serves what it was given: the admin's password, the yank, the token
    server = start_server(tmp_path / "pg-data", pg_env)
    try:
        python = make_venv(tmp_path / "venv")
        # as admin, whose password hash came through (the first start made no new admin)
        pip_install(server, python, "ph-move-app")
        assert installed_version(python, "ph_move_base") == "1.0"  # 1.1 is still yanked
        with server.client(("alice", "alice-Pa55word-long")) as client:
            assert client.get("/pypi/team/simple/ph-move-team/").status_code == 200
        with server.client() as client:
            repodata = client.get("/conda/main/noarch/repodata.json").json()
            patched = repodata["packages.conda"]["dependent-1.0-0.conda"]
            assert patched["depends"] == ["dependency >=1"]
            serial = client.get("/pypi/main/simple/ph-move-app/").headers["x-pypi-last-serial"]
        assert int(serial) == _serial_of(first, "main", "ph-move-app")
    finally:
        stop_server(server)


def _serial_of(export: Path, repo: str, project: str) -> int:
    repos = [json.loads(line) for line in (export / "repositories.jsonl").read_text().splitlines()]
    (repo_id,) = [r["id"] for r in repos if r["name"] == repo and r["format"] == "pypi"]
    for line in (export / "projects.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["repository_id"] == repo_id and row["name"] == project:
            return int(row["last_serial"])
    raise AssertionError(f"{project} not in the export")


def test_import_refuses_a_target_that_is_not_empty(source: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    packhouse("export", export, "--data", source)
    out = packhouse("import", export, "--data", source, check=False)
    assert "the target database is not empty" in out
    assert "repositories" in out
    again = packhouse("export", export, "--data", source, check=False)
    assert "is not empty: export into a new or empty directory" in again


def test_import_checks_blob_hashes_and_table_checksums_and_leaves_no_row(
    source: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    packhouse("export", export, "--data", source)
    victim = next(p for p in (export / "blobs").iterdir() if p.stat().st_size > 100)
    original = victim.read_bytes()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    out = packhouse("import", export, "--data", tmp_path / "t1", check=False)
    assert f"blob {victim}" in out
    assert "damaged" in out
    left = raw_rows(f"sqlite:///{tmp_path / 't1' / 'packhouse.db'}")
    assert {name for name, rows in left.items() if rows} <= seeded_tables()  # only migrations'
    assert left["journal"] == []

    victim.write_bytes(original)
    table = export / "journal.jsonl"
    table.write_bytes(table.read_bytes().replace(b'"actor":"cli"', b'"actor":"eve"', 1))
    out = packhouse("import", export, "--data", tmp_path / "t2", check=False)
    assert "journal.jsonl does not match the manifest" in out
    assert not (tmp_path / "t2" / "blobs").exists() or not local_blobs(tmp_path / "t2")
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == victim.name
