"""blob claims: blobs being written for a row not yet committed, or being deleted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_claims")),
    )
    with op.batch_alter_table("blob_claims", schema=None) as batch_op:
        batch_op.create_index("ix_blob_claims_sha256", ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blob_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_blob_claims_sha256")
    op.drop_table("blob_claims")
