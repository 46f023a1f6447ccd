"""What the web UI's administration pages read: the journal, filtered, and a repository's
grants. (Changes go through services/accounts.py and services/repos.py, like the CLI's.)"""

from __future__ import annotations

from collections.abc import Sequence

from packhouse.db import journal_store, user_store
from packhouse.db.journal_store import JournalEntry
from packhouse.db.repository_store import Repository
from packhouse.db.user_store import Grant
from packhouse.services.context import Context

MAX_JOURNAL = 500


def journal(
    ctx: Context,
    *,
    repository: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    limit: int = 100,
) -> Sequence[JournalEntry]:
    with ctx.db.read() as conn:
        return journal_store.entries(
            conn,
            repository=repository or None,
            actor=actor or None,
            action=action or None,
            project=project or None,
            limit=max(1, min(limit, MAX_JOURNAL)),
        )


def grants(ctx: Context, repo: Repository) -> Sequence[Grant]:
    with ctx.db.read() as conn:
        found = user_store.grants_for(conn, repo.id)
    return sorted(found, key=lambda g: (g.principal_kind, g.principal))


def memberships(ctx: Context) -> dict[int, frozenset[str]]:
    with ctx.db.read() as conn:
        return user_store.all_memberships(conn)
