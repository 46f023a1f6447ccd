"""Alembic environment: runs on the connection handed over in config.attributes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from packhouse.db.schema import SEARCH_OBJECTS, metadata


def declared(name: str | None, type_: str, parents: object) -> bool:
    """Autogenerate leaves alone what migration 0013 makes for one dialect only."""
    return not (name or "").startswith(SEARCH_OBJECTS)


config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` run by hand with sqlalchemy.url set
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=metadata, render_as_batch=True, include_name=declared
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, include_name=declared
    )
    with context.begin_transaction():
        context.run_migrations()
