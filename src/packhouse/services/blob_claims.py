"""Writing and deleting blobs without holding the write lock across a blob-store call.

A blob is stored before the row that needs it commits, and deleted after a check that no row
needs it. With S3 each of those is a network request, and none may run inside a write
transaction: every writer of every process would wait for it. So each side first claims the
blob in a short transaction (table `blob_claims`):

- a writer claims "use" (waiting while a delete of the same bytes is under way), stores the
  blob, commits its row, and gives the claim up (in that same transaction where it can);
- a delete claims "delete" only for blobs that no row and no "use" claim needs, deletes
  them from the store outside any transaction, then gives the claim up.

So a blob that a committed row needs is never deleted under it, and a crashed process's
claims expire after `CLAIM_SECONDS`. The claims are about processes, not about the domain:
they use the wall clock, not the context's (which tests move).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from packhouse.db import artifact_store, blob_claim_store
from packhouse.errors import Unavailable
from packhouse.services.context import Context
from packhouse.types import Sha256

CLAIM_SECONDS = 3600  # an upload or delete still going after this long loses its claim
WAIT_SECONDS = 30.0  # a writer waits this long for a delete of the same bytes to finish
_POLL = 0.05

log = logging.getLogger("packhouse.blobs")


def _now() -> datetime:
    return datetime.now(UTC)


class UseClaim:
    """Held while a writer stores blobs for a row it has not committed yet."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.released = False

    def release(self, conn: Connection) -> None:
        """Give the claim up in the transaction that commits the row using the blobs."""
        blob_claim_store.remove(conn, self.ids)
        self.released = True


@contextmanager
def using(ctx: Context, shas: Iterable[str]) -> Iterator[UseClaim]:
    """Claim `shas` for use: while the claim is held, nothing deletes those blobs."""
    wanted = sorted(set(shas))
    if not wanted:
        yield UseClaim([])
        return
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with ctx.db.write() as conn:
            now = _now()
            if not blob_claim_store.held(conn, wanted, "delete", now):
                expires = now + timedelta(seconds=CLAIM_SECONDS)
                ids = blob_claim_store.add(conn, wanted, "use", expires)
                break
        if time.monotonic() > deadline:
            raise Unavailable(
                "the blob store is deleting a file with the same bytes as this one; send it"
                " again in a moment"
            )
        time.sleep(_POLL)
    claim = UseClaim(ids)
    try:
        yield claim
    except BaseException:
        # the transaction that released it (if any) rolled back: give it up for sure
        _remove(ctx, ids)
        raise
    if not claim.released:
        _remove(ctx, ids)


def delete_unused(ctx: Context, shas: Iterable[str]) -> list[str]:
    """Delete the blobs that no row and no writer needs; returns those deleted."""
    wanted = sorted(set(shas))
    if not wanted:
        return []
    with ctx.db.write() as conn:
        now = _now()
        blob_claim_store.remove_expired(conn, now)
        claimed = blob_claim_store.held(conn, wanted, "use", now)
        doomed = [
            sha
            for sha in wanted
            if sha not in claimed and not artifact_store.sha256_in_use(conn, sha)
        ]
        ids = blob_claim_store.add(conn, doomed, "delete", now + timedelta(seconds=CLAIM_SECONDS))
    try:
        for sha in doomed:
            ctx.blobs.delete(Sha256(sha))
    finally:
        _remove(ctx, ids)
    return doomed


def _remove(ctx: Context, ids: list[int]) -> None:
    try:
        with ctx.db.write() as conn:
            blob_claim_store.remove(conn, ids)
    except Exception:  # the claims expire by themselves; the caller's own error matters more
        log.warning("could not give up blob claims %s; they expire by themselves", ids)
