"""`packhouse fsck --repair` on a real data directory: a lost PEP 658 file is read again from
its wheel, a proxy's lost or damaged cached file is forgotten, orphans are removed, and a
damaged upload is listed as what cannot be mended (exit 1); a second run finds only that."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from packhouse.db.schema import artifacts, repositories, upstream_files
from tests.builders import make_wheel
from tests.clients.test_pypi_clients import twine_upload
from tests.conftest import VENV_BIN, start_server, stop_server


def fsck(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKHOUSE_")}
    return subprocess.run(
        [str(VENV_BIN / "packhouse"), "fsck", *args, "--data", str(data)],
        capture_output=True, text=True, env=environ, timeout=120,
    )  # fmt: skip


def blob_path(data: Path, sha: str) -> Path:
    return data / "blobs" / sha[:2] / sha[2:4] / sha


def put_blob(data: Path, content: bytes, name: str | None = None) -> str:
    sha = name or hashlib.sha256(content).hexdigest()
    path = blob_path(data, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return sha


def test_fsck_repair_mends_what_it_can_and_lists_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        dist = tmp_path / "dist"
        dist.mkdir()
        twine_upload(
            server, make_wheel(dist, "ph-fsck-a", "1.0"), make_wheel(dist, "ph-fsck-b", "1.0")
        )
        server.run_cli("repo", "create", "up", "--upstream", "https://pypi.example.org/simple/")
    finally:
        stop_server(server)

    engine = create_engine(f"sqlite:///{data / 'packhouse.db'}")
    with engine.begin() as conn:
        rows = {r.filename: r for r in conn.execute(select(artifacts))}
        (proxy_id,) = conn.execute(
            select(repositories.c.id).where(repositories.c.name == "up")
        ).one()
        now = datetime.now(UTC)
        lost = hashlib.sha256(b"never stored").hexdigest()
        damaged = put_blob(data, b"not what was fetched", hashlib.sha256(b"fetched").hexdigest())
        for filename, sha in (("lost-1.0.tar.gz", lost), ("damaged-1.0.tar.gz", damaged)):
            conn.execute(
                insert(upstream_files).values(
                    repository_id=proxy_id, filename=filename, project=filename.split("-")[0],
                    sha256=sha, size=10, fetched_at=now, last_used_at=now,
                )
            )  # fmt: skip
    engine.dispose()
    a = rows["ph_fsck_a-1.0-py3-none-any.whl"]
    b = rows["ph_fsck_b-1.0-py3-none-any.whl"]
    metadata = blob_path(data, a.metadata_sha256).read_bytes()
    blob_path(data, a.metadata_sha256).unlink()
    broken = blob_path(data, b.sha256)
    content = broken.read_bytes()
    broken.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    orphan = blob_path(data, put_blob(data, b"left by a crash"))
    os.utime(orphan, (0, 0))

    first = fsck(data, "--repair")
    out = first.stdout
    assert first.returncode == 1, out + first.stderr
    assert (
        f"mended pypi/main ph_fsck_a-1.0-py3-none-any.whl.metadata: blob {a.metadata_sha256}" in out
    )
    assert "read again from the wheel" in out
    assert blob_path(data, a.metadata_sha256).read_bytes() == metadata
    assert f"mended pypi/up lost-1.0.tar.gz: blob {lost} is missing" in out
    assert f"mended pypi/up damaged-1.0.tar.gz: blob {damaged} holds bytes whose sha256 is" in out
    assert not blob_path(data, damaged).exists()
    assert f"cannot mend pypi/main ph_fsck_b-1.0-py3-none-any.whl: blob {b.sha256} holds" in out
    assert f"unreferenced blob {orphan.name} (removed)" in out
    assert not orphan.exists()
    assert "3 mended, 1 cannot be mended" in out

    second = fsck(data, "--repair")
    assert second.returncode == 1
    assert "0 mended, 1 cannot be mended" in second.stdout
    assert "ph_fsck_b-1.0-py3-none-any.whl" in second.stdout
