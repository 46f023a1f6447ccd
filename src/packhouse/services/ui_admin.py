"""What only the web UI's administration pages read: every user's groups. (The journal and
the grants: services/audit.py; changes: services/accounts.py and services/repos.py.)"""

from __future__ import annotations

from packhouse.db import user_store
from packhouse.services.context import Context


def memberships(ctx: Context) -> dict[int, frozenset[str]]:
    with ctx.db.read() as conn:
        return user_store.all_memberships(conn)
