"""db/revision.py tells "already at the head" the way Alembic would, without Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from packhouse.db.engine import Database
from packhouse.db.migrate import alembic_config, upgrade
from packhouse.db.revision import VERSIONS, at_head, head_revision


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    db = Database("sqlite://")
    script = ScriptDirectory.from_config(alembic_config(db))
    assert head_revision() == script.get_current_head()
    db.dispose()


def test_a_database_behind_the_head_is_still_migrated_and_one_at_it_is_left_alone() -> None:
    db = Database("sqlite://")
    upgrade(db, "0001")
    with db.engine.connect() as conn:
        assert not at_head(conn)
    db.upgrade()
    with db.engine.connect() as conn:
        assert at_head(conn)
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            head_revision()
        )
    db.dispose()


def test_an_empty_database_is_not_at_head() -> None:
    db = Database("sqlite://")
    with db.engine.connect() as conn:
        assert not at_head(conn)
    db.dispose()


def test_several_heads_or_an_unreadable_chain_are_not_guessed(tmp_path: Path) -> None:
    def write(name: str, revision: str, down: str) -> None:
        (tmp_path / name).write_text(f'revision = "{revision}"\ndown_revision = {down}\n')

    write("0001_a.py", "0001", "None")
    write("0002_b.py", "0002", '"0001"')
    assert head_revision(tmp_path) == "0002"
    head_revision.cache_clear()
    write("0002_c.py", "0002c", '"0001"')  # two helpers chained onto the same parent
    assert head_revision(tmp_path) is None
    head_revision.cache_clear()
    (tmp_path / "0003_merge.py").write_text('revision = "m"\ndown_revision = ("0002", "0002c")\n')
    assert head_revision(tmp_path) is None
    head_revision.cache_clear()
    assert head_revision(VERSIONS) is not None


@pytest.mark.postgres
def test_postgres_before_and_after_the_migrations(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        with db.engine.connect() as conn:
            assert not at_head(conn)  # no alembic_version table yet: the probe fails cleanly
            assert conn.execute(text("SELECT 1")).scalar() == 1
        db.upgrade()
        with db.engine.connect() as conn:
            assert at_head(conn)
    finally:
        db.dispose()
