"""generations: the serial of the newest change to anything but files

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_generations")),
    )
    # nothing is known of the past: the newest serial counts as a change of structure
    op.execute(
        "INSERT INTO generations (name, serial)"
        " SELECT 'structure', COALESCE(MAX(serial), 0) FROM journal"
    )


def downgrade() -> None:
    op.drop_table("generations")
