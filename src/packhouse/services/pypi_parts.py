"""The rendered parts of big projects' simple pages, kept so that a change re-renders only
what changed (see `PypiReader` in services/pypi_reads.py), and the version sort keys and
row-to-SimpleFile mapping both the full and the incremental render use. Each file's parts are
rendered once, when it is stored (table `page_parts`, services/pypi_api.py `stored_parts`),
and read back here (`read_parts`, `part_of`).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from packaging.version import InvalidVersion, Version
from sqlalchemy import ColumnElement, Connection, Row, String, Table, exists, select, type_coerce

from packhouse.db import repository_store
from packhouse.db.artifact_store import NewArtifact
from packhouse.db.repository_store import Project, Repository
from packhouse.db.schema import artifacts, page_parts
from packhouse.formats.pypi import simple


@lru_cache(maxsize=32768)
def version_key(text: str) -> tuple[int, Version | str]:
    """Sort key of a version string. Parsing is the slowest part of rendering a big
    project's page, and a page is rendered again after each upload with the same versions
    plus one, so parsed versions are kept (a few hundred bytes each)."""
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


_PLAIN_RELEASE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
SortKey = tuple[Any, ...]


@lru_cache(maxsize=65536)
def sort_key(text: str) -> SortKey:
    """A sort key equal to `version_key`'s order (PEP 440, versions that do not parse first,
    by text) made of ints and strings only, so sorting compares in C, not with Python-level
    `Version.__lt__`/`__eq__`; plain releases ("1.2.3") are keyed without parsing. It is
    packaging's comparison key (`_cmpkey`) with its infinities written as -1/0/1 tags."""
    if _PLAIN_RELEASE.fullmatch(text):
        release = tuple(int(p) for p in text.split("."))
        epoch, pre, post, dev, local = 0, None, None, None, None
    else:
        try:
            v = Version(text)
        except InvalidVersion:
            return (0, text)
        release, epoch, pre, post, dev, local = v.release, v.epoch, v.pre, v.post, v.dev, v.local
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    if release == (0,):
        release = ()
    pre_key: SortKey
    if pre is None and post is None and dev is not None:
        pre_key = (-1,)
    elif pre is None:
        pre_key = (1,)
    else:
        pre_key = (0, pre[0], pre[1])
    post_key: SortKey = (-1,) if post is None else (0, post)
    dev_key: SortKey = (1,) if dev is None else (0, dev)
    local_key: SortKey = (
        (-1,)
        if local is None
        else (0, tuple((1, int(p)) if p.isdigit() else (0, p) for p in local.split(".")))
    )
    return (1, epoch, release, pre_key, post_key, dev_key, local_key)


def _int(n: int) -> bytes:
    """A non-negative int whose bytes order as the numbers do: its length, then big-endian.
    (A version is at most 200 characters, so no number needs more than 255 bytes.)"""
    if n < 256:
        return _SMALL[n]
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((len(raw),)) + raw


_SMALL = tuple(bytes((1, n)) if n else b"\x00" for n in range(256))  # _int of 0-255
# A plain release's key after its release numbers: no pre (1), post (-1), dev (1), local (-1).
_PLAIN_TAIL = b"\x00\x02\x00\x02\x00"


def _str(text: str) -> bytes:
    """A string whose bytes order as Python orders strings (UTF-8 keeps code point order),
    NUL escaped and ended by two NULs, so no encoding is a prefix of another."""
    return text.encode().replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _tag(tag: int) -> bytes:
    return bytes((tag + 1,))  # sort_key's tags are -1, 0, 1


@lru_cache(maxsize=65536)
def page_key(text: str) -> bytes:
    """`sort_key` as bytes that compare as its tuples do (equal exactly when the versions
    are PEP 440 equal), stored with each file's parts (`page_parts.key`, `api_parts.key`) so
    a page is sorted by byte comparison without parsing one version."""
    if _PLAIN_RELEASE.fullmatch(text):  # "1.2.3": most versions, keyed without sort_key
        release = [int(p) for p in text.split(".")]
        while release and release[-1] == 0:
            release.pop()
        return b"".join((b"\x01\x00", *(b"\x01" + _int(p) for p in release), _PLAIN_TAIL))
    key = sort_key(text)
    if key[0] == 0:
        return b"\x00" + _str(key[1])
    _, epoch, release, pre, post, dev, local = key
    out = [b"\x01", _int(epoch)]
    out += [b"\x01" + _int(part) for part in release]
    out.append(b"\x00")
    out.append(_tag(pre[0]) + (_str(pre[1]) + _int(pre[2]) if pre[0] == 0 else b""))
    out.append(_tag(post[0]) + (_int(post[1]) if post[0] == 0 else b""))
    out.append(_tag(dev[0]) + (_int(dev[1]) if dev[0] == 0 else b""))
    out.append(_tag(local[0]))
    if local[0] == 0:
        for kind, part in local[1]:
            out.append(b"\x01\x01" + _int(part) if kind == 1 else b"\x01\x00" + _str(part))
        out.append(b"\x00")
    return b"".join(out)


# What a simple page shows of a file; not the stored metadata or conda record.
SIMPLE_COLUMNS = (
    artifacts.c.filename,
    artifacts.c.version,
    artifacts.c.sha256,
    artifacts.c.requires_python,
    artifacts.c.yanked,
    artifacts.c.yanked_reason,
    artifacts.c.metadata_sha256,
    artifacts.c.size,
    artifacts.c.provenance.is_not(None).label("has_provenance"),
    # As the driver gives it: SQLAlchemy's own parsing of SQLite's text timestamps (a regex
    # per row) was most of the time to render a page of 5,000 files; see timestamp.
    type_coerce(artifacts.c.upload_time, String).label("upload_time"),
)
# The parts rendered when the file was stored, for a select from `WITH_PARTS` (None where
# there are none: see schema.py).
PAGE_COLUMNS = (
    page_parts.c.key.label("page_key"),
    page_parts.c.html.label("page_html"),
    page_parts.c.json.label("page_json"),
)
WITH_PARTS = artifacts.outerjoin(page_parts, page_parts.c.artifact_id == artifacts.c.id)


def no_parts(table: Table) -> ColumnElement[bool]:
    """An artifact without a row in `table` (page_parts or api_parts). The subquery selects
    the indexed column: `SELECT *` would read each stored part."""
    return ~exists(select(table.c.artifact_id).where(table.c.artifact_id == artifacts.c.id))


def timestamp(value: datetime | str) -> datetime:
    """An upload time as read by SIMPLE_COLUMNS (text on SQLite), in UTC."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def simple_file(row: Row[Any] | NewArtifact) -> simple.SimpleFile:
    """A row of SIMPLE_COLUMNS (or an artifact about to be stored) as the simple page
    shows it."""
    filename = row.filename
    has_provenance = (
        row.provenance is not None if isinstance(row, NewArtifact) else row.has_provenance
    )
    return simple.SimpleFile(
        filename=filename,
        url=f"../../../../files/{row.sha256}/{filename}",
        sha256=row.sha256,
        requires_python=row.requires_python,
        yanked=(row.yanked_reason or "") if row.yanked else None,
        metadata_sha256=row.metadata_sha256,
        size=row.size,
        upload_time=timestamp(row.upload_time),
        provenance=f"../../../../files/{row.sha256}/{filename}.provenance"
        if has_provenance
        else None,
    )


def part_of(row: Row[Any]) -> Part:
    """A row of SIMPLE_COLUMNS + PAGE_COLUMNS (from WITH_PARTS) as its page's part: the
    stored one, else rendered now."""
    if row.page_html is not None:
        return Part((row.page_key, row.filename), row.version, row.page_html, row.page_json)
    return Part.of(row.version, simple_file(row))


def version_order(text: str) -> tuple[SortKey, str]:
    """The order of a page's `versions`: PEP 440 (`sort_key`), then the text, so versions
    that compare equal ("1.0", "1.0.0") come in one order whatever read them."""
    return (sort_key(text), text)


def read_parts(conn: Connection, project_id: int) -> list[Part]:
    """The parts of a project's live files in one repository: the stored ones (one range
    of page_parts, not the artifacts' wide rows), then the live files without any (stored
    before migration 0014 and not filled yet, see pypi_api.fill_parts) rendered from their
    columns."""
    stored = page_parts.c
    parts = [
        Part((key, filename), version, html, json)
        for filename, version, key, html, json in conn.execute(
            select(stored.filename, stored.version, stored.key, stored.html, stored.json).where(
                stored.project_id == project_id
            )
        )
    ]
    rows = conn.execute(
        select(*SIMPLE_COLUMNS).where(
            artifacts.c.project_id == project_id,
            artifacts.c.deleted.is_(False),
            no_parts(page_parts),
        )
    )
    parts += [Part.of(row.version, simple_file(row)) for row in rows]
    return parts


# One project as read in one snapshot: for each repository of the resolution order that has
# it, the project and its live files (version, file) in artifact id order.
ProjectRead = list[tuple[Project, list[tuple[str, simple.SimpleFile]]]]
FileKey = tuple[bytes, str]  # a file's place on the page: (page_key(version), filename)
VersionKey = tuple[bytes, str]  # a version's place in `versions`: (page_key(text), text)
PART_OVERHEAD = 300  # bytes counted per kept file besides its HTML and JSON parts (measured)


class Part(NamedTuple):
    """One file of a project page, rendered (a tuple: a page may have many thousand)."""

    key: FileKey
    version: str
    html: bytes  # simple.file_html
    json: bytes  # simple.file_json

    @classmethod
    def of(cls, version: str, file: simple.SimpleFile) -> Part:
        return cls(
            (page_key(version), file.filename),
            version,
            simple.file_html(file),
            simple.file_json(file),
        )

    @property
    def size(self) -> int:
        return PART_OVERHEAD + len(self.html) + len(self.json)


# The same as read from stored parts: for each repository, its live files' parts.
PartsRead = list[tuple[Project, list[Part]]]


@dataclass
class PartsStats:
    """What the incremental renderer did (for tests and diagnosis; not locked, approximate
    under concurrency)."""

    full_reads: int = 0  # every live file of the project read
    catch_ups: int = 0  # kept parts brought up to date (possibly with nothing to read)
    rows_read: int = 0  # artifact rows read, by both
    fallbacks: int = 0  # kept parts found inconsistent and dropped


class ProjectParts:
    """A project page's rendered files across one resolution order, in page order. Use it
    under `lock`."""

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.lock = threading.Lock()
        self.ids = ids
        self.broken = False
        self.projects: dict[int, tuple[int, int]] = {}  # repo id -> (project id, serial held)
        self.held: dict[int, dict[str, Part]] = {}  # repo id -> its live files by filename
        self.shown: dict[str, Part] = {}  # filename -> the part on the page (first repo wins)
        self.keys: list[FileKey] = []  # the page's files in order, and their parts
        self.html: list[bytes] = []
        self.json: list[bytes] = []
        self.version_counts: dict[str, int] = {}  # version -> files shown
        self.versions: list[VersionKey] = []  # sorted
        self.last_serial = 0
        self.size = 0  # bytes counted against the budget

    @classmethod
    def build(cls, ids: tuple[int, ...], read: PartsRead) -> ProjectParts:
        parts = cls(ids)
        for project, files in read:
            held = parts.held[project.repository_id] = {p.key[1]: p for p in files}
            parts.size += sum(PART_OVERHEAD + len(p.html) + len(p.json) for p in files)
            parts.projects[project.repository_id] = (project.id, project.last_serial)
            parts.last_serial = max(parts.last_serial, project.last_serial)
            for filename, part in held.items():
                parts.shown.setdefault(filename, part)
        ordered = sorted(parts.shown.values())  # by key: filenames are unique
        parts.keys = [p.key for p in ordered]
        parts.html = [p.html for p in ordered]
        parts.json = [p.json for p in ordered]
        for part in ordered:
            parts.version_counts[part.version] = parts.version_counts.get(part.version, 0) + 1
        keys = {p.version: p.key[0] for p in ordered}
        parts.versions = sorted((keys[v], v) for v in parts.version_counts)
        return parts

    def catch_up(
        self, conn: Connection, order: Sequence[Repository], name: str, stats: PartsStats
    ) -> bool:
        """Apply every change to the project since the parts were made; False (and the
        parts are broken) if that cannot be done safely, and the page must be read whole."""
        if self.broken:
            return False
        stats.catch_ups += 1
        try:
            return self._catch_up(conn, order, name, stats)
        except BaseException:
            self.broken = True  # half applied: never use these parts again
            raise

    def _catch_up(
        self, conn: Connection, order: Sequence[Repository], name: str, stats: PartsStats
    ) -> bool:
        changed: set[str] = set()
        last_serial = 0
        for repo in order:
            project = repository_store.get_project(conn, repo.id, name)
            known = self.projects.get(repo.id)
            if project is None:
                if known is not None:
                    return self._break()
                continue
            last_serial = max(last_serial, project.last_serial)
            if known is None:
                since = -1  # the project is new in this repository: read all of it
            elif known[0] != project.id or project.last_serial < known[1]:
                return self._break()  # replaced, or a snapshot older than the parts
            else:
                since = known[1]
                if project.last_serial == since:
                    continue
            held = self.held.setdefault(repo.id, {})
            newest = project.last_serial
            rows = conn.execute(
                select(*SIMPLE_COLUMNS, *PAGE_COLUMNS, artifacts.c.deleted, artifacts.c.serial)
                .select_from(WITH_PARTS)
                .where(artifacts.c.project_id == project.id, artifacts.c.serial > since)
            )
            for row in rows:
                stats.rows_read += 1
                filename = row.filename
                old = held.pop(filename, None)
                if old is not None:
                    self.size -= old.size
                if not row.deleted:
                    part = held[filename] = part_of(row)
                    self.size += part.size
                changed.add(filename)
                newest = max(newest, row.serial)
            self.projects[repo.id] = (project.id, newest)
        for filename in changed:
            if not self._show(filename):
                return self._break()
        self.last_serial = last_serial
        return True

    def _break(self) -> bool:
        self.broken = True
        return False

    def _show(self, filename: str) -> bool:
        """Put on the page the part the first repository holding `filename` has, if any."""
        new = None
        for repo_id in self.ids:
            held = self.held.get(repo_id)
            if held is not None and (new := held.get(filename)) is not None:
                break
        old = self.shown.get(filename)
        if old is new:
            return True
        if old is not None:
            i = bisect_left(self.keys, old.key)
            if i == len(self.keys) or self.keys[i] != old.key:
                return False
            del self.keys[i], self.html[i], self.json[i]
            del self.shown[filename]
            count = self.version_counts[old.version] - 1
            if count:
                self.version_counts[old.version] = count
            else:
                del self.version_counts[old.version]
                vkey = (old.key[0], old.version)
                j = bisect_left(self.versions, vkey)
                if j == len(self.versions) or self.versions[j] != vkey:
                    return False
                del self.versions[j]
        if new is not None:
            i = bisect_left(self.keys, new.key)
            if i < len(self.keys) and self.keys[i] == new.key:
                return False
            self.keys.insert(i, new.key)
            self.html.insert(i, new.html)
            self.json.insert(i, new.json)
            self.shown[filename] = new
            count = self.version_counts.get(new.version, 0)
            self.version_counts[new.version] = count + 1
            if not count:
                vkey = (new.key[0], new.version)
                self.versions.insert(bisect_left(self.versions, vkey), vkey)
        return True

    def body(self, name: str, kind: Literal["html", "json"]) -> bytes | None:
        """The page, or None if the project has no live file."""
        if not self.keys:
            return None
        if kind == "json":
            versions = [v for _, v in self.versions]
            return simple.project_json_joined(name, self.json, versions, self.last_serial)
        return simple.project_html_joined(name, self.html, self.last_serial)


class PartsCache:
    """Kept `ProjectParts` by (resolution order ids, project): an LRU bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[ProjectParts, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> ProjectParts | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, parts: ProjectParts) -> None:
        """Keep (or re-count, after a change) `parts` under `key`, evicting the least
        recently used beyond the budget."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if parts.broken or parts.size > self.max_bytes:
                return
            self._entries[key] = (parts, parts.size)
            self._bytes += parts.size
            while self._bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size

    def discard(self, key: Hashable, parts: ProjectParts) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is parts:
                del self._entries[key]
                self._bytes -= entry[1]

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
