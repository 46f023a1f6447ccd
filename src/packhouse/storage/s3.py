"""Blobs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from packhouse.config import S3Settings
from packhouse.errors import ArtifactNotFound, Unavailable
from packhouse.storage.base import BlobInfo
from packhouse.types import Sha256


class S3BlobStore:
    def __init__(self, settings: S3Settings, tmp_dir: Path, client: Any = None) -> None:
        import boto3

        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.tmp_dir = tmp_dir
        from botocore.config import Config

        self.client = client or boto3.client(
            "s3",
            # bounded: an unreachable store answers the request 503 in seconds, not minutes
            config=Config(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            ),
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

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """The store unreachable, timing out or failing on its side is Unavailable (503,
        the request changed nothing and may be sent again), not an unexpected error."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = self.settings.endpoint_url or "S3"
        try:
            yield
        except BotoCoreError as exc:
            raise Unavailable(
                f"the blob store ({where}) cannot be reached ({type(exc).__name__}); nothing"
                " was changed: send the request again"
            ) from None
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if isinstance(status, int) and status >= 500:
                raise Unavailable(
                    f"the blob store ({where}) answered {status}; nothing was changed: send"
                    " the request again"
                ) from None
            raise

    def put_file(self, sha256: Sha256, path: Path) -> None:
        from boto3.exceptions import S3UploadFailedError

        if not self.exists(sha256):
            with self._reaching():
                try:
                    self.client.upload_file(str(path), self.bucket, self._key(sha256))
                except S3UploadFailedError as exc:  # the transfer manager's wrapping
                    raise Unavailable(
                        f"the blob store could not take the file ({exc}); nothing was"
                        " changed: send the request again"
                    ) from None

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        if not self.exists(sha256):
            with self._reaching():
                self.client.put_object(Bucket=self.bucket, Key=self._key(sha256), Body=data)

    def exists(self, sha256: Sha256) -> bool:
        from botocore.exceptions import ClientError

        with self._reaching():
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
        with self._reaching():
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self._key(sha256), **extra
                )
            except ClientError as exc:
                raise _missing_or(exc, sha256) from None
        return cast(BinaryIO, response["Body"])

    def size(self, sha256: Sha256) -> int:
        from botocore.exceptions import ClientError

        with self._reaching():
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
        with self._reaching():
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
