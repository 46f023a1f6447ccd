"""Temporary files of uploads: locked while in use, found and removed once their process died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from packhouse.cli.main import app
from packhouse.storage import base
from packhouse.storage.base import IncomingFile, abandoned, claimed_temp_file
from packhouse.storage.local import LocalBlobStore
from packhouse.types import Sha256

# A process that receives part of an upload, says where, then holds it (or dies at once).
HOLDER = """
import os, signal, sys
from pathlib import Path
from packhouse.storage.base import IncomingFile
incoming = IncomingFile(Path(sys.argv[1]), 1 << 20)
incoming.write(b"half an upload")
print(incoming.path, flush=True)
if sys.argv[2] == "die":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # holds the file until told to stop
"""


def _holder(tmp: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    path = Path(process.stdout.readline().strip())
    if how == "die":
        process.stdout.close()
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=30) == -signal.SIGKILL
    return process, path


def _release(process: subprocess.Popen[str]) -> None:
    process.communicate(timeout=30)


def test_a_file_in_use_is_not_abandoned_and_one_of_a_killed_process_is(tmp_path: Path) -> None:
    live, in_use = _holder(tmp_path, "hold")
    try:
        _, left = _holder(tmp_path, "die")
        assert in_use.exists()
        assert left.exists()
        assert not abandoned(in_use, remove=True)
        assert abandoned(left, remove=False)
        assert left.exists()
        assert abandoned(left, remove=True)
        assert not left.exists()
        assert in_use.exists()
    finally:
        _release(live)


def test_this_process_own_open_incoming_file_is_kept(tmp_path: Path) -> None:
    with IncomingFile(tmp_path, 1 << 20) as incoming:
        incoming.write(b"x")
        incoming.finish()  # still held after finish: validation reads it next
        assert not abandoned(incoming.path, remove=True)
        assert incoming.path.read_bytes() == b"x"
    assert not incoming.path.exists()


def test_a_file_taken_between_create_and_lock_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tempfile.mkstemp
    taken: list[Path] = []

    def racing_cleaner(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        if not taken:  # a cleaner runs before the new file is locked
            assert abandoned(Path(name), remove=True)
            taken.append(Path(name))
        return fd, name

    monkeypatch.setattr(base.tempfile, "mkstemp", racing_cleaner)
    fd, path = claimed_temp_file(tmp_path, "incoming-")
    try:
        assert taken
        assert path != taken[0]
        assert path.exists()
        assert not abandoned(path, remove=True)
    finally:
        os.close(fd)


def test_fsck_reports_and_removes_abandoned_temp_files_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    env = {"PACKHOUSE_ADMIN_PASSWORD": "x", "PACKHOUSE_DATA": str(data)}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    _, left = _holder(data / "tmp", "die")
    blob_tmp = data / "blobs" / "tmp"
    LocalBlobStore(data / "blobs")
    stale_blob = blob_tmp / "blob-abc123"
    stale_blob.write_bytes(b"a blob cut short")  # by a version without locks, or a crash
    live, in_use = _holder(data / "tmp", "hold")
    try:
        result = runner.invoke(app, ["fsck"], env=env)
        assert result.exit_code == 0, result.output
        assert f"abandoned temporary file {left}" in result.output
        assert str(stale_blob) in result.output
        assert str(in_use) not in result.output
        assert "2 abandoned temporary files" in result.output
        assert left.exists()
        assert stale_blob.exists()

        result = runner.invoke(app, ["fsck", "--remove"], env=env)
        assert result.exit_code == 0, result.output
        assert f"abandoned temporary file {left} (removed)" in result.output
        assert not left.exists()
        assert not stale_blob.exists()
        assert in_use.exists()
        again = runner.invoke(app, ["fsck"], env=env)
        assert "0 abandoned temporary files" in again.output
    finally:
        _release(live)


def test_blob_writes_leave_no_temporary_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    sha = Sha256("c" * 64)
    store.put_bytes(sha, b"bytes")
    assert store.exists(sha)
    assert list(store.temp_dirs()[0].iterdir()) == []
