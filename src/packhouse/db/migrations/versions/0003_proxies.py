"""proxy repositories: upstream credentials, ttl, offline, cooldowns; upstream page and file
caches

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_user", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("upstream_password", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("upstream_ttl", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("offline", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("min_age", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("exclude_newer", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cooldown_exempt", sa.JSON(), nullable=True))
    op.create_table(
        "upstream_pages",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("blob_sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_upstream_pages_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "key", name=op.f("pk_upstream_pages")),
    )
    op.create_table(
        "upstream_files",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("subdir", sa.String(length=40), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_upstream_files_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "filename", name=op.f("pk_upstream_files")),
    )
    with op.batch_alter_table("upstream_files", schema=None) as batch_op:
        batch_op.create_index("ix_upstream_files_sha256", ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upstream_files", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_files_sha256")
    op.drop_table("upstream_files")
    op.drop_table("upstream_pages")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        for column in (
            "cooldown_exempt",
            "exclude_newer",
            "min_age",
            "offline",
            "upstream_ttl",
            "upstream_password",
            "upstream_user",
        ):
            batch_op.drop_column(column)
