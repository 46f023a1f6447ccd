"""What the journal and the grants say, read the same way by the CLI, the API and the web UI.
(Changes go through services/accounts.py and services/repos.py.)"""

from __future__ import annotations

from collections.abc import Sequence

from packhouse.db import journal_store, user_store
from packhouse.db.journal_store import JournalEntry
from packhouse.db.repository_store import Repository
from packhouse.db.user_store import Grant
from packhouse.services.context import Context


def journal(
    ctx: Context,
    *,
    repository: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    since: int | None = None,
    limit: int = 100,
) -> Sequence[JournalEntry]:
    """The newest `limit` entries matching every filter given (an empty one is no filter);
    a bare repository name means both formats' repositories of that name."""
    with ctx.db.read() as conn:
        return journal_store.entries(
            conn,
            repository=repository or None,
            actor=actor or None,
            action=action or None,
            project=project or None,
            since=since,
            limit=limit,
        )


def grants(ctx: Context, repo: Repository) -> Sequence[Grant]:
    """Who may do what in `repo`, by principal kind and name."""
    with ctx.db.read() as conn:
        found = user_store.grants_for(conn, repo.id)
    return sorted(found, key=lambda g: (g.principal_kind, g.principal))
