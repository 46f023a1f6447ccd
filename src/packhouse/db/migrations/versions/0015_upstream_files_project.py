"""upstream_files by project: a PyPI proxy reads the files it keeps of a project for every
page it shows (the first bytes kept win: services/pypi_proxy.py)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_upstream_files_project", "upstream_files", ["repository_id", "project"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_upstream_files_project", table_name="upstream_files")
