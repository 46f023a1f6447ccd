from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.conftest import S3Server

from packhouse.config import S3Settings
from packhouse.errors import ArtifactNotFound, TooLarge
from packhouse.storage.base import BlobStore, IncomingFile
from packhouse.storage.local import LocalBlobStore
from packhouse.storage.memory import MemoryBlobStore
from packhouse.storage.s3 import S3BlobStore
from packhouse.types import Sha256


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("seaweedfs")
        settings = S3Settings(endpoint_url=s3.endpoint, bucket=s3.bucket, prefix=s3.new_prefix())
        return S3BlobStore(settings, tmp_path, client=s3.client())
    return MemoryBlobStore()


def sha(data: bytes) -> Sha256:
    return Sha256(hashlib.sha256(data).hexdigest())


def test_put_open_exists_delete_and_iterate(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"wheel bytes")
    store.put_file(sha(b"wheel bytes"), source)
    store.put_bytes(sha(b"metadata"), b"metadata")
    assert store.exists(sha(b"wheel bytes"))
    with store.open(sha(b"metadata")) as handle:
        assert handle.read() == b"metadata"
    assert {b.sha256: b.size for b in store.iter_blobs()} == {
        sha(b"wheel bytes"): 11,
        sha(b"metadata"): 8,
    }
    store.delete(sha(b"metadata"))
    assert not store.exists(sha(b"metadata"))
    with pytest.raises(ArtifactNotFound):
        store.open(sha(b"metadata"))


def test_putting_the_same_blob_twice_keeps_the_first(store: BlobStore) -> None:
    store.put_bytes(sha(b"a"), b"a")
    store.put_bytes(sha(b"a"), b"a")
    assert [b.size for b in store.iter_blobs()] == [1]


def test_local_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put_bytes(sha(b"x"), b"x")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    path = store.local_path(sha(b"x"))
    assert path is not None
    assert path.read_bytes() == b"x"


def test_local_store_refuses_paths_that_are_not_sha256(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ArtifactNotFound):
        store.open(Sha256("../../etc/passwd"))


def test_incoming_file_hashes_and_caps_size(tmp_path: Path) -> None:
    with IncomingFile(tmp_path, max_bytes=10) as incoming:
        incoming.write(b"hello")
        assert incoming.digests.sha256 == sha(b"hello")
        assert incoming.digests.md5 == hashlib.md5(b"hello").hexdigest()  # noqa: S324
        with pytest.raises(TooLarge, match="limit of 10 bytes"):
            incoming.write(b" world!")
        path = incoming.path
    assert not path.exists()
