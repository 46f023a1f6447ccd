"""Whether the database is already at the newest migration, told without Alembic.

Every data command and the server bring the schema to the head first. Importing Alembic and
letting it read its script directory costs most of a quick command's start-up, so the head is
read from the migration files' own `revision = "..."` / `down_revision = "..."` lines and
compared with the `alembic_version` row. Anything unusual (no such table, several heads,
a merge migration, an unreadable file) answers "not known to be at head", and Alembic runs.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

VERSIONS = Path(__file__).parent / "migrations" / "versions"
_COMMENT = r"\s*(?:#.*)?$"  # a comment may follow the value
_REVISION = re.compile(r'^revision\s*=\s*["\']([^"\']+)["\']' + _COMMENT, re.M)
_DOWN = re.compile(r'^down_revision\s*=\s*(?:["\']([^"\']+)["\']|None)' + _COMMENT, re.M)


@cache
def head_revision(versions: Path = VERSIONS) -> str | None:
    """The one head of the migration files, or None when it cannot be told simply."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name == "__init__.py":
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except OSError:
            return None
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def stored_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (None: none, several, or no table yet)."""
    try:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        conn.rollback()  # PostgreSQL refuses anything more in a failed transaction
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def at_head(conn: Connection) -> bool:
    head = head_revision()
    return head is not None and stored_revision(conn) == head
