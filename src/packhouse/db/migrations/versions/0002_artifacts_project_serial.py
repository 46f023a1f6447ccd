"""index artifacts by project and serial, for incremental page renders

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_artifacts_project_serial", "artifacts", ["project_id", "serial"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_artifacts_project_serial", table_name="artifacts")
