"""The search index on SQLite (FTS5) and PostgreSQL (tsvector, GIN): what refresh keeps,
how search ranks, which repositories it reads, and migration 0013's back-fill."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, CursorResult, delete, insert, select, text, update

from packhouse.db import migrate, search_store
from packhouse.db.engine import Database
from packhouse.db.schema import artifacts, projects, repositories, search_entries

NOW = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


def new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def repo(conn: Connection, name: str, fmt: str = "pypi") -> int:
    result = conn.execute(
        insert(repositories).values(
            name=name, format=fmt, kind="hosted", description="", uploads_enabled=True,
            allow_upstream=[], last_serial=0, created_at=NOW,
        )
    )  # fmt: skip
    return new_id(result)


def upload(
    conn: Connection, repo_id: int, name: str, version: str, summary: str, **extra: Any
) -> int:
    """A project's artifact row (only the columns every revision since 0012 has), refreshed."""
    found = conn.execute(
        select(projects.c.id).where(projects.c.repository_id == repo_id, projects.c.name == name)
    ).scalar()
    if found is None:
        found = new_id(
            conn.execute(
                insert(projects).values(
                    repository_id=repo_id, name=name, display_name=name.title(), last_serial=1
                )
            )
        )
    conda = extra.pop("conda", False)
    metadata = {"about": {"summary": summary}} if conda else {"name": name, "summary": summary}
    conn.execute(
        insert(artifacts).values(
            repository_id=repo_id, project_id=found, filename=f"{name}-{version}.whl",
            version=version, packagetype="wheel", sha256="0" * 64, md5="0" * 32,
            blake2b_256="0" * 64, size=1, upload_time=NOW, uploader="t", metadata=metadata,
            yanked=False, deleted=False, serial=1, **extra,
        )
    )  # fmt: skip
    search_store.refresh(conn, [int(found)])
    return int(found)


def names(conn: Connection, query: str, repos: list[int], limit: int = 50) -> list[str]:
    return [f.name for f in search_store.search(conn, query, repos, limit)]


def test_ranking_exact_name_then_prefix_then_relevance(db: Database) -> None:
    with db.write() as conn:
        main = repo(conn, "main")
        upload(conn, main, "requests-oauthlib", "1.0", "OAuthlib support for Requests")
        upload(conn, main, "requests", "2.0", "HTTP for Humans")
        upload(conn, main, "httpie", "3.0", "A friendlier curl, built on requests")
        upload(conn, main, "toolbelt-requests", "1.0", "Utilities")
        upload(conn, main, "unrelated", "1.0", "Nothing to see")
    with db.read() as conn:
        # exact, prefix, a word of the name (weighs more), a word of the summary
        assert names(conn, "requests", [main]) == [
            "requests", "requests-oauthlib", "toolbelt-requests", "httpie"
        ]  # fmt: skip
        assert names(conn, "Requests", [main])[0] == "requests"
        assert names(conn, "requ", [main])[:2] == ["requests", "requests-oauthlib"]
        assert names(conn, "requests oauth", [main]) == ["requests-oauthlib"]
        assert names(conn, "requests_oauthlib", [main]) == ["requests-oauthlib"]
        assert names(conn, "friendlier", [main]) == ["httpie"]
        assert names(conn, "zzz", [main]) == []
        assert names(conn, "  '\"*:& ", [main]) == []  # no words: nothing, never a syntax error
        # quotes and operators are no syntax: OR is a word to match like any other
        assert names(conn, '"requests"*', [main])[0] == "requests"
        assert names(conn, 'oauthlib" OR "unrelated', [main]) == []
        assert names(conn, "requests", [main], limit=2) == ["requests", "requests-oauthlib"]
        found = search_store.search(conn, "requests", [main], 1)[0]
        assert (found.display_name, found.version, found.summary, found.tier) == (
            "Requests", "2.0", "HTTP for Humans", 0
        )  # fmt: skip


def test_only_the_repositories_asked_for(db: Database) -> None:
    with db.write() as conn:
        public, private = repo(conn, "public"), repo(conn, "private")
        upload(conn, public, "gadget", "1.0", "Open gadget")
        upload(conn, private, "gadget-secret", "1.0", "Internal gadget")
    with db.read() as conn:
        assert names(conn, "gadget", [public]) == ["gadget"]
        assert sorted(names(conn, "gadget", [public, private])) == ["gadget", "gadget-secret"]
        assert names(conn, "gadget", []) == []


def test_refresh_follows_uploads_yanks_and_deletes(db: Database) -> None:
    with db.write() as conn:
        main = repo(conn, "main")
        channel = repo(conn, "main", "conda")
        project = upload(conn, main, "widget", "1.0", "Old words")
        upload(conn, main, "widget", "2.0", "New words")
        upload(conn, channel, "numpy-base", "1.26", "Array computing", conda=True)
    with db.read() as conn:
        assert names(conn, "old", [main]) == []  # the newest upload's summary only
        assert [(f.version, f.summary) for f in search_store.search(conn, "new", [main], 5)] == [
            ("2.0", "New words")
        ]
        assert names(conn, "array", [channel]) == ["numpy-base"]
        assert names(conn, "numpy base", [channel]) == ["numpy-base"]
    with db.write() as conn:  # the newest yanked: the newest not yanked is shown
        conn.execute(update(artifacts).where(artifacts.c.version == "2.0").values(yanked=True))
        search_store.refresh(conn, [project])
    with db.read() as conn:
        assert names(conn, "old", [main]) == ["widget"]
        assert names(conn, "new", [main]) == []
    with db.write() as conn:  # every file yanked: still found, by the newest
        conn.execute(update(artifacts).values(yanked=True))
        search_store.refresh(conn, [project])
    with db.read() as conn:
        assert search_store.search(conn, "widget", [main], 5)[0].version == "2.0"
    with db.write() as conn:  # every file deleted: gone
        conn.execute(
            update(artifacts).where(artifacts.c.project_id == project).values(deleted=True)
        )
        search_store.refresh(conn, [project])
    with db.read() as conn:
        assert names(conn, "widget", [main]) == []
        if db.is_sqlite:
            conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('integrity-check')"))


def test_an_upload_writes_the_entry_a_full_refresh_would(db: Database) -> None:
    """search_store.uploaded (the upload path, which reads only the new row) and refresh
    (which sorts the project's files) agree, after a yanked newest file too."""

    def entries(conn: Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(select(search_entries).order_by("project_id"))]

    with db.write() as conn:
        main = repo(conn, "main")
        project = upload(conn, main, "widget", "1.0", "First words")
        conn.execute(update(artifacts).values(yanked=True))  # 1.0 yanked
        search_store.refresh(conn, [project])
        added = new_id(
            conn.execute(
                insert(artifacts).values(
                    repository_id=main, project_id=project, filename="widget-2.0.whl",
                    version="2.0", packagetype="wheel", sha256="1" * 64, md5="1" * 32,
                    blake2b_256="1" * 64, size=1, upload_time=NOW, uploader="t",
                    metadata={"name": "widget", "summary": "Second words"}, yanked=False,
                    deleted=False, serial=2,
                )
            )
        )  # fmt: skip
        search_store.uploaded(conn, project, added)
        after_upload = entries(conn)
        search_store.refresh(conn, [project])
        assert entries(conn) == after_upload
        assert [(row[4], row[5]) for row in after_upload] == [("2.0", "Second words")]


def test_a_deleted_repository_leaves_nothing_behind(db: Database) -> None:
    with db.write() as conn:
        gone, kept = repo(conn, "gone"), repo(conn, "kept")
        upload(conn, gone, "alpha", "1.0", "First letter")
        upload(conn, kept, "alpha-two", "1.0", "Second")
        conn.execute(delete(repositories).where(repositories.c.id == gone))
    with db.read() as conn:
        assert conn.execute(select(search_entries.c.name)).scalars().all() == ["alpha-two"]
        assert names(conn, "alpha", [gone, kept]) == ["alpha-two"]
        if db.is_sqlite:  # the FTS rows went with the entries (the cascade fires the trigger)
            conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('integrity-check')"))
            count = conn.execute(
                text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'alpha'")
            )
            assert count.scalar() == 1


def test_many_matches_keep_the_ranking(db: Database) -> None:
    with db.write() as conn:
        main = repo(conn, "main")
        for i in range(300):
            upload(conn, main, f"proj-{i:03d}", "1.0", f"Synthetic project {i}")
        upload(conn, main, "proj", "1.0", "The one")
    with db.read() as conn:
        found = names(conn, "proj", [main], limit=5)
        assert found == ["proj", "proj-000", "proj-001", "proj-002", "proj-003"]
        # the ten names starting proj-29, then proj-029 (whose summary says "project 29")
        expected = [f"proj-{i}" for i in range(290, 300)] + ["proj-029"]
        assert names(conn, "proj-29", [main], limit=20) == expected


def test_thousands_of_full_text_matches_put_the_name_first(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_store, "RANKED_AT_MOST", 5)  # instead of thousands
    with db.write() as conn:
        main = repo(conn, "main")
        for i in range(20):
            upload(conn, main, f"item-{i:02d}", "1.0", "A synthetic thing")
        upload(conn, main, "zeta-synthetic", "1.0", "Named so")
    with db.read() as conn:
        # past the cap: the entry whose name holds the word first, then by name
        assert names(conn, "synthetic", [main], limit=3) == ["zeta-synthetic", "item-00", "item-01"]
        monkeypatch.setattr(search_store, "RANKED_AT_MOST", 100)
        # ranked by relevance: the name's word weighs most there too
        assert names(conn, "synthetic", [main], limit=1) == ["zeta-synthetic"]


@pytest.mark.parametrize("url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_migration_fills_the_index_from_existing_rows(
    url: str, request: pytest.FixtureRequest
) -> None:
    database = Database("sqlite://" if url == "sqlite" else request.getfixturevalue("postgres_url"))
    try:
        migrate.upgrade(database, "0012")
        with database.engine.begin() as conn:
            main = repo(conn, "main")
            channel = repo(conn, "forge", "conda")
            ids: dict[str, int] = {}
            made_rows: list[tuple[int, str, str, str, dict[str, Any]]] = [
                (main, "kept", "1.0", "Kept words", {}),
                (main, "kept", "2.0", "Yanked words", {"yanked": True}),
                (main, "removed", "1.0", "Deleted words", {"deleted": True}),
                (channel, "pkg", "0.1", "", {"about": "A conda package"}),
            ]
            for repo_id, name, version, summary, flags in made_rows:
                if name not in ids:
                    made = conn.execute(
                        insert(projects).values(
                            repository_id=repo_id, name=name, display_name=name, last_serial=1
                        )
                    )
                    ids[name] = new_id(made)
                _raw_artifact(conn, repo_id, ids[name], name, version, summary, **flags)
        database.upgrade()
        with database.read() as conn:
            rows = conn.execute(
                select(
                    search_entries.c.name, search_entries.c.version, search_entries.c.summary
                ).order_by(search_entries.c.name)
            ).all()
            assert [tuple(r) for r in rows] == [
                ("kept", "1.0", "Kept words"), ("pkg", "0.1", "A conda package")
            ]  # fmt: skip
            assert names(conn, "kept", [main]) == ["kept"]
            assert names(conn, "conda", [channel]) == ["pkg"]
    finally:
        database.dispose()


def _raw_artifact(
    conn: Connection, repo_id: int, project_id: int, name: str, version: str, summary: str,
    *, yanked: bool = False, deleted: bool = False, about: str | None = None,
) -> None:  # fmt: skip
    metadata = {"about": {"summary": about}} if about else {"summary": summary}
    conn.execute(
        insert(artifacts).values(
            repository_id=repo_id, project_id=project_id, filename=f"{name}-{version}.whl",
            version=version, packagetype="wheel", sha256="0" * 64, md5="0" * 32,
            blake2b_256="0" * 64, size=1, upload_time=NOW, uploader="t", metadata=metadata,
            yanked=yanked, deleted=deleted, serial=1,
        )
    )  # fmt: skip
