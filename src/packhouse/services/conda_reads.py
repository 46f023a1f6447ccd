"""Reading hosted conda channels: live repodata, CEP 16 shards, channeldata, packages.

Each (channel, subdir) keeps an immutable `SubdirView` in memory: every live record's JSON
(serialised once at upload) and every tombstone, brought up to date by one query for the
artifacts whose serial is above the newest one seen, so multiple server processes stay
honest through the database alone. Pages are rendered from a view by concatenation and
kept in the PageCache with the view's version (newest artifact serial of the subdir, patch
serial) as the stamp; `.zst` is made with the page. A shard is rebuilt only for a name
whose serial moved.

Only a subdir that holds (or held) an artifact, or has a patch, gets a view and cached pages;
any other valid subdir name is answered with an empty page rendered per request, so requests
for made-up subdirs keep nothing in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from packhouse.db import artifact_store, conda_patch_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound
from packhouse.formats.conda.channeldata import ChannelEntry, build_channeldata
from packhouse.formats.conda.html import channel_index_html, subdir_index_html
from packhouse.formats.conda.names import subdir_problems
from packhouse.formats.conda.patches import patch_records
from packhouse.formats.conda.records import dumps
from packhouse.formats.conda.repodata import (
    assemble_repodata,
    compress_bz2,
    compress_zst,
    current_repodata,
    run_exports_json,
)
from packhouse.formats.conda.shards import Shard, build_shard, build_shards_index
from packhouse.services.context import Context
from packhouse.services.pages import Page

__all__ = ["INDEX_FILES", "SHARDS_BASE_URL", "CondaReader", "SubdirView", "valid_subdir"]

JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
ZST_LEVEL = 6  # fast enough to re-make a 20,000-record page per upload; see docs/benchmarks.md
SHARDS_BASE_URL = "./shards/"
RETIRED_SHARDS = 4096  # superseded shards still served, for clients holding an older index

# Index files of a subdir, each with how it is made.
INDEX_FILES = frozenset(
    {
        "repodata.json",
        "repodata.json.zst",
        "repodata.json.bz2",
        "repodata_from_packages.json",
        "repodata_from_packages.json.zst",
        "current_repodata.json",
        "current_repodata.json.zst",
        "run_exports.json",
        "run_exports.json.zst",
        "repodata_shards.msgpack.zst",
        "patch_instructions.json",
        "index.html",
    }
)
# Listed at the top of a subdir's index.html, as conda-index does.
_LISTED = (
    "repodata.json",
    "repodata_from_packages.json",
    "repodata.json.zst",
    "repodata.json.bz2",
    "current_repodata.json",
    "run_exports.json",
    "repodata_shards.msgpack.zst",
)
HTML_TYPE = "text/html; charset=utf-8"


def valid_subdir(subdir: str) -> bool:
    return not subdir_problems(subdir)


@dataclass(frozen=True)
class _Entry:
    name: str
    record: bytes
    extra: bytes


@dataclass(frozen=True)
class SubdirView:
    """One subdir at one moment; replaced, never changed."""

    subdir: str
    serial: int = 0  # newest artifact serial seen in the subdir
    patch_serial: int = 0
    live: Mapping[str, _Entry] = field(default_factory=dict)
    tombstones: Mapping[str, str] = field(default_factory=dict)  # filename -> name
    by_name: Mapping[str, frozenset[str]] = field(default_factory=dict)  # live and deleted
    name_serials: Mapping[str, int] = field(default_factory=dict)
    instructions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> tuple[int, int]:
        return (self.serial, self.patch_serial)

    @property
    def last_serial(self) -> int:
        return max(self.serial, self.patch_serial)


@dataclass(frozen=True)
class _Sections:
    packages: dict[str, bytes]
    packages_conda: dict[str, bytes]
    removed: list[str]


class _SubdirState:
    def __init__(self, subdir: str) -> None:
        self.lock = threading.Lock()
        self.view = SubdirView(subdir)
        self.checked_at = -1
        self.patched: tuple[tuple[int, int], _Sections] | None = None
        self.shards: dict[str, tuple[tuple[int, int], Shard]] = {}
        self.by_hex: OrderedDict[str, bytes] = OrderedDict()


def _apply(view: SubdirView, changes: list[artifact_store.CondaChange]) -> SubdirView:
    live = dict(view.live)
    tombstones = dict(view.tombstones)
    by_name = dict(view.by_name)
    name_serials = dict(view.name_serials)
    serial = view.serial
    for change in changes:
        serial = max(serial, change.serial)
        name_serials[change.name] = max(name_serials.get(change.name, 0), change.serial)
        by_name[change.name] = by_name.get(change.name, frozenset()) | {change.filename}
        if change.deleted or change.record is None:
            live.pop(change.filename, None)
            tombstones[change.filename] = change.name
        else:
            extra = orjson.dumps(change.extra or {})
            live[change.filename] = _Entry(change.name, change.record, extra)
    return replace(
        view,
        serial=serial,
        live=live,
        tombstones=tombstones,
        by_name=by_name,
        name_serials=name_serials,
    )


def _split(records: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    packages: dict[str, bytes] = {}
    packages_conda: dict[str, bytes] = {}
    for filename, data in records.items():
        (packages_conda if filename.endswith(".conda") else packages)[filename] = data
    return packages, packages_conda


class CondaReader:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # Only subdirs that hold (or held) an artifact or have a patch get state; any other
        # valid name is answered from an empty view, so requests for made-up subdirs keep
        # nothing in memory.
        self._states: dict[tuple[int, str], _SubdirState] = {}
        self._known: dict[int, tuple[int, frozenset[str]]] = {}  # repo id -> (serial, subdirs)
        self._lock = threading.Lock()

    # -- views ----------------------------------------------------------------------------

    def _state(self, repo: Repository, subdir: str) -> _SubdirState:
        key = (repo.id, subdir)
        state = self._states.get(key)
        if state is None:
            with self._lock:
                state = self._states.setdefault(key, _SubdirState(subdir))
        return state

    def _holds(self, repo: Repository, subdir: str, serial: int) -> bool:
        """Whether the subdir has artifacts (live or deleted) or a patch, as of `serial`."""
        if (repo.id, subdir) in self._states:
            return True
        known = self._known.get(repo.id)
        if known is None or known[0] != serial:
            with self._ctx.db.read() as conn:
                subdirs = set(artifact_store.conda_subdirs(conn, repo.id))
                subdirs |= set(conda_patch_store.subdirs(conn, repo.id))
            known = (serial, frozenset(subdirs))
            self._known[repo.id] = known
        return subdir in known[1]

    def view(self, repo: Repository, subdir: str, serial: int | None = None) -> SubdirView:
        """The subdir brought up to date with the database (one query when it moved)."""
        serial = self._ctx.db.watcher.current() if serial is None else serial
        if not self._holds(repo, subdir, serial):
            return SubdirView(subdir)
        state = self._state(repo, subdir)
        if state.checked_at == serial:
            return state.view
        with state.lock:
            if state.checked_at == serial:
                return state.view
            view = state.view
            with self._ctx.db.read() as conn:
                changes = artifact_store.conda_changes(conn, repo.id, subdir, view.serial)
                patch = conda_patch_store.get(conn, repo.id, subdir)
            if changes:
                view = _apply(view, changes)
            patch_serial = patch.serial if patch else 0
            if patch_serial != view.patch_serial:
                view = replace(
                    view,
                    patch_serial=patch_serial,
                    instructions=patch.instructions if patch else {},
                )
            state.view = view
            state.checked_at = serial
            return view

    def _sections(self, repo: Repository, view: SubdirView, patched: bool) -> _Sections:
        live = {fn: entry.record for fn, entry in view.live.items()}
        packages, packages_conda = _split(live)
        removed = sorted(view.tombstones)
        if not patched or not view.instructions:
            return _Sections(packages, packages_conda, removed)
        state = self._state(repo, view.subdir)
        cached = state.patched
        if cached is not None and cached[0] == view.version:
            return cached[1]
        result = patch_records(packages, packages_conda, view.instructions)
        sections = _Sections(
            result.packages, result.packages_conda, sorted({*removed, *result.removed})
        )
        state.patched = (view.version, sections)
        return sections

    # -- pages ----------------------------------------------------------------------------

    def cached_page(self, repo: Repository, subdir: str, kind: str) -> Page | None:
        serial = self._ctx.db.watcher.current()
        return self._ctx.pages.fresh(("conda", repo.id, subdir, kind), serial)

    def page(self, repo: Repository, subdir: str, kind: str) -> Page:
        """One of INDEX_FILES for a subdir (validated by the caller)."""
        serial = self._ctx.db.watcher.current()
        if not self._holds(repo, subdir, serial):
            # Empty: rendered for the request (cheap), neither cached nor remembered.
            return self._render(repo, SubdirView(subdir), kind)

        def stamp() -> tuple[int, int]:
            return self.view(repo, subdir, serial).version

        def render() -> Page:
            return self._render(repo, self.view(repo, subdir, serial), kind)

        return self._ctx.pages.get(("conda", repo.id, subdir, kind), serial, stamp, render)

    def _render(self, repo: Repository, view: SubdirView, kind: str) -> Page:
        subdir, last = view.subdir, view.last_serial
        if kind.endswith(".zst") and kind != "repodata_shards.msgpack.zst":
            base = self.page(repo, subdir, kind.removesuffix(".zst"))
            data = base.zst if base.zst is not None else compress_zst(base.body, ZST_LEVEL)
            return Page.of(data, BINARY_TYPE, base.last_serial)
        if kind == "repodata.json.bz2":
            base = self.page(repo, subdir, "repodata.json")
            return Page.of(compress_bz2(base.body), "application/x-bzip2", base.last_serial)
        if kind in ("repodata.json", "repodata_from_packages.json"):
            s = self._sections(repo, view, patched=kind == "repodata.json")
            body = assemble_repodata(subdir, s.packages, s.packages_conda, s.removed)
            return Page.of(body, JSON_TYPE, last, compress_zst(body, ZST_LEVEL))
        if kind == "current_repodata.json":
            full = self.page(repo, subdir, "repodata.json")
            body = current_repodata(subdir, orjson.loads(full.body))
            return Page.of(body, JSON_TYPE, last)
        if kind == "run_exports.json":
            exports: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
            for filename, entry in view.live.items():
                value = orjson.loads(entry.extra).get("run_exports") or {}
                exports[filename.endswith(".conda")][filename] = value
            return Page.of(run_exports_json(subdir, *exports), JSON_TYPE, last)
        if kind == "patch_instructions.json":
            body = dumps(view.instructions) if view.instructions else b"{}"
            return Page.of(body, JSON_TYPE, last)
        if kind == "index.html":
            listed = [*_LISTED, "patch_instructions.json"] if view.instructions else list(_LISTED)
            packages = {fn: orjson.loads(entry.record) for fn, entry in view.live.items()}
            html = subdir_index_html(f"{repo.name}/{subdir}", packages, listed)
            return Page.of(html.encode(), HTML_TYPE, last)
        if kind == "repodata_shards.msgpack.zst":
            digests = self._shards(repo, view)
            index = build_shards_index(subdir, digests, shards_base_url=SHARDS_BASE_URL)
            return Page.of(index, BINARY_TYPE, last)
        raise ArtifactNotFound(f"there is no {kind!r} in a conda subdir")

    # -- CEP 16 shards --------------------------------------------------------------------

    def _shards(self, repo: Repository, view: SubdirView) -> dict[str, bytes]:
        """{name: shard digest}, rebuilding only the shards whose name (or patch) moved."""
        if not view.by_name:
            return {}
        state = self._state(repo, view.subdir)
        sections = self._sections(repo, view, patched=True)
        removed = set(sections.removed)
        digests: dict[str, bytes] = {}
        with state.lock:
            for name, filenames in view.by_name.items():
                stamp = (view.name_serials.get(name, 0), view.patch_serial)
                cached = state.shards.get(name)
                if cached is None or cached[0] != stamp:
                    shard = build_shard(
                        name,
                        {f: sections.packages[f] for f in filenames if f in sections.packages},
                        {
                            f: sections.packages_conda[f]
                            for f in filenames
                            if f in sections.packages_conda
                        },
                        [f for f in filenames if f in removed],
                    )
                    state.shards[name] = (stamp, shard)
                    state.by_hex[shard.digest.hex()] = shard.data
                    state.by_hex.move_to_end(shard.digest.hex())
                    cached = state.shards[name]
                digests[name] = cached[1].digest
            live = {shard.digest.hex() for _, shard in state.shards.values()}
            excess = len(state.by_hex) - len(live) - RETIRED_SHARDS
            for hex_digest in list(state.by_hex):
                if excess <= 0:
                    break
                if hex_digest not in live:
                    del state.by_hex[hex_digest]
                    excess -= 1
        return digests

    def shard(self, repo: Repository, subdir: str, hex_digest: str) -> bytes:
        """A shard by the hex sha256 of its bytes (current or recently superseded)."""
        if not self._holds(repo, subdir, self._ctx.db.watcher.current()):
            raise ArtifactNotFound(f"there is no shard {hex_digest} in {repo.name}/{subdir}")
        state = self._state(repo, subdir)
        data = state.by_hex.get(hex_digest)
        if data is None:
            self.page(repo, subdir, "repodata_shards.msgpack.zst")  # builds the shards
            self._shards(repo, self.view(repo, subdir))
            data = state.by_hex.get(hex_digest)
        if data is None:
            raise ArtifactNotFound(f"there is no shard {hex_digest} in {repo.name}/{subdir}")
        return data

    # -- channeldata.json -----------------------------------------------------------------

    def channeldata(self, repo: Repository) -> Page:
        serial = self._ctx.db.watcher.current()

        def stamp() -> int:
            with self._ctx.db.read() as conn:
                return repository_store.repo_serials(conn, [repo.id]).get(repo.id, 0)

        def render() -> Page:
            with self._ctx.db.read() as conn:
                subdirs = set(artifact_store.conda_subdirs(conn, repo.id))
                subdirs |= set(conda_patch_store.subdirs(conn, repo.id))
            subdirs = {s for s in subdirs if valid_subdir(s)} | {"noarch"}
            entries: list[ChannelEntry] = []
            last = 0
            for subdir in sorted(subdirs):
                view = self.view(repo, subdir, serial)
                last = max(last, view.last_serial)
                sections = self._sections(repo, view, patched=True)
                for section in (sections.packages, sections.packages_conda):
                    for filename, record in section.items():
                        extra = orjson.loads(view.live[filename].extra)
                        entries.append(ChannelEntry(subdir, filename, orjson.loads(record), extra))
            used = {e.subdir for e in entries} | {"noarch"}
            return Page.of(build_channeldata(entries, used), JSON_TYPE, last)

        return self._ctx.pages.get(("conda-channeldata", repo.id), serial, stamp, render)

    def channel_index(self, repo: Repository) -> Page:
        """The channel's index.html: its subdirs and packages, from channeldata.json."""
        serial = self._ctx.db.watcher.current()
        channeldata = self.channeldata(repo)

        def render() -> Page:
            html = channel_index_html(repo.name, orjson.loads(channeldata.body))
            return Page.of(html.encode(), HTML_TYPE, channeldata.last_serial)

        key = ("conda-channel-index", repo.id)
        return self._ctx.pages.get(key, serial, lambda: channeldata.etag, render)

    # -- packages -------------------------------------------------------------------------

    def find_package(self, repo: Repository, subdir: str, filename: str) -> Artifact:
        with self._ctx.db.read() as conn:
            found = artifact_store.by_filename(conn, repo.id, filename)
        if found is None or found.deleted or found.subdir != subdir:
            raise ArtifactNotFound(f"there is no package {filename!r} in {repo.name}/{subdir}")
        return found
