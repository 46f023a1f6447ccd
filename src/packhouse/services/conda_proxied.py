"""Pages of a conda order with proxies: rendered once per change into files, never whole in
memory.

A proxy's subdir may hold hundreds of thousands of records. Its repodata.json (and `.zst`,
`.bz2`, current_repodata.json), run_exports.json and index.html, and the channel's
channeldata.json and index.html, are written name by name to files from the one resolution
of services/conda_order.py (services/conda_order_files.py) and served from them; only the
names of a subdir and one name's records are in memory at a time. The CEP 16 shard index is
small and kept in memory; a shard is built again from its name's records when asked for (the
digest of every name's shard is kept, and the bytes of the most recent ones). For the shard
index and shards, a proxy whose upstream shards the subdir is read by its shards
(services/conda_upstream_shards.py), with or without a cooldown, however many proxies the
order has.

Files are kept per (repository, subdir) with the stamp they were made at: every member's
stamp (a hosted view's serials, a proxy's records file or shard index and how many records
each cooldown lets through). They expire with the proxies' answers (their ttl), or within a
minute while a cooldown applies, so the stamp is asked again. The channel's pages cover the
subdirs its hosted members hold and those whose repodata its proxies have cached.
"""

from __future__ import annotations

import bz2
import hashlib
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import zstandard
from sqlalchemy import select

from packhouse.db.repository_store import Repository
from packhouse.db.schema import upstream_pages
from packhouse.errors import ArtifactNotFound
from packhouse.formats.conda.shards import build_shard, build_shards_index
from packhouse.services.conda_order import (
    SubdirSource,
    answering,
    answers,
    merge_name,
    name_stamp,
)
from packhouse.services.conda_order_files import (
    write_channeldata,
    write_repodata,
    write_run_exports,
    write_subdir_index,
)
from packhouse.services.conda_proxy import CondaProxy, ProxiedPackage, ProxySubdir
from packhouse.services.conda_upstream_extras import Describer, UpstreamExtras
from packhouse.services.conda_upstream_shards import ShardedProxySubdir, ShardsProxy
from packhouse.services.context import Context
from packhouse.services.pages import Page
from packhouse.services.sources import Cooldowns, proxies_of

JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
ZST_LEVEL = 6
COOLDOWN_RECHECK = 60.0  # seconds a page made under a cooldown is served unchecked
SHARD_BYTES_KEPT = 32 << 20  # bytes of recently built shards kept
# A rendered file this small is also kept in memory and sent from there (the `.zst` of a
# 100,000-record subdir is a few MB); bigger ones are sent from the file.
IN_MEMORY = 16 << 20
STREAMED = frozenset(
    {
        "repodata.json",
        "repodata.json.zst",
        "repodata.json.bz2",
        "repodata_from_packages.json",
        "repodata_from_packages.json.zst",
        "current_repodata.json",
        "current_repodata.json.zst",
    }
)
SHARDS_INDEX = "repodata_shards.msgpack.zst"
# Made the same way (from files), but not repodata: patches do not apply to them.
LISTINGS = frozenset({"run_exports.json", "run_exports.json.zst", "index.html"})
HTML_TYPE = "text/html; charset=utf-8"
_TYPES = {
    ".json": JSON_TYPE,
    ".zst": BINARY_TYPE,
    ".bz2": "application/x-bzip2",
    ".html": HTML_TYPE,
}
# Listed at the top of a subdir's index.html, as conda-index does.
LISTED = (
    "repodata.json",
    "repodata_from_packages.json",
    "repodata.json.zst",
    "repodata.json.bz2",
    "current_repodata.json",
    "run_exports.json",
    "repodata_shards.msgpack.zst",
)


@dataclass(frozen=True)
class FilePage:
    """A rendered page kept in a file (too big to keep in memory)."""

    path: Path
    content_type: str
    etag: str  # quoted, strong
    last_serial: int
    size: int
    stale: bool = False
    data: bytes | None = None  # the bytes, for a file of at most IN_MEMORY bytes

    def read(self) -> bytes:
        """The whole body (tests and small pages only: the server sends the file)."""
        return self.data if self.data is not None else self.path.read_bytes()


AnyPage = Page | FilePage


@dataclass
class _Entry:
    stamp: Hashable
    checked_at: int
    expires: float
    stale: bool
    last_serial: int
    more: Hashable = ()  # what else it was made from (a channel page: the subdirs read)
    pages: dict[str, AnyPage] = field(default_factory=dict)  # as made
    served: dict[str, AnyPage] = field(default_factory=dict)  # as sent (see _served)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _served(page: AnyPage) -> AnyPage:
    """A file small enough to be kept in memory is sent as any other page is (a Page)."""
    if isinstance(page, FilePage) and page.data is not None:
        return Page(page.data, page.content_type, page.etag, page.last_serial, stale=page.stale)
    return page


def _key(repo: Repository, subdir: str, kind: str) -> tuple[int, str, str]:
    """Entries by what they are made from: the shard index (from upstream shards where it
    can be), or repodata."""
    return (repo.id, subdir, "index" if kind == SHARDS_INDEX else "repodata")


class _Digests:
    """The shard digest of every name of one (repository, subdir), by name stamp."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_name: dict[str, tuple[Hashable, bytes]] = {}
        self.names_of: dict[str, str] = {}  # hex digest -> name (current and superseded)
        # hex digest -> (proxy id, name): an upstream's own shard, served as it is
        self.upstream: dict[str, tuple[int, str]] = {}
        self.bytes: OrderedDict[str, bytes] = OrderedDict()
        self.kept = 0

    def keep(self, hex_digest: str, data: bytes) -> None:
        self.bytes[hex_digest] = data
        self.kept += len(data)
        while self.kept > SHARD_BYTES_KEPT and self.bytes:
            _, old = self.bytes.popitem(last=False)
            self.kept -= len(old)


class ProxiedPages:
    def __init__(self, ctx: Context, proxy: CondaProxy, shards: ShardsProxy) -> None:
        self._ctx = ctx
        self.proxy = proxy
        self.shards = shards
        self.extras = UpstreamExtras(proxy.cache)
        self._entries: dict[tuple[int, str, str], _Entry] = {}
        self._digests: dict[tuple[int, str], _Digests] = {}
        self._lock = threading.Lock()
        self._dir = ctx.settings.data / "cache" / "conda-pages"
        self._doomed: list[tuple[float, Path]] = []

    # -- sources --------------------------------------------------------------------------

    @contextmanager
    def sources(
        self,
        order: Sequence[Repository],
        subdir: str,
        hosted: Sequence[SubdirSource],
        *,
        shards: bool = False,
        complete: bool = False,
        described: bool = False,
        wanted: Callable[[Repository], bool] = lambda _: True,
    ) -> Iterator[list[SubdirSource]]:
        """The order's members for `subdir`: the hosted ones given, then the (`wanted`)
        proxies, fetched or revalidated as due, closed after use. With `shards`, a proxy
        whose upstream shards the subdir reads its shards (services/conda_upstream_shards.py),
        the others their cached repodata; `complete` first fetches the shards a cooldown
        needs to know which names it leaves out (for the shard index); `described` has the
        records' extras completed with the upstream's run_exports.json and channeldata.json
        (services/conda_upstream_extras.py)."""
        now = self._ctx.clock()
        members: list[ProxySubdir | ShardedProxySubdir] = []
        try:
            for proxy in proxies_of(order):
                if not wanted(proxy):
                    continue
                cooldowns = Cooldowns.of(order, proxy)
                found = self.shards.index(proxy, subdir) if shards else None
                if found is not None:
                    members.append(ShardedProxySubdir(self.shards, proxy, found, cooldowns, now))
                else:
                    cached = self.proxy.subdir(proxy, subdir)
                    member = ProxySubdir(self.proxy, proxy, cached, cooldowns, now)
                    if described and cached.found:
                        member.describe = Describer(self.extras, proxy, subdir)
                    members.append(member)
            everything = [*hosted, *members]
            if complete:
                _prefetch(order, everything)
            yield everything
        finally:
            for opened in members:
                opened.close()

    def find_package(
        self,
        order: Sequence[Repository],
        subdir: str,
        allowed: set[int],
        name: str,
        filename: str,
    ) -> ProxiedPackage | None:
        """The first of the `allowed` proxies whose records (through the order's
        cooldowns; from the upstream's shard where it shards the subdir) list `filename`,
        as a package to fetch."""
        with self.sources(
            order, subdir, [], shards=True, wanted=lambda r: r.id in allowed
        ) as found:
            for source in found:
                if isinstance(source, ShardedProxySubdir):
                    lines, base_url = source.lines(name)[0], source.shards.base_url
                else:
                    assert isinstance(source, ProxySubdir)
                    lines, base_url = source.lines(name), source.found.base_url
                line = next((x for x in lines if x.filename == filename), None)
                if line is not None:
                    fetch = partial(
                        self.proxy.fetch_package, source.repo, subdir, base_url, name, line
                    )
                    return ProxiedPackage(source.repo, fetch)
        return None

    # -- pages ----------------------------------------------------------------------------

    def fresh(
        self, repo: Repository, subdir: str, kind: str, serial: int, more: Hashable = ()
    ) -> AnyPage | None:
        entry = self._entries.get(_key(repo, subdir, kind))
        if entry is None or entry.checked_at != serial or entry.expires <= time.monotonic():
            return None
        if entry.more != more:
            return None
        return entry.served.get(kind)

    def page(
        self,
        repo: Repository,
        order: Sequence[Repository],
        subdir: str,
        kind: str,
        serial: int,
        hosted: Callable[[bool], Sequence[SubdirSource]],
        last_serial: int,
        listed: Sequence[str] = LISTED,
    ) -> AnyPage:
        """One of STREAMED or LISTINGS, or the shard index, of an order with proxies
        (`listed`: the index files a subdir's index.html names)."""
        found = self.fresh(repo, subdir, kind, serial)
        if found is not None:
            return found
        patched = not kind.startswith("repodata_from_packages") and kind not in LISTINGS
        sharded = kind == SHARDS_INDEX
        described = kind.startswith("run_exports")
        with self.sources(
            order, subdir, hosted(patched), shards=sharded, complete=sharded, described=described
        ) as sources:
            key = _key(repo, subdir, kind)
            entry = self._entry(key, order, serial, sources, last_serial)
            with entry.lock:
                served = entry.served.get(kind)
                if served is None:
                    made = entry.pages.get(kind)
                    if made is None:
                        made = self._render(repo, order, subdir, kind, sources, entry, listed)
                        entry.pages[kind] = made
                    served = entry.served[kind] = _served(made)
                return served

    def channel_page(
        self,
        repo: Repository,
        order: Sequence[Repository],
        kind: str,
        serial: int,
        hosted: Callable[[str], Sequence[SubdirSource]],
        hosted_subdirs: Iterable[str],
        last_serial: int,
    ) -> AnyPage:
        """channeldata.json or the channel's index.html of an order with proxies: over the
        subdirs its hosted members hold and those its proxies have cached repodata of (a
        subdir is not fetched for them), each resolved as its repodata is."""
        subdirs = sorted(set(hosted_subdirs) | self._cached_subdirs(order))
        found = self.fresh(repo, "", kind, serial, tuple(subdirs))
        if found is not None:
            return found
        with ExitStack() as stack:
            by_subdir = {
                s: stack.enter_context(self.sources(order, s, hosted(s), described=True))
                for s in subdirs
            }
            everything = [source for sources in by_subdir.values() for source in sources]
            entry = self._entry(
                _key(repo, "", kind), order, serial, everything, last_serial, tuple(subdirs)
            )
            with entry.lock:
                if kind not in entry.served:
                    with (
                        self._writing("channeldata.json", entry) as out,
                        self._writing("index.html", entry) as html,
                    ):
                        write_channeldata(out, html, self._ctx.tmp_dir, repo.name, order, by_subdir)
                    made = {"channeldata.json": out, "index.html": html}
                    for name, written in made.items():
                        entry.pages[name] = page = self._finished(written, name, entry)
                        entry.served[name] = _served(page)
                return entry.served[kind]

    def _cached_subdirs(self, order: Sequence[Repository]) -> set[str]:
        """The subdirs whose repodata the order's proxies have cached (one small query)."""
        ids = [p.id for p in proxies_of(order)]
        if not ids:
            return set()
        pages = upstream_pages.c
        with self._ctx.db.read() as conn:
            rows = conn.execute(
                select(pages.key).where(
                    pages.repository_id.in_(ids),
                    pages.status == 200,
                    pages.key.like("conda/%/repodata"),
                )
            )
            found = {r.key.removeprefix("conda/").removesuffix("/repodata") for r in rows}
        return {s for s in found if "/" not in s}

    def _entry(
        self,
        key: tuple[int, str, str],
        order: Sequence[Repository],
        serial: int,
        sources: Sequence[SubdirSource],
        last_serial: int,
        more: Hashable = (),
    ) -> _Entry:
        # the order's settings too: its allow lists and cooldowns decide what is shown
        rules = tuple((r.id, r.allow_upstream, r.cooldown) for r in order)
        stamp = (rules, tuple((s.repo.id, s.stamp) for s in sources), more)
        proxies = [s for s in sources if isinstance(s, ProxySubdir | ShardedProxySubdir)]
        expires = min((p.expires for p in proxies), default=time.monotonic() + 60)
        if any(p.cooling for p in proxies):
            expires = min(expires, time.monotonic() + COOLDOWN_RECHECK)
        stale = any(s.stale for s in sources)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.stamp != (stamp, stale):
                if entry is not None:
                    self._retire(entry)
                entry = _Entry((stamp, stale), serial, expires, stale, last_serial, more)
                self._entries[key] = entry
            entry.checked_at, entry.expires = serial, expires
            return entry

    def _retire(self, entry: _Entry) -> None:
        """An entry's files are deleted a while after it is replaced (a response may still
        be sending one)."""
        now = time.monotonic()
        self._doomed += [(now, p.path) for p in entry.pages.values() if isinstance(p, FilePage)]
        keep = []
        for when, path in self._doomed:
            if now - when > 300:
                path.unlink(missing_ok=True)
            else:
                keep.append((when, path))
        self._doomed = keep

    def _render(
        self,
        repo: Repository,
        order: Sequence[Repository],
        subdir: str,
        kind: str,
        sources: Sequence[SubdirSource],
        entry: _Entry,
        listed: Sequence[str] = LISTED,
    ) -> AnyPage:
        if kind == SHARDS_INDEX:
            digests = self._shard_digests(repo, order, subdir, sources)
            index = build_shards_index(subdir, digests, shards_base_url="./shards/")
            return Page.of(index, BINARY_TYPE, entry.last_serial, stale=entry.stale)
        if kind.endswith(".zst"):
            base = entry.pages.get(kind.removesuffix(".zst"))
            if base is None:
                base = self._render(repo, order, subdir, kind.removesuffix(".zst"), sources, entry)
                entry.pages[kind.removesuffix(".zst")] = base
            assert isinstance(base, FilePage)
            return self._compressed(base, kind, zstd=True)
        if kind == "repodata.json.bz2":
            base = entry.pages.get("repodata.json")
            if base is None:
                base = self._render(repo, order, subdir, "repodata.json", sources, entry)
                entry.pages["repodata.json"] = base
            assert isinstance(base, FilePage)
            return self._compressed(base, kind, zstd=False)
        tmp = self._ctx.tmp_dir
        with self._writing(kind, entry) as out:
            if kind == "run_exports.json":
                write_run_exports(out, tmp, order, subdir, sources)
            elif kind == "index.html":
                write_subdir_index(out, order, sources, f"{repo.name}/{subdir}", list(listed))
            else:
                current = kind == "current_repodata.json"
                write_repodata(out, tmp, order, subdir, sources, current)
        return self._finished(out, kind, entry)

    # -- writing files --------------------------------------------------------------------

    @contextmanager
    def _writing(self, kind: str, entry: _Entry) -> Iterator[BinaryIO]:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{uuid.uuid4().hex}-{kind}"
        try:
            with path.open("wb") as out:
                yield out
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def _finished(self, out: BinaryIO, kind: str, entry: _Entry) -> FilePage:
        path = Path(out.name)
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as done:
            while chunk := done.read(1 << 20):
                digest.update(chunk)
        content_type = _TYPES[Path(kind).suffix]
        etag = f'"{digest.hexdigest()}"'
        size = path.stat().st_size
        data = path.read_bytes() if size <= IN_MEMORY else None
        return FilePage(path, content_type, etag, entry.last_serial, size, entry.stale, data)

    def _compressed(self, base: FilePage, kind: str, *, zstd: bool) -> FilePage:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{uuid.uuid4().hex}-{kind}"
        digest = hashlib.blake2b(digest_size=16)
        try:
            with base.path.open("rb") as src, path.open("wb") as out:
                if zstd:
                    compressor = zstandard.ZstdCompressor(level=ZST_LEVEL)
                    with compressor.stream_writer(out, size=base.size, closefd=False) as writer:
                        shutil.copyfileobj(src, writer, 1 << 20)
                else:
                    packer = bz2.BZ2Compressor()
                    while chunk := src.read(1 << 20):
                        out.write(packer.compress(chunk))
                    out.write(packer.flush())
            with path.open("rb") as done:
                while chunk := done.read(1 << 20):
                    digest.update(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        content_type = _TYPES[Path(kind).suffix]
        size = path.stat().st_size
        data = path.read_bytes() if size <= IN_MEMORY else None
        etag = f'"{digest.hexdigest()}"'
        return FilePage(path, content_type, etag, base.last_serial, size, base.stale, data)

    # -- shards ---------------------------------------------------------------------------

    def _shard_digests(
        self,
        repo: Repository,
        order: Sequence[Repository],
        subdir: str,
        sources: Sequence[SubdirSource],
    ) -> dict[str, bytes]:
        keeper = self._keeper(repo, subdir)
        digests: dict[str, bytes] = {}
        with keeper.lock:
            for name, members in answers(order, sources):
                only = members[0]
                if len(members) == 1 and isinstance(only, ShardedProxySubdir) and only.whole(name):
                    # only the upstream has it: its own shard, under its own digest
                    digests[name] = only.digest_of(name)
                    keeper.upstream[digests[name].hex()] = (only.repo.id, name)
                    continue
                stamp = name_stamp(members, name)
                kept = keeper.by_name.get(name)
                if kept is None or kept[0] != stamp:
                    records = merge_name([r for m in members if (r := m.records(name))])
                    if not records:
                        keeper.by_name.pop(name, None)
                        continue
                    shard = build_shard(
                        name, records.packages, records.packages_conda, records.removed
                    )
                    kept = (stamp, shard.digest)
                    keeper.by_name[name] = kept
                    keeper.names_of[shard.digest.hex()] = name
                digests[name] = kept[1]
            if len(keeper.names_of) > 4 * len(keeper.by_name) + 4096:
                live = {d.hex() for _, d in keeper.by_name.values()}
                keeper.names_of = {h: n for h, n in keeper.names_of.items() if h in live}
            if len(keeper.upstream) > 4 * len(digests) + 4096:
                live = {d.hex() for d in digests.values()}
                keeper.upstream = {h: v for h, v in keeper.upstream.items() if h in live}
        return digests

    def _keeper(self, repo: Repository, subdir: str) -> _Digests:
        key = (repo.id, subdir)
        with self._lock:
            return self._digests.setdefault(key, _Digests())

    def shard(
        self,
        repo: Repository,
        order: Sequence[Repository],
        subdir: str,
        hex_digest: str,
        hosted: Sequence[SubdirSource],
    ) -> bytes:
        """A shard by the hex sha256 of its bytes: built again from its name's records,
        which must still give these bytes (or kept from a moment ago)."""
        keeper = self._keeper(repo, subdir)
        missing = ArtifactNotFound(f"there is no shard {hex_digest} in {repo.name}/{subdir}")
        data = keeper.bytes.get(hex_digest)
        if data is not None:
            return data
        upstream = keeper.upstream.get(hex_digest)
        if upstream is not None and hex_digest not in keeper.names_of:
            proxy_id, upstream_name = upstream
            one = partial(self.sources, order, subdir, [], shards=True)
            with one(wanted=lambda r: r.id == proxy_id) as found:
                source = found[0] if found else None
                if not isinstance(source, ShardedProxySubdir) or not source.whole(upstream_name):
                    raise missing
                if source.shards.index.shards.get(upstream_name) != bytes.fromhex(hex_digest):
                    raise missing
                return self.shards.shard(source.repo, source.shards, hex_digest)
        name = keeper.names_of.get(hex_digest)
        if name is None:
            raise missing
        with self.sources(order, subdir, hosted, shards=True) as sources:
            records = merge_name(
                [r for m in answering(order, sources, name) if (r := m.records(name))]
            )
        if not records:
            raise missing
        shard = build_shard(name, records.packages, records.packages_conda, records.removed)
        with keeper.lock:
            keeper.names_of[shard.digest.hex()] = name
            keeper.keep(shard.digest.hex(), shard.data)
        if shard.digest.hex() != hex_digest:
            raise missing
        return shard.data


def _prefetch(order: Sequence[Repository], sources: Sequence[SubdirSource]) -> None:
    """Fetch, a few at a time, the upstream shards a cooldown must read to know which
    names it leaves out: those of the names each sharded proxy answers for (never one the
    confusion rule keeps from it)."""
    cooling = [s for s in sources if isinstance(s, ShardedProxySubdir) and s.cooling]
    if not cooling:
        return
    wanted: dict[int, list[str]] = {s.repo.id: [] for s in cooling}
    for name, members in answers(order, sources):
        for member in members:
            if member.repo.id in wanted and member.holds(name):
                wanted[member.repo.id].append(name)
    for source in cooling:
        source.prefetch(wanted[source.repo.id])
