"""Reading conda channels: live repodata, CEP 16 shards, channeldata, packages.

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

A channel with bases, or a proxy, is read through its resolution order (own records, bases
depth-first, proxies last, the confusion rule per name and subdir: services/conda_order.py);
its pages are made by the same renderer from the order's merge, keyed by every member's
stamp. An order with proxies has its repodata, run_exports.json, index.html and
channeldata.json written to files from the same resolution (services/conda_proxied.py).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from packhouse.db import artifact_store, conda_patch_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound
from packhouse.formats.conda.channeldata import ChannelEntry, build_channeldata
from packhouse.formats.conda.html import channel_index_html, subdir_index_html
from packhouse.formats.conda.names import parse_filename, subdir_problems
from packhouse.formats.conda.patches import patch_records
from packhouse.formats.conda.records import dumps
from packhouse.formats.conda.repodata import (
    assemble_repodata,
    compress_bz2,
    compress_zst,
    run_exports_json,
)
from packhouse.formats.conda.shards import build_shards_index
from packhouse.services.catalog import Catalog
from packhouse.services.conda_order import (
    Merged,
    ShardKeeper,
    SubdirSource,
    merge,
    merged_current,
)
from packhouse.services.conda_proxied import (
    HTML_TYPE,
    LISTED,
    LISTINGS,
    STREAMED,
    AnyPage,
    ProxiedPages,
)
from packhouse.services.conda_proxy import ProxiedPackage
from packhouse.services.conda_views import (
    HostedSubdir,
    Sections,
    SubdirContent,
    SubdirView,
    apply,
    name_records,
    split,
)
from packhouse.services.context import Context
from packhouse.services.pages import Page
from packhouse.services.sources import proxies_of, resolve
from packhouse.types import RepoKind

__all__ = ["INDEX_FILES", "SHARDS_BASE_URL", "CondaReader", "SubdirView", "valid_subdir"]

JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
ZST_LEVEL = 6  # fast enough to re-make a 20,000-record page per upload; see docs/benchmarks.md
SHARDS_BASE_URL = "./shards/"
SHARDS_INDEX = "repodata_shards.msgpack.zst"

# Index files of a subdir: the repodata forms (STREAMED: from files for orders with
# proxies) and the rest.
INDEX_FILES = STREAMED | frozenset(
    {
        "run_exports.json",
        "run_exports.json.zst",
        "repodata_shards.msgpack.zst",
        "patch_instructions.json",
        "index.html",
    }
)


def valid_subdir(subdir: str) -> bool:
    return not subdir_problems(subdir)


class _SubdirState:
    def __init__(self, subdir: str) -> None:
        self.lock = threading.Lock()
        self.view = SubdirView(subdir)
        self.checked_at = -1
        self.patched: tuple[tuple[int, int], Sections] | None = None
        self.shards = ShardKeeper()


class _OrderState:
    """An order's merge of one subdir (patched and as uploaded) and its shards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.merged: dict[bool, tuple[Hashable, Merged]] = {}
        self.shards = ShardKeeper()


class CondaReader:
    def __init__(self, ctx: Context, catalog: Catalog, proxied: ProxiedPages) -> None:
        self._ctx = ctx
        self._catalog = catalog
        self.proxied = proxied
        # Only subdirs that hold (or held) an artifact or have a patch get state; any other
        # valid name is answered from an empty view, so requests for made-up subdirs keep
        # nothing in memory.
        self._states: dict[tuple[int, str], _SubdirState] = {}
        self._orders: dict[tuple[int, str], _OrderState] = {}
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

    def _subdirs(self, repo: Repository, serial: int) -> frozenset[str]:
        """The subdirs that have artifacts (live or deleted) or a patch, as of `serial`."""
        known = self._known.get(repo.id)
        if known is None or known[0] != serial:
            with self._ctx.db.read() as conn:
                subdirs = set(artifact_store.conda_subdirs(conn, repo.id))
                subdirs |= set(conda_patch_store.subdirs(conn, repo.id))
            known = (serial, frozenset(subdirs))
            self._known[repo.id] = known
        return known[1]

    def _holds(self, repo: Repository, subdir: str, serial: int) -> bool:
        return (repo.id, subdir) in self._states or subdir in self._subdirs(repo, serial)

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
                view = apply(view, changes)
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

    def _sections(self, repo: Repository, view: SubdirView, patched: bool) -> Sections:
        live = {fn: entry.record for fn, entry in view.live.items()}
        packages, packages_conda = split(live)
        removed = sorted(view.tombstones)
        if not patched or not view.instructions:
            return Sections(packages, packages_conda, removed)
        state = self._state(repo, view.subdir)
        cached = state.patched
        if cached is not None and cached[0] == view.version:
            return cached[1]
        result = patch_records(packages, packages_conda, view.instructions)
        sections = Sections(
            result.packages, result.packages_conda, sorted({*removed, *result.removed})
        )
        state.patched = (view.version, sections)
        return sections

    def _content(self, repo: Repository, view: SubdirView) -> SubdirContent:
        return SubdirContent(
            subdir=view.subdir,
            last_serial=view.last_serial,
            sections=lambda patched: self._sections(repo, view, patched),
            entries=lambda: ((fn, e.record, e.extra) for fn, e in view.live.items()),
            instructions=view.instructions,
            shard_digests=lambda: self._shards(repo, view),
        )

    # -- orders ---------------------------------------------------------------------------

    def _order(self, repo: Repository, serial: int) -> tuple[Repository, ...] | None:
        """The resolution order of a repository read through one (None: a hosted
        repository without bases, read from its own view)."""
        order: tuple[Repository, ...] = self._catalog.order(repo, serial)
        if len(order) == 1 and repo.kind is not RepoKind.PROXY:
            return None
        return order

    def _order_holds(self, order: Sequence[Repository], subdir: str, serial: int) -> bool:
        return any(self._holds(m, subdir, serial) for m in order if m.kind is not RepoKind.PROXY)

    def _sources(
        self, order: Sequence[Repository], subdir: str, serial: int, patched: bool
    ) -> list[SubdirSource]:
        sources: list[SubdirSource] = []
        for member in order:
            if member.kind is RepoKind.PROXY or not self._holds(member, subdir, serial):
                continue
            view = self.view(member, subdir, serial)
            sources.append(HostedSubdir(member, view, self._sections(member, view, patched)))
        return sources

    def _order_state(self, repo: Repository, subdir: str) -> _OrderState:
        key = (repo.id, subdir)
        state = self._orders.get(key)
        if state is None:
            with self._lock:
                state = self._orders.setdefault(key, _OrderState())
        return state

    def _merged(
        self, repo: Repository, order: Sequence[Repository], subdir: str, serial: int, patched: bool
    ) -> tuple[Merged, list[SubdirSource]]:
        sources = self._sources(order, subdir, serial, patched)
        stamp = tuple((s.repo.id, s.stamp) for s in sources)
        state = self._order_state(repo, subdir)
        with state.lock:
            kept = state.merged.get(patched)
            if kept is None or kept[0] != stamp:
                kept = (stamp, merge(order, sources))
                state.merged[patched] = kept
        return kept[1], sources

    def _order_stamp(self, order: Sequence[Repository], subdir: str, serial: int) -> Hashable:
        return tuple(
            (m.id, self.view(m, subdir, serial).version)
            for m in order
            if m.kind is not RepoKind.PROXY and self._holds(m, subdir, serial)
        )

    def _order_content(
        self, repo: Repository, order: Sequence[Repository], subdir: str, serial: int
    ) -> SubdirContent:
        def sections(patched: bool) -> Sections:
            merged, _ = self._merged(repo, order, subdir, serial, patched)
            return Sections(*merged.sections())

        def entries() -> Iterable[tuple[str, bytes, bytes]]:
            merged, sources = self._merged(repo, order, subdir, serial, False)
            views = [s.view for s in sources if isinstance(s, HostedSubdir)]
            packages, packages_conda, _ = merged.sections()
            for filename, record in (*packages.items(), *packages_conda.items()):
                entry = next((v.live[filename] for v in views if filename in v.live), None)
                if entry is not None:
                    yield filename, record, entry.extra

        def digests() -> dict[str, bytes]:
            merged, _ = self._merged(repo, order, subdir, serial, True)
            state = self._order_state(repo, subdir)
            return state.shards.digests(merged.name_stamps, merged.by_name.__getitem__)

        views = [self.view(m, subdir, serial) for m in order if m.kind is not RepoKind.PROXY]
        return SubdirContent(
            subdir=subdir,
            last_serial=max((v.last_serial for v in views), default=0),
            sections=sections,
            entries=entries,
            instructions=self.view(repo, subdir, serial).instructions,
            shard_digests=digests,
        )

    # -- pages ----------------------------------------------------------------------------

    def cached_page(self, repo: Repository, subdir: str, kind: str) -> AnyPage | None:
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial)
        if order is not None and _streamed(order, kind):
            return self.proxied.fresh(repo, subdir, kind, serial)
        prefix = "conda" if order is None else "conda-order"
        return self._ctx.pages.fresh((prefix, repo.id, subdir, kind), serial)

    def page(self, repo: Repository, subdir: str, kind: str) -> AnyPage:
        """One of INDEX_FILES for a subdir (validated by the caller). Orders with proxies
        give their repodata as a FilePage (services/conda_proxied.py)."""
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial)
        if order is not None and _streamed(order, kind):
            return self.proxied.page(
                repo,
                order,
                subdir,
                kind,
                serial,
                lambda patched: self._sources(order, subdir, serial, patched),
                self._order_last_serial(order, subdir, serial),
                self._listed(self.view(repo, subdir, serial)),
            )
        if order is not None:
            return self._order_page(repo, order, subdir, kind, serial)
        if not self._holds(repo, subdir, serial):
            # Empty: rendered for the request (cheap), neither cached nor remembered.
            return self._render(repo, self._content(repo, SubdirView(subdir)), kind)

        def stamp() -> tuple[int, int]:
            return self.view(repo, subdir, serial).version

        def render() -> Page:
            return self._render(repo, self._content(repo, self.view(repo, subdir, serial)), kind)

        return self._ctx.pages.get(("conda", repo.id, subdir, kind), serial, stamp, render)

    def _page(self, repo: Repository, subdir: str, kind: str) -> Page:
        """A page made in memory (never one of an order with proxies' streamed ones)."""
        page = self.page(repo, subdir, kind)
        assert isinstance(page, Page)
        return page

    def _order_last_serial(self, order: Sequence[Repository], subdir: str, serial: int) -> int:
        hosted = [m for m in order if m.kind is not RepoKind.PROXY]
        return max((self.view(m, subdir, serial).last_serial for m in hosted), default=0)

    def _order_page(
        self, repo: Repository, order: Sequence[Repository], subdir: str, kind: str, serial: int
    ) -> Page:
        if not self._order_holds(order, subdir, serial):
            return self._render(repo, self._content(repo, SubdirView(subdir)), kind)

        def stamp() -> Hashable:
            return self._order_stamp(order, subdir, serial)

        def render() -> Page:
            return self._render(repo, self._order_content(repo, order, subdir, serial), kind)

        key = ("conda-order", repo.id, subdir, kind)
        return self._ctx.pages.get(key, serial, stamp, render)

    def _render(self, repo: Repository, content: SubdirContent, kind: str) -> Page:
        subdir, last, stale = content.subdir, content.last_serial, content.stale
        if kind.endswith(".zst") and kind != SHARDS_INDEX:
            base = self._page(repo, subdir, kind.removesuffix(".zst"))
            data = base.zst if base.zst is not None else compress_zst(base.body, ZST_LEVEL)
            return Page.of(data, BINARY_TYPE, base.last_serial, stale=base.stale)
        if kind == "repodata.json.bz2":
            base = self._page(repo, subdir, "repodata.json")
            body = compress_bz2(base.body)
            return Page.of(body, "application/x-bzip2", base.last_serial, stale=base.stale)
        if kind in ("repodata.json", "repodata_from_packages.json"):
            s = content.sections(kind == "repodata.json")
            body = assemble_repodata(subdir, s.packages, s.packages_conda, s.removed)
            return Page.of(body, JSON_TYPE, last, compress_zst(body, ZST_LEVEL), stale)
        if kind == "current_repodata.json":
            s = content.sections(True)
            body = merged_current(subdir, s.packages, s.packages_conda, s.removed)
            return Page.of(body, JSON_TYPE, last, stale=stale)
        if kind == "run_exports.json":
            exports: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
            for filename, _, extra in content.entries():
                value = orjson.loads(extra).get("run_exports") or {}
                exports[filename.endswith(".conda")][filename] = value
            return Page.of(run_exports_json(subdir, *exports), JSON_TYPE, last, stale=stale)
        if kind == "patch_instructions.json":
            body = dumps(content.instructions) if content.instructions else b"{}"
            return Page.of(body, JSON_TYPE, last)
        if kind == "index.html":
            listed = self._listed(content)
            packages = {fn: orjson.loads(record) for fn, record, _ in content.entries()}
            html = subdir_index_html(f"{repo.name}/{subdir}", packages, listed)
            return Page.of(html.encode(), HTML_TYPE, last, stale=stale)
        if kind == SHARDS_INDEX:
            digests = content.shard_digests()
            index = build_shards_index(subdir, digests, shards_base_url=SHARDS_BASE_URL)
            return Page.of(index, BINARY_TYPE, last, stale=stale)
        raise ArtifactNotFound(f"there is no {kind!r} in a conda subdir")

    def _listed(self, content: SubdirContent | SubdirView) -> list[str]:
        """The index files a subdir's index.html names."""
        return [*LISTED, *(["patch_instructions.json"] if content.instructions else [])]

    # -- CEP 16 shards --------------------------------------------------------------------

    def _shards(self, repo: Repository, view: SubdirView) -> dict[str, bytes]:
        """{name: shard digest}, rebuilding only the shards whose name (or patch) moved."""
        if not view.by_name:
            return {}
        sections = self._sections(repo, view, patched=True)
        removed = frozenset(sections.removed)
        stamps = {n: (view.name_serials.get(n, 0), view.patch_serial) for n in view.by_name}
        return self._state(repo, view.subdir).shards.digests(
            stamps, lambda name: name_records(sections, view.by_name[name], removed)
        )

    def shard(self, repo: Repository, subdir: str, hex_digest: str) -> bytes:
        """A shard by the hex sha256 of its bytes (current or recently superseded)."""
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial)
        missing = ArtifactNotFound(f"there is no shard {hex_digest} in {repo.name}/{subdir}")
        if order is None:
            if not self._holds(repo, subdir, serial):
                raise missing
            keeper = self._state(repo, subdir).shards
        elif proxies_of(order):
            hosted = self._sources(order, subdir, serial, patched=True)
            return self.proxied.shard(repo, order, subdir, hex_digest, hosted)
        else:
            if not self._order_holds(order, subdir, serial):
                raise missing
            keeper = self._order_state(repo, subdir).shards
        data = keeper.get(hex_digest)
        if data is None:
            self._page(repo, subdir, SHARDS_INDEX)  # builds the shards
            data = keeper.get(hex_digest)
        if data is None:
            raise missing
        return data

    # -- channeldata.json -----------------------------------------------------------------

    def channeldata(self, repo: Repository) -> AnyPage:
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial) or (repo,)
        hosted = [m for m in order if m.kind is not RepoKind.PROXY]
        if proxies_of(order):
            return self._channel_page(repo, order, "channeldata.json", serial)

        def stamp() -> Hashable:
            with self._ctx.db.read() as conn:
                serials = repository_store.repo_serials(conn, [m.id for m in hosted])
            return tuple(sorted(serials.items()))

        def render() -> Page:
            subdirs: set[str] = {"noarch"}
            for member in hosted:
                subdirs |= {s for s in self._subdirs(member, serial) if valid_subdir(s)}
            entries: list[ChannelEntry] = []
            last = 0
            for subdir in sorted(subdirs):
                content = self._subdir_content(repo, subdir, serial)
                last = max(last, content.last_serial)
                s = content.sections(True)
                patched = {**s.packages, **s.packages_conda}
                for filename, _, extra in content.entries():
                    if filename in patched:
                        record = orjson.loads(patched[filename])
                        entries.append(ChannelEntry(subdir, filename, record, orjson.loads(extra)))
            used = {e.subdir for e in entries} | {"noarch"}
            return Page.of(build_channeldata(entries, used), JSON_TYPE, last)

        return self._ctx.pages.get(("conda-channeldata", repo.id), serial, stamp, render)

    def _subdir_content(self, repo: Repository, subdir: str, serial: int) -> SubdirContent:
        order = self._order(repo, serial)
        if order is None:
            return self._content(repo, self.view(repo, subdir, serial))
        return self._order_content(repo, order, subdir, serial)

    def _channel_page(
        self, repo: Repository, order: Sequence[Repository], kind: str, serial: int
    ) -> AnyPage:
        """channeldata.json or the channel's index.html of an order with proxies."""
        hosted = [m for m in order if m.kind is not RepoKind.PROXY]
        subdirs = {s for m in hosted for s in self._subdirs(m, serial) if valid_subdir(s)}
        last = max((self._order_last_serial(order, s, serial) for s in subdirs), default=0)
        return self.proxied.channel_page(
            repo,
            order,
            kind,
            serial,
            lambda subdir: self._sources(order, subdir, serial, patched=True),
            subdirs,
            last,
        )

    def channel_index(self, repo: Repository) -> AnyPage:
        """The channel's index.html: its subdirs and packages, from channeldata.json."""
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial)
        if order is not None and proxies_of(order):
            return self._channel_page(repo, order, "index.html", serial)
        channeldata = self.channeldata(repo)
        assert isinstance(channeldata, Page)  # a FilePage only for an order with proxies

        def render() -> Page:
            html = channel_index_html(repo.name, orjson.loads(channeldata.body))
            return Page.of(html.encode(), HTML_TYPE, channeldata.last_serial)

        key = ("conda-channel-index", repo.id)
        return self._ctx.pages.get(key, serial, lambda: channeldata.etag, render)

    # -- packages -------------------------------------------------------------------------

    def find_package(
        self, repo: Repository, subdir: str, filename: str
    ) -> Artifact | ProxiedPackage:
        """The package a read of `repo` serves under this name: its own, or the first of
        the order's members that answer for the package name (the confusion rule: a
        proxy is asked only when no hosted member holds the name, or it is allowed)."""
        missing = ArtifactNotFound(f"there is no package {filename!r} in {repo.name}/{subdir}")
        serial = self._ctx.db.watcher.current()
        order = self._order(repo, serial)
        if order is None:
            return self._hosted_package(repo, subdir, filename) or _raise(missing)
        parsed = parse_filename(filename)
        if parsed is None:
            raise missing
        hosted = self._sources(order, subdir, serial, patched=False)
        holders = [s.repo.id for s in hosted if s.holds(parsed.name)]
        resolution = resolve(order, parsed.name, holders)
        for member in resolution.hosted:
            found = self._hosted_package(member, subdir, filename)
            if found is not None:
                return found
        allowed = {r.id for r in resolution.proxies}
        proxied = self.proxied.find_package(order, subdir, allowed, parsed.name, filename)
        if proxied is None:
            raise missing
        return proxied

    def _hosted_package(self, repo: Repository, subdir: str, filename: str) -> Artifact | None:
        with self._ctx.db.read() as conn:
            found = artifact_store.by_filename(conn, repo.id, filename)
        if found is None or found.deleted or found.subdir != subdir:
            return None
        return found


def _streamed(order: Sequence[Repository], kind: str) -> bool:
    """Whether a page of `order` is made by services/conda_proxied.py (it has proxies)."""
    return (kind in STREAMED or kind in LISTINGS or kind == SHARDS_INDEX) and bool(
        proxies_of(order)
    )


def _raise(error: Exception) -> Any:
    raise error
