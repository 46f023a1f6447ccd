"""A file coming from an upstream for the first time: passed on to the client as it arrives,
written to a temporary file while hashed, checked, then kept as a blob by its sha256.

The check is the upstream index's sha256 when it gave one. Without one (old devpi,
pypiserver, Artifactory and directory listings), the md5 it gave is checked instead, if any,
and the sha256 is the one computed here: the first bytes kept are the file from then on
(services/pypi_proxy.py shows that sha256 and never lets a later page replace it).

A client that goes away mid-file does not end the fetch: the rest is read in the background
and kept, so the client's retry (pip and uv retry) and anyone waiting for the same file find
it cached. The usual bounds hold: the size cap (`upstream_max_file_bytes`) and the read
timeout, the file's one-fetch lock (one fetch per file), and at most BACKGROUND_MAX such
fetches at once in a process (beyond that an abandoned download is dropped, as before).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

from packhouse.db.repository_store import Repository
from packhouse.errors import PackhouseError, TooLarge, UpstreamError, UpstreamTooLarge
from packhouse.services import blob_claims
from packhouse.storage.base import IncomingFile
from packhouse.types import Sha256
from packhouse.upstream.http import UpstreamStream

if TYPE_CHECKING:
    from packhouse.services.upstream_cache import StoredFile, UpstreamCache

log = logging.getLogger("packhouse.proxy")

BACKGROUND_MAX = 4  # abandoned downloads a process completes at once
_background = threading.BoundedSemaphore(BACKGROUND_MAX)


class Download:
    """A file's first download. `next_chunk` gives its bytes as they arrive; after the last
    the whole is checked and kept (`stored`), or, on a mismatch, thrown away with
    UpstreamError. The file's one-fetch lock is held until the download is over: `close`
    ends it keeping nothing, `abandon` (the client went away) completes it in the
    background."""

    def __init__(
        self,
        cache: UpstreamCache,
        proxy: Repository,
        expected: StoredFile,  # its sha256 is what the index gave, or "" for none
        md5: str | None,
        response: UpstreamStream,
        incoming: IncomingFile,
        resources: ExitStack,
        release: Callable[[], None],
    ) -> None:
        self._cache = cache
        self._proxy = proxy
        self._expected = expected
        self._md5 = md5
        self._response = response
        self._incoming = incoming
        self._resources = resources
        self._release = release
        self._parts = self._chunks()
        self._step = threading.Lock()  # one reader of `_parts` at a time
        self._over = False
        self.stored: StoredFile | None = None
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        length = response.headers.get("content-length", "")
        self.size = int(length) if length.isdigit() and not encoded else None

    def next_chunk(self) -> bytes | None:
        """The next bytes, or None after the last. The last chunk comes only once the whole
        is checked: a client is never sent a complete file that did not match."""
        with self._step:
            return next(self._parts, None)

    def _chunks(self) -> Iterator[bytes]:
        try:
            held = b""
            for chunk in self._response.iter_bytes(1024 * 1024):
                try:
                    self._incoming.write(chunk)
                except TooLarge as exc:
                    raise UpstreamTooLarge(str(exc)) from None
                if held:
                    yield held
                held = chunk
            self._keep()
            if held:
                yield held
        except UpstreamError:
            self._cache.stats.errors += 1
            raise
        finally:
            self.close()

    def finish(self) -> StoredFile:
        """Read the rest, check it and keep it; the stored file."""
        while self.next_chunk() is not None:
            pass
        assert self.stored is not None
        return self.stored

    def _keep(self) -> None:
        incoming, expected, cache = self._incoming, self._expected, self._cache
        incoming.finish()
        got = incoming.digests.sha256
        name, where = expected.filename, self._proxy.qualified_name
        if expected.sha256 and got != expected.sha256:
            raise UpstreamError(
                f"{name!r} from the upstream of {where} does not match the sha256 its index"
                f" gives (expected {expected.sha256}, got {got}); nothing was kept"
            )
        if not expected.sha256 and self._md5 and incoming.digests.md5 != self._md5:
            raise UpstreamError(
                f"{name!r} from the upstream of {where} does not match the md5 its index"
                f" gives (expected {self._md5}, got {incoming.digests.md5}); nothing was kept"
            )
        stored = dataclasses.replace(expected, sha256=Sha256(got), size=incoming.digests.size)
        with blob_claims.using(cache.ctx, [got]) as claim:
            cache.ctx.blobs.put_file(got, incoming.path)
            with cache.ctx.db.write() as conn:
                cache.add_file(conn, stored, cache.ctx.clock())
                claim.release(conn)
        self.stored = stored
        if not expected.sha256:
            cache.file_kept(stored)

    def close(self) -> None:
        """End the download keeping nothing not yet kept (a no-op once over): the upstream
        connection and the temporary file are closed, and whoever waits for this file may
        fetch it."""
        self._over = True
        try:
            self._resources.close()
        finally:
            self._release()

    def abandon(self) -> None:
        """The client went away: read the rest in the background and keep it (a no-op once
        over). Beyond BACKGROUND_MAX at once, the download is closed instead."""
        if self._over:
            return
        if not _background.acquire(blocking=False):
            log.info("%s: a client went away and %d abandoned downloads are being completed;"
                     " dropped", self._expected.filename, BACKGROUND_MAX)  # fmt: skip
            self.close()
            return

        def complete() -> None:
            try:
                self.finish()
                log.info("%s: completed after its client went away", self._expected.filename)
            except PackhouseError as exc:
                log.warning("%s; (its client had gone away)", exc.message)
            except Exception:
                log.exception("completing %s after its client went away", self._expected.filename)
            finally:
                self.close()
                _background.release()

        name = f"upstream-{self._expected.filename}"[:60]
        threading.Thread(target=complete, name=name, daemon=True).start()
