"""Downloads from an upstream, over in-memory stores: what an abandoned one does (completed
and kept in the background, at most BACKGROUND_MAX at once, nothing kept on a mismatch) and
the md5 check of a file listed without a sha256."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from contextlib import ExitStack

import httpx
import pytest

from packhouse.db.repository_store import Repository
from packhouse.errors import UpstreamError
from packhouse.services import upstream_download
from packhouse.services.repos import create_repository
from packhouse.services.upstream_cache import StoredFile
from packhouse.services.upstream_download import BACKGROUND_MAX, Download
from packhouse.storage.base import IncomingFile
from packhouse.types import Format, RepoKind, Sha256
from packhouse.upstream.http import UpstreamStream
from packhouse.wiring import Services

DATA = os.urandom(3 * 1024 * 1024 + 5)  # several chunks
NAME = "bulky-1.0-py3-none-any.whl"


def proxy(svc: Services) -> Repository:
    return create_repository(
        svc.ctx,
        actor="t",
        name="up",
        fmt=Format.PYPI,
        kind=RepoKind.PROXY,
        upstream_url="https://pypi.example.test/simple/",
    )


class Released:
    """The download's release of its one-fetch lock, which a waiting request waits for."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()


def download(
    svc: Services, repo: Repository, *, sha256: str = "", md5: str | None = None
) -> tuple[Download, Released]:
    response = httpx.Response(200, content=DATA, request=httpx.Request("GET", "https://x/"))
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 30, NAME)
    resources = ExitStack()
    resources.enter_context(incoming)
    released = Released()
    expected = StoredFile(repo.id, NAME, "bulky", None, Sha256(sha256), 0)
    stream = UpstreamStream(response)
    return Download(svc.upstreams, repo, expected, md5, stream, incoming, resources, released), (
        released
    )


def test_an_abandoned_download_is_completed_and_kept(memory_services: Services) -> None:
    svc = memory_services
    repo = proxy(svc)
    started, released = download(svc, repo, sha256=hashlib.sha256(DATA).hexdigest())
    first = started.next_chunk()
    assert first is not None
    assert DATA.startswith(first)
    started.abandon()  # the client went away after the first chunk
    assert released.event.wait(30)
    kept = svc.upstreams.file_in(repo.id, NAME)
    assert kept is not None
    assert kept.size == len(DATA)
    assert svc.ctx.blobs.exists(kept.sha256)
    assert not list(svc.ctx.tmp_dir.glob("incoming-*"))


def test_without_a_sha256_the_md5_is_checked_and_the_computed_sha256_kept(
    memory_services: Services,
) -> None:
    svc = memory_services
    repo = proxy(svc)
    wrong, _ = download(svc, repo, md5="0" * 32)
    with pytest.raises(UpstreamError, match="does not match the md5"):
        wrong.finish()
    assert svc.upstreams.file_in(repo.id, NAME) is None
    right, _ = download(svc, repo, md5=hashlib.md5(DATA, usedforsecurity=False).hexdigest())
    assert right.finish().sha256 == hashlib.sha256(DATA).hexdigest()
    anything, _ = download(svc, repo)  # neither hash given: the bytes are the file
    assert anything.finish().sha256 == hashlib.sha256(DATA).hexdigest()


def test_an_abandoned_download_that_does_not_match_keeps_nothing(
    memory_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    svc = memory_services
    repo = proxy(svc)
    started, released = download(svc, repo, sha256="f" * 64)
    with caplog.at_level(logging.WARNING, "packhouse.proxy"):
        started.abandon()
        for thread in threading.enumerate():  # the one completing it, which logs why
            if thread.name.startswith("upstream-"):
                thread.join(30)
    assert released.event.is_set()
    assert "does not match the sha256" in caplog.text
    assert svc.upstreams.file_in(repo.id, NAME) is None
    assert not list(svc.ctx.tmp_dir.glob("incoming-*"))


def test_beyond_the_cap_an_abandoned_download_is_dropped(memory_services: Services) -> None:
    svc = memory_services
    repo = proxy(svc)
    slots = upstream_download._background
    taken = 0
    try:
        while slots.acquire(blocking=False):  # as if BACKGROUND_MAX were being completed
            taken += 1
        assert taken == BACKGROUND_MAX
        dropped, released = download(svc, repo)
        dropped.abandon()
        assert released.event.is_set()  # closed at once: the next request fetches again
        assert svc.upstreams.file_in(repo.id, NAME) is None
    finally:
        for _ in range(taken):
            slots.release()
    assert not list(svc.ctx.tmp_dir.glob("incoming-*"))
