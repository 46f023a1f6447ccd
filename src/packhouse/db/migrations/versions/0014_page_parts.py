"""page parts: each PyPI file's parts of its project's pages, rendered once when stored

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _parts_table(name: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f(f"fk_{name}_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f(f"fk_{name}_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "artifact_id", name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )
    op.create_index(f"ix_{name}_artifact", name, ["artifact_id"])


def upgrade() -> None:
    # Not filled here: the readers render a file without parts from its artifact's columns,
    # as they did before (a migration does not import the renderers, which change).
    _parts_table(
        "page_parts",
        sa.Column("html", sa.LargeBinary(), nullable=False),
        sa.Column("json", sa.LargeBinary(), nullable=False),
    )
    _parts_table(
        "api_parts",
        sa.Column("yanked", sa.Boolean(), nullable=False),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.Column("api", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_artifacts_project_live", "artifacts", ["project_id", "deleted"])


def downgrade() -> None:
    op.drop_index("ix_artifacts_project_live", table_name="artifacts")
    for name in ("api_parts", "page_parts"):
        op.drop_index(f"ix_{name}_artifact", table_name=name)
        op.drop_table(name)
