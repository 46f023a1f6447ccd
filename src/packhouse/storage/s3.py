"""Blobs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from packhouse.config import S3Settings
from packhouse.errors import ArtifactNotFound
from packhouse.storage.base import BlobInfo
from packhouse.types import Sha256


class S3BlobStore:
    def __init__(self, settings: S3Settings, tmp_dir: Path, client: Any = None) -> None:
        import boto3

        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.tmp_dir = tmp_dir
        self.client = client or boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=(
                settings.access_key_id.get_secret_value() if settings.access_key_id else None
            ),
            aws_secret_access_key=(
                settings.secret_access_key.get_secret_value()
                if settings.secret_access_key
                else None
            ),
        )

    def _key(self, sha256: Sha256) -> str:
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def put_file(self, sha256: Sha256, path: Path) -> None:
        if not self.exists(sha256):
            self.client.upload_file(str(path), self.bucket, self._key(sha256))

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        if not self.exists(sha256):
            self.client.put_object(Bucket=self.bucket, Key=self._key(sha256), Body=data)

    def exists(self, sha256: Sha256) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def open(self, sha256: Sha256, start: int = 0, end: int | None = None) -> BinaryIO:
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256), **extra)
        except ClientError as exc:
            raise _missing_or(exc, sha256) from None
        return cast(BinaryIO, response["Body"])

    def size(self, sha256: Sha256) -> int:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            raise _missing_or(exc, sha256) from None
        return int(head["ContentLength"])

    def url_for(self, sha256: Sha256, filename: str) -> str | None:
        if self.settings.serve != "redirect":
            return None
        return self.presigned_url(sha256, filename)

    def local_path(self, sha256: Sha256) -> Path | None:
        return None

    def presigned_url(self, sha256: Sha256, filename: str) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(sha256),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=self.settings.presign_seconds,
        )
        return url

    def delete(self, sha256: Sha256) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def iter_blobs(self) -> Iterator[BlobInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                yield BlobInfo(Sha256(name), int(item["Size"]), item.get("LastModified"))

    def temp_dirs(self) -> list[Path]:
        return []  # uploads stream from the server's incoming files, which it clears itself


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


def _missing_or(exc: Exception, sha256: str) -> Exception:
    """ArtifactNotFound for a missing object; any other S3 failure (access, outage) as is,
    so it is logged and answered as a server error, not as a missing file."""
    if _is_missing(exc):
        return ArtifactNotFound(f"blob {sha256} is missing from the store")
    return exc
