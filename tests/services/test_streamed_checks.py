"""The archive check run beside an upload (services/streamed_checks.py) gives what the check
of the finished file gives: the same value, or the same refusal with the same message, for
real packages and for every hostile .tar.bz2 body of the format tests' tables."""

from __future__ import annotations

import bz2
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.builders import load_module

from packhouse.db.schema import blob_claims
from packhouse.errors import InvalidUpload
from packhouse.formats.conda.archive import Limits, read_package
from packhouse.services import streamed_checks
from packhouse.services.access import Principal
from packhouse.services.conda_uploads import CondaUploadOutcome, upload_conda
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.types import Format
from packhouse.wiring import Services

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
FORMATS = ROOT / "tests" / "formats"
condas = load_module("streamed_conda_tricks", FORMATS / "conda" / "test_conda_package_tricks.py")

Case = tuple[str, str, Callable[[], bytes]]  # id, filename, bytes


def cases() -> list[Case]:
    found: list[Case] = [
        (path.name, path.name, path.read_bytes)
        for path in sorted(DATA.rglob("*"))
        if path.name.endswith(".tar.bz2")
    ]
    for label, (body, _) in condas.BODIES.items():
        found.append((f"tar.bz2 {label}", f"{condas.STEM}.tar.bz2", partial(condas.tar_bz2, body)))
    return found


CASES = cases()


def outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return "value", call()
    except Exception as error:  # the refusal: its kind and its message
        return type(error).__name__, str(error)


def file_check(path: Path, filename: str) -> tuple[str, object]:
    return outcome(lambda: read_package(path, filename))


def service_check(incoming: IncomingFile, filename: str) -> tuple[str, object]:
    """As the upload service takes it: the streamed outcome, else the check run now."""
    key = streamed_checks.conda_key(filename, Limits())
    return outcome(
        lambda: read_package(
            incoming.path, filename, members=streamed_checks.result(incoming, key, lambda: None)
        )
    )


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def send(incoming: IncomingFile, data: bytes, size: int) -> threading.Thread:
    """Write `data` into `incoming` from another thread, as the event loop does."""

    def feed() -> None:
        for chunk in pieces(data, size):
            incoming.write(chunk)
        incoming.finish()

    thread = threading.Thread(target=feed)
    thread.start()
    return thread


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("chunk", [511, 64 * 1024])
def test_the_streamed_check_answers_as_the_file_check(
    tmp_path: Path, case: Case, chunk: int
) -> None:
    _, filename, make = case
    data = make()
    path = tmp_path / filename
    path.write_bytes(data)
    expected = file_check(path, filename)
    with IncomingFile(tmp_path / "in", len(data)) as incoming:
        streamed_checks.start(incoming, filename)
        assert incoming.checks, "the check runs beside the upload"
        send(incoming, data, chunk).join()
        assert service_check(incoming, filename) == expected
        assert not incoming.checks


def early(tmp_path: Path, filename: str, data: bytes) -> str:
    """The refusal of `data` as known while the upload is not finished (a client still
    sending): all its bytes written, the end not yet."""
    with IncomingFile(tmp_path, len(data) + 1) as incoming:
        streamed_checks.start(incoming, filename)
        incoming.write(data)
        (future,) = incoming.checks.values()
        deadline = time.monotonic() + 30
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), "the check waited for the end of the upload"
        return str(future.exception())


def test_the_check_runs_before_the_upload_ends(tmp_path: Path) -> None:
    """A device near the start is refused while the rest of the body is still to come: a
    .tar.bz2 is decoded block by block (`bzip2 -1`: 100 kB blocks; a package of one block,
    as most are, is checked once that block is in)."""
    noise = os.urandom(256 * 1024)
    members = [condas.special("dev/tty", tarfile.CHRTYPE), condas.file("lib/x", noise)]
    data = bz2.compress(condas.tar([*condas.INFO, *members]), 1)
    assert "'dev/tty' is a character device" in early(tmp_path, f"{condas.STEM}.tar.bz2", data)


def test_a_discarded_upload_stops_its_check(tmp_path: Path) -> None:
    path = next(DATA.rglob("zlib-*.tar.bz2"))
    data = path.read_bytes()
    incoming = IncomingFile(tmp_path, len(data))
    streamed_checks.start(incoming, path.name)
    (future,) = incoming.checks.values()
    incoming.write(data[:1000])  # cut short by the client
    incoming.discard()
    deadline = time.monotonic() + 30
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert future.cancelled()
    assert not any(t.name == "packhouse-archive-check" for t in threading.enumerate())


def test_other_formats_are_left_to_the_upload_service(tmp_path: Path) -> None:
    for filename in (
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.zip",
        "demo-1.0.tar.gz",
        f"{condas.STEM}.conda",
    ):
        with IncomingFile(tmp_path, 10) as incoming:
            streamed_checks.start(incoming, filename)
            assert incoming.checks == {}


# --- through the upload service ----------------------------------------------------------------

ADMIN = Principal("admin", 1, True)


@pytest.fixture
def svc(memory_services: Services) -> Services:
    for name in ("ch", "ch2"):
        create_repository(memory_services.ctx, actor="test", name=name, fmt=Format.CONDA)
    return memory_services


def put(svc: Services, filename: str, data: bytes, channel: str = "ch") -> CondaUploadOutcome:
    """As the PUT route does: the check started with the body, the service after it."""
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 30)
    try:
        streamed_checks.start(incoming, filename)
        send(incoming, data, 4096).join()
        repo = svc.catalog.get(Format.CONDA, channel)
        return upload_conda(svc.ctx, repo, ADMIN, filename, incoming, "noarch")
    finally:
        incoming.discard()


def claims(svc: Services) -> int:
    with svc.ctx.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(blob_claims)).scalar_one())


@pytest.mark.parametrize("extension", [".tar.bz2", ".conda"])
def test_a_refused_package_leaves_no_blob_and_no_claim(svc: Services, extension: str) -> None:
    body, message = condas.BODIES["character device"]
    data = condas.tar_bz2(body) if extension == ".tar.bz2" else condas.conda(body)
    with pytest.raises(InvalidUpload) as refused:
        put(svc, condas.STEM + extension, data)
    assert message in str(refused.value)
    assert list(svc.ctx.blobs.iter_blobs()) == []
    assert claims(svc) == 0


@pytest.mark.parametrize("extension", [".tar.bz2", ".conda"])
def test_a_stored_package_keeps_its_blob_once_and_again(svc: Services, extension: str) -> None:
    data = (condas.tar_bz2 if extension == ".tar.bz2" else condas.conda)(condas.LEGITIMATE)
    assert put(svc, condas.STEM + extension, data).created
    assert not put(svc, condas.STEM + extension, data).created  # the same file: kept
    assert [b.size for b in svc.ctx.blobs.iter_blobs()] == [len(data)]
    assert claims(svc) == 0
