"""One schema for SQLite and PostgreSQL (SQLAlchemy Core). Alembic migrations mirror it.

Names follow the design vocabulary: repositories hold projects (PyPI) or packages (conda),
both kept in `projects`; each uploaded file is an artifact whose bytes are a blob.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import false as sa_false

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The journal: every change is a row; its id is the serial.
journal = Table(
    "journal",
    metadata,
    Column("serial", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("repository", String(64)),
    Column("project", String(200)),
    Column("filename", String(300)),
    Column("detail", JSON),
    sqlite_autoincrement=True,
)
Index("ix_journal_repository", journal.c.repository, journal.c.serial)

# The serial of the newest change to anything but files (users, tokens, groups, grants,
# repositories and their settings): what the access snapshot and the repository catalog are
# kept by, so uploads, yanks and deletes do not throw them away (db/journal_store.py).
generations = Table(
    "generations",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("serial", Integer, nullable=False),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("format", String(10), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("uploads_enabled", Boolean, nullable=False, default=True),
    Column("upstream_url", Text),
    Column("allow_upstream", JSON, nullable=False, default=list),
    Column("last_serial", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Proxies: credentials for the upstream (the secret is never shown or logged), how long
    # a fetched index page is trusted before revalidating (None: the `upstream_ttl` setting),
    # and whether only what is cached is served.
    Column("upstream_user", String(200)),
    Column("upstream_password", Text),
    Column("upstream_ttl", Integer),
    Column("offline", Boolean, nullable=False, default=False, server_default=sa_false()),
    # Cooldown, on any repository: upstream files younger than min_age seconds, or newer
    # than exclude_newer, are left out of what it serves, except for cooldown_exempt names.
    Column("min_age", Integer),
    Column("exclude_newer", DateTime(timezone=True)),
    Column("cooldown_exempt", JSON),
    UniqueConstraint("format", "name", name="uq_repositories_format_name"),
)

repository_bases = Table(
    "repository_bases",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("base_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
)

# A PyPI project or a conda package name within one repository.
projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),  # normalised
    Column("display_name", String(200), nullable=False),  # as first written
    Column("last_serial", Integer, nullable=False),
    UniqueConstraint("repository_id", "name", name="uq_projects_repository_name"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("filename", String(300), nullable=False),
    Column("version", String(200), nullable=False),
    # wheel, sdist, conda (.conda) or tar.bz2
    Column("packagetype", String(10), nullable=False),
    Column("subdir", String(40)),  # conda only
    Column("sha256", String(64), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("blake2b_256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("upload_time", DateTime(timezone=True), nullable=False),
    Column("uploader", String(200), nullable=False),
    Column("requires_python", String(500)),
    Column("metadata_sha256", String(64)),  # PEP 658 metadata file, stored as a blob
    Column("metadata", JSON),  # parsed core metadata (PyPI) or about/run_exports (conda)
    Column("record", LargeBinary),  # conda: the repodata record, serialised once
    # PyPI: the PEP 740 provenance object of the file's attestations (None: none were sent)
    Column("provenance", JSON(none_as_null=True)),
    Column("yanked", Boolean, nullable=False, default=False),
    Column("yanked_reason", Text),
    # A deleted artifact stays as a tombstone so its filename can never be reused.
    Column("deleted", Boolean, nullable=False, default=False),
    Column("serial", Integer, nullable=False),
    UniqueConstraint("repository_id", "filename", name="uq_artifacts_repository_filename"),
)
Index("ix_artifacts_project", artifacts.c.project_id)
# What changed in a project since a serial (incremental page renders).
Index("ix_artifacts_project_serial", artifacts.c.project_id, artifacts.c.serial)
Index("ix_artifacts_sha256", artifacts.c.sha256)
Index("ix_artifacts_subdir", artifacts.c.repository_id, artifacts.c.subdir)

# PyPI: each live file's parts of its project's pages, rendered once when it is stored
# (services/pypi_parts.py, pypi_api.py), with what the pages need beside them, so a page reads
# one of these tables alone: `page_parts` for the simple pages (the version's sort key as
# bytes, the PEP 503 anchor line, the PEP 691 file object), `api_parts` for the JSON API (the
# file's object, its URL without the server's address). Rows sit by project (no rowid on
# SQLite), away from the artifacts' metadata, and each page reads only its own bytes.
# db/artifact_store.py deletes a file's rows when it is yanked, unyanked or deleted (a yank
# renders them again in its transaction); the readers render a live file without them (stored
# before migration 0014, until the app's start fills them) from its artifact's columns.
page_parts = Table(
    "page_parts",
    metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("artifact_id", ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True),
    Column("filename", String(300), nullable=False),
    Column("version", String(200), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("html", LargeBinary, nullable=False),
    Column("json", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_page_parts_artifact", page_parts.c.artifact_id)  # yanks, deletes, cascades
api_parts = Table(
    "api_parts",
    metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("artifact_id", ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True),
    Column("filename", String(300), nullable=False),
    Column("version", String(200), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("yanked", Boolean, nullable=False),
    Column("yanked_reason", Text),
    Column("api", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_api_parts_artifact", api_parts.c.artifact_id)
# Which live files of a project have no parts, found without reading the artifacts' rows.
Index("ix_artifacts_project_live", artifacts.c.project_id, artifacts.c.deleted)

conda_patches = Table(
    "conda_patches",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("subdir", String(40), primary_key=True),
    Column("instructions", JSON, nullable=False),
    Column("serial", Integer, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("password_hash", Text),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("password_changed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A service account: no password (password_hash NULL), only tokens (0006).
    Column("is_service", Boolean, nullable=False, default=False, server_default=sa_false()),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),  # shown in listings, never the secret
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("repositories", JSON),  # None: every repository the user can reach
    Column("actions", JSON, nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked", Boolean, nullable=False, default=False),
)

# Trusted publishing (OIDC). Issuers an administrator registered: their keys come from the
# discovery document's jwks_uri, or are fixed (`jwks`, from a file, for air-gapped sites).
oidc_issuers = Table(
    "oidc_issuers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("jwks", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A publisher: identity tokens of `issuer_id` whose claims hold every `claims` pair may
# upload to one repository.
oidc_publishers = Table(
    "oidc_publishers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer_id", ForeignKey("oidc_issuers.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("claims", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Upload tokens minted for a publisher (only the secret's sha256). (issuer_id, jti) is
# unique: an identity token is exchanged once; rows are kept until both it and the minted
# token have expired.
oidc_tokens = Table(
    "oidc_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("publisher_id", ForeignKey("oidc_publishers.id", ondelete="CASCADE"), nullable=False),
    Column("issuer_id", Integer, nullable=False),
    Column("jti", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("claims", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("identity_expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    UniqueConstraint("issuer_id", "jti", name="uq_oidc_tokens_issuer_id_jti"),
)

# principal_kind: user, group, or special (":authenticated:", ":anonymous:").
permissions = Table(
    "permissions",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("principal_kind", String(10), primary_key=True),
    Column("principal", String(100), primary_key=True),
    Column("action", String(10), nullable=False),
)

# A proxy's cache of upstream index documents: a PyPI project page (key `project/<name>`,
# kept parsed as JSON in `body`) or a conda index file (key `<subdir>/<file>`, kept as a blob
# because a big channel's repodata is hundreds of megabytes). `status` is the upstream's
# answer (200, or 404 for "not there", also cached); `digest` changes whenever the content
# does, for page stamps; `checked_at` is when the upstream last confirmed it.
upstream_pages = Table(
    "upstream_pages",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_type", String(200)),
    Column("body", LargeBinary),
    Column("blob_sha256", String(64)),
    Column("size", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

# Files a proxy fetched from its upstream, stored as blobs by sha256 (verified against the
# upstream's hash before they were kept).
upstream_files = Table(
    "upstream_files",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("filename", String(300), primary_key=True),
    Column("project", String(200), nullable=False),
    Column("subdir", String(40)),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
)
Index("ix_upstream_files_sha256", upstream_files.c.sha256)
# a PyPI proxy reads what it keeps of a project for each page it shows (services/pypi_proxy.py)
Index("ix_upstream_files_project", upstream_files.c.repository_id, upstream_files.c.project)

# Web UI sign-ins: the cookie holds a random secret; only its sha256 is kept here, with the
# form token (CSRF) of the session. Signing out deletes the row.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_ui_sessions_user_id", ui_sessions.c.user_id)

# Blobs being written for a row not yet committed ("use") or being deleted ("delete"), so
# neither needs the write lock while it talks to the blob store (services/blob_claims.py).
# Rows live for one upload or one delete; a crashed process's rows expire.
blob_claims = Table(
    "blob_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_blob_claims_sha256", blob_claims.c.sha256)

# Failed password logins, so every process of a server applies one limit (services/
# login_limits.py); rows older than the window are pruned.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_login_failures_key_at", login_failures.c.key, login_failures.c.at)

# Downloads per hosted file and UTC day (`YYYY-MM-DD`), added in batches by
# services/downloads.py, never on a request's way.
download_counts = Table(
    "download_counts",
    metadata,
    Column("artifact_id", ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Which process is fetching an upstream document or file now, so the processes of a server
# ask the upstream once between them (services/upstream_cache.py); rows live for one fetch.
upstream_leases = Table(
    "upstream_leases",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# What the web UI lists and searches: one row per project (PyPI) or package (conda) that has
# a live artifact, taken from its newest live upload (the newest not yanked, if any).
# db/search_store.py rewrites a project's row in the write transaction of every upload, yank
# and delete. Migration 0013 adds the full-text index beside it, per dialect (SEARCH_OBJECTS):
# an FTS5 table kept by triggers on SQLite, a generated tsvector column with a GIN index on
# PostgreSQL.
search_entries = Table(
    "search_entries",
    metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),  # normalised
    Column("display_name", String(200), nullable=False),
    Column("version", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("uploaded", DateTime(timezone=True), nullable=False),
)
Index("ix_search_entries_name", search_entries.c.name)
# Made by migration 0013 for one dialect, so not declared above (schema comparisons skip them):
# SQLite's FTS5 tables, PostgreSQL's generated tsvector column and its GIN index.
SEARCH_OBJECTS = ("search_fts", "search_document", "ix_search_entries_document")
