"""search index: search_entries, with FTS5 (SQLite) or a GIN-indexed tsvector (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# PostgreSQL: the words searched, kept in a generated column (search_document, read by
# db/search_store.py) so ranking and index rechecks read them instead of making them again
PG_DOCUMENT = (
    "setweight(to_tsvector('simple', translate(name, '-_.', '   ')), 'A')"
    " || setweight(to_tsvector('simple', summary), 'B')"
)

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(name, summary, content='search_entries',"
    " content_rowid='project_id', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')",
    "CREATE TRIGGER search_fts_insert AFTER INSERT ON search_entries BEGIN"
    " INSERT INTO search_fts(rowid, name, summary)"
    " VALUES (new.project_id, new.name, new.summary); END",
    "CREATE TRIGGER search_fts_delete AFTER DELETE ON search_entries BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, name, summary)"
    " VALUES ('delete', old.project_id, old.name, old.summary); END",
    "CREATE TRIGGER search_fts_update AFTER UPDATE ON search_entries BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, name, summary)"
    " VALUES ('delete', old.project_id, old.name, old.summary);"
    " INSERT INTO search_fts(rowid, name, summary)"
    " VALUES (new.project_id, new.name, new.summary); END",
]

# Every project with a live artifact, from its newest live upload (the newest not yanked, if
# any): what db/search_store.py refresh writes, as it stood at this revision.
BACKFILL = """
INSERT INTO search_entries
    (project_id, repository_id, name, display_name, version, summary, uploaded)
SELECT p.id, p.repository_id, p.name, p.display_name, a.version,
       TRIM(COALESCE({summary}, {conda_summary}, '')), a.upload_time
FROM projects p
JOIN artifacts a ON a.id = (
    SELECT a2.id FROM artifacts a2
    WHERE a2.project_id = p.id AND a2.deleted = {false}
    ORDER BY a2.yanked, a2.id DESC
    LIMIT 1
)
"""


def upgrade() -> None:
    op.create_table(
        "search_entries",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("uploaded", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_search_entries_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_search_entries_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_search_entries")),
    )
    op.create_index("ix_search_entries_name", "search_entries", ["name"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
        summary = "json_extract(a.metadata, '$.summary')"
        conda_summary = "json_extract(a.metadata, '$.about.summary')"
        false = "0"
    else:
        op.execute(
            "ALTER TABLE search_entries ADD COLUMN search_document tsvector"
            f" GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED"
        )
        # fastupdate off: with it, new entries wait in the index's pending list, which every
        # search reads through until a vacuum (10,000 pending made a search take 280 ms)
        op.execute(
            "CREATE INDEX ix_search_entries_document ON search_entries"
            " USING gin (search_document) WITH (fastupdate = off)"
        )
        summary = "(a.metadata ->> 'summary')"
        conda_summary = "(a.metadata -> 'about' ->> 'summary')"
        false = "false"
    op.execute(BACKFILL.format(summary=summary, conda_summary=conda_summary, false=false))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER search_fts_{trigger}")
        op.execute("DROP TABLE search_fts")
    op.drop_table("search_entries")
