"""Uploads at once against the real server: one filename with two contents (exactly one
wins), 50 files into one PyPI project and 50 into one conda subdir (all listed afterwards),
and readers polling meanwhile that see only complete pages and valid JSON."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
import pytest
import zstandard

from tests.builders import load_module
from tests.conftest import ADMIN_PASSWORD, SIMPLE_JSON, RunningServer

crash = load_module(
    "crash_rounds", Path(__file__).resolve().parents[2] / "bench" / "crash_rounds.py"
)


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=120)


def _at_once(server: RunningServer, uploads: list[object]) -> list[httpx.Response]:
    """Send every upload at the same moment, each from its own connection."""
    clients = [_client(server) for _ in uploads]
    for c in clients:
        c.get("/healthz")  # each connection is open before the race starts
    start = threading.Barrier(len(uploads))
    answers: list[httpx.Response | None] = [None] * len(uploads)

    def one(i: int) -> None:
        upload = uploads[i]
        start.wait()
        answers[i] = _send(clients[i], upload)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for c in clients:
        c.close()
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _send(client: httpx.Client, upload: object) -> httpx.Response:
    """crash.send, keeping the whole response."""
    kept: list[httpx.Response] = []

    def hook(response: httpx.Response) -> None:
        response.read()
        kept.append(response)

    client.event_hooks["response"] = [hook]
    crash.send(client, upload)
    client.event_hooks["response"] = []
    return kept[-1]


def _wheel(name: str, version: str, summary: str) -> object:
    data = crash.wheel_bytes(name, version, summary=summary)
    return crash.Upload("pypi-small", crash.wheel_filename(name, version), data)


def _conda(name: str, version: str, content: bytes, kind: str = "conda-put") -> object:
    files = {f"share/{name}/{version}.txt": content}
    filename, data = crash.package_bytes(name, version, "0", subdir="noarch", files=files)
    return crash.Upload(kind, filename, data, "noarch")


@pytest.mark.parametrize("fmt", ["pypi", "conda"])
def test_one_filename_two_contents_at_once_exactly_one_wins(
    server: RunningServer, fmt: str
) -> None:
    for round_ in range(4):
        if fmt == "pypi":
            rivals = [_wheel("race", f"1.{round_}", f"contender {i}") for i in range(3)]
        else:
            rivals = [_conda("race", f"1.{round_}", f"contender {i}".encode()) for i in range(3)]
        assert len({u.filename for u in rivals}) == 1
        assert len({u.sha256 for u in rivals}) == 3
        answers = _at_once(server, rivals)
        won = [u for u, a in zip(rivals, answers, strict=True) if a.status_code in (200, 201)]
        lost = [a for a in answers if a.status_code not in (200, 201)]
        assert len(won) == 1, [(a.status_code, a.text) for a in answers]
        for answer in lost:
            assert answer.status_code == 409, answer.text
            assert "already exists" in answer.text
            assert "different" in answer.text
        winner = won[0]
        with _client(server) as client:
            if fmt == "pypi":
                path = f"/files/{winner.sha256}/{winner.filename}"
                listed = [
                    f["hashes"]["sha256"]
                    for f in client.get("/pypi/main/simple/race/", headers=SIMPLE_JSON).json()[
                        "files"
                    ]
                    if f["filename"] == winner.filename
                ]
            else:
                path = f"/conda/main/noarch/{winner.filename}"
                doc = client.get("/conda/main/noarch/repodata.json").json()
                listed = [doc["packages.conda"][winner.filename]["sha256"]]
            stored = client.get(path)
        assert stored.status_code == 200
        assert hashlib.sha256(stored.content).hexdigest() == winner.sha256
        assert listed == [winner.sha256]


class Readers:
    """Threads polling pages while uploads run: every answer parsed, one ETag one body, and
    a page never goes back to fewer files than a reader saw before."""

    def __init__(self, server: RunningServer, pages: list[tuple[str, dict[str, str]]]) -> None:
        self.server = server
        self.pages = pages
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.etags: dict[tuple[str, str], str] = {}
        self.reads = 0
        self.not_modified = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._poll) for _ in range(3)]

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def _poll(self) -> None:
        most: dict[str, int] = {}
        last_etag: dict[str, str] = {}
        with _client(self.server) as client:
            while not self.stop.is_set():
                for path, headers in self.pages:
                    key = path + headers.get("Accept", "")
                    sent = dict(headers)
                    if key in last_etag and self.reads % 2:
                        sent["If-None-Match"] = last_etag[key]
                    response = client.get(path, headers=sent)
                    self._check(key, path, response, most, last_etag)

    def _check(
        self,
        key: str,
        path: str,
        response: httpx.Response,
        most: dict[str, int],
        last_etag: dict[str, str],
    ) -> None:
        with self.lock:
            self.reads += 1
        if response.status_code == 304:
            with self.lock:
                self.not_modified += 1
            return
        if response.status_code == 404:
            if key in most:
                self._problem(f"{path}: 404 after it was served")
            return
        if response.status_code != 200:
            self._problem(f"{path}: HTTP {response.status_code} {response.text[:200]}")
            return
        try:
            count = _count(path, response)
        except Exception as exc:  # anything that does not parse is the finding
            self._problem(f"{path}: does not parse ({type(exc).__name__}: {exc})")
            return
        if count < most.get(key, 0):
            self._problem(f"{path}: {count} entries after {most[key]} were served")
        most[key] = max(count, most.get(key, 0))
        etag = response.headers.get("etag")
        if etag:
            last_etag[key] = etag
            digest = hashlib.sha256(response.content).hexdigest()
            with self.lock:
                if self.etags.setdefault((key, etag), digest) != digest:
                    self.problems.append(f"{path}: ETag {etag} sent with two bodies")

    def _problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def _count(path: str, response: httpx.Response) -> int:
    """How many files a page lists, parsing it whole (raises if it does not parse)."""
    body = response.content
    if path.endswith("repodata_shards.msgpack.zst"):
        index = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(body))
        return len(index["shards"])
    if path.endswith(".zst"):
        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 30)
    if path.endswith((".json", ".json.zst")):
        doc = orjson.loads(body)
        return len(doc["packages"]) + len(doc["packages.conda"])
    if "json" in response.headers["content-type"]:
        return len(orjson.loads(body)["files"])
    text = body.decode()
    assert text.rstrip().endswith("</html>") or text.rstrip().endswith("-->"), text[-200:]
    return text.count("<a ")


def test_fifty_uploads_at_once_into_one_project_and_one_subdir_readers_see_whole_pages(
    server: RunningServer,
) -> None:
    wheels = [_wheel("busy", f"2.{i}", f"busy {i}") for i in range(50)]
    packages = [
        _conda("busy", f"2.{i}", f"busy {i}".encode(), "conda-form" if i % 2 else "conda-put")
        for i in range(50)
    ]
    pages = [
        ("/pypi/main/simple/busy/", SIMPLE_JSON),
        ("/pypi/main/simple/busy/", {"Accept": "text/html"}),
        ("/conda/main/noarch/repodata.json", {}),
        ("/conda/main/noarch/repodata.json.zst", {}),
        ("/conda/main/noarch/repodata_shards.msgpack.zst", {}),
    ]
    with Readers(server, pages) as readers:
        answers = _at_once(server, [*wheels, *packages])
    assert [a.status_code for a in answers[:50]] == [200] * 50, answers[0].text
    assert [a.status_code for a in answers[50:]] == [201] * 50, answers[50].text
    assert readers.problems == []
    assert readers.reads > len(pages)

    with _client(server) as client:
        files = client.get("/pypi/main/simple/busy/", headers=SIMPLE_JSON).json()["files"]
        listed = {f["filename"]: f["hashes"]["sha256"] for f in files}
        assert listed == {u.filename: u.sha256 for u in wheels}
        html = client.get("/pypi/main/simple/busy/").text
        assert all(u.filename in html for u in wheels)
        records = client.get("/conda/main/noarch/repodata.json").json()["packages.conda"]
        busy = {f: r["sha256"] for f, r in records.items() if r["name"] == "busy"}
        assert busy == {u.filename: u.sha256 for u in packages}
        shard_of = _shard(client, "busy")
        assert set(shard_of["packages.conda"]) == {u.filename for u in packages}


def _shard(client: httpx.Client, name: str) -> dict[str, Any]:
    index = msgpack.unpackb(
        zstandard.ZstdDecompressor().decompress(
            client.get("/conda/main/noarch/repodata_shards.msgpack.zst").content
        )
    )
    digest = index["shards"][name].hex()
    raw = client.get(f"/conda/main/noarch/shards/{digest}.msgpack.zst").content
    shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(raw))
    assert hashlib.sha256(raw).hexdigest() == digest
    return dict(shard)
