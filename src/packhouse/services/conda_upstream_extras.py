"""What an upstream channel says of its packages beyond their records: a subdir's
`run_exports.json` and the channel's `channeldata.json`, read through a conda proxy for the
run_exports.json and channeldata.json of a group (services/conda_order_files.py).

Each document is fetched when a group's page needs it, streamed (a conda-forge-sized one is
never held whole: formats/conda/remote.py reads one member at a time) into a file of lines
grouped by package name (`key TAB value JSON`), kept as a blob; the `upstream_pages` row
(`conda/<subdir>/run_exports`, `conda/channeldata`) holds the index of it (each name's byte
range) and the validators. It is revalidated after the ttl like the repodata; an upstream
that has no such document, fails with nothing cached, or sends one that cannot be read
leaves the records to speak for themselves (services/conda_records.py `line_extras`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import orjson

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, TooLarge, UpstreamError
from packhouse.formats.conda import remote
from packhouse.formats.conda.channeldata import POST_INSTALL_FLAGS
from packhouse.formats.conda.names import name_problems, parse_filename
from packhouse.formats.conda.records import CHANNELDATA_ABOUT_KEYS, dumps
from packhouse.services import blob_claims
from packhouse.services.artifacts import drop_unreferenced
from packhouse.services.conda_proxy import fetched_page, subdir_url
from packhouse.services.revalidation import STALE_RETRY, current, still_served, validators
from packhouse.services.upstream_cache import StoredPage, UpstreamCache
from packhouse.types import Sha256

_KEPT = 64  # documents whose index is kept in memory
_CHUNK = 1 << 20
_VERSION = 1  # of the index kept in the row's body


def run_exports_key(subdir: str) -> str:
    return f"conda/{subdir}/run_exports"


CHANNELDATA_KEY = "conda/channeldata"


@dataclass
class KeyedDocument:
    """An upstream document as cached: the index of its lines file."""

    found: bool
    digest: str
    blob: Sha256 | None
    spans: dict[str, tuple[int, int]]  # name -> (offset, length)
    checked_at: datetime
    stale: bool = False
    expires: float = 0.0


def _name_of(section: str, key: str) -> str | None:
    """The package name a member of the document is about: run_exports.json keys are
    filenames, channeldata.json's `packages` keys are names."""
    if section == "packages.conda" or key.endswith((".conda", ".tar.bz2")):
        parsed = parse_filename(key)
        return parsed.name if parsed is not None else None
    return None if name_problems(key) else key


class UpstreamExtras:
    def __init__(self, cache: UpstreamCache) -> None:
        self.cache = cache
        self._kept: OrderedDict[tuple[int, str], KeyedDocument] = OrderedDict()
        self._lock = threading.Lock()

    def run_exports(self, proxy: Repository, subdir: str) -> KeyedDocument:
        url = subdir_url(proxy, subdir) + "run_exports.json"
        return self._document(proxy, run_exports_key(subdir), url)

    def channeldata(self, proxy: Repository) -> KeyedDocument:
        assert proxy.upstream_url is not None
        url = proxy.upstream_url.rstrip("/") + "/channeldata.json"
        return self._document(proxy, CHANNELDATA_KEY, url)

    def read(
        self, found: KeyedDocument, name: str, handle: BinaryIO | None = None
    ) -> dict[str, Any]:
        """{key: value} the document has for `name` ({} when it has nothing), from `handle`
        (the whole blob, open) or a range of the blob."""
        span = found.spans.get(name)
        if span is None or found.blob is None:
            return {}
        offset, length = span
        if handle is not None:
            handle.seek(offset)
            data = handle.read(length)
        else:
            try:
                with self.cache.ctx.blobs.open(found.blob, offset, offset + length) as part:
                    data = part.read(length)
            except ArtifactNotFound:
                found.expires = 0.0  # replaced or pruned under us: read the row again
                return {}
        values: dict[str, Any] = {}
        for line in data.split(b"\n"):
            if line:
                key, value = line.split(b"\t", 1)
                values[key.decode()] = orjson.loads(value)
        return values

    # -- the cache ------------------------------------------------------------------------

    def _document(self, proxy: Repository, page_key: str, url: str) -> KeyedDocument:
        key = (proxy.id, page_key)
        kept = self._kept.get(key)
        if kept is not None and still_served(self.cache, proxy, kept):
            return kept
        with self.cache.one_at_a_time(("conda-extras", proxy.id, page_key)):
            kept = self._kept.get(key)
            if kept is None or not still_served(self.cache, proxy, kept):
                kept = self._current(proxy, page_key, url, kept)
                with self._lock:
                    self._kept[key] = kept
                    self._kept.move_to_end(key)
                    while len(self._kept) > _KEPT:
                        self._kept.popitem(last=False)
        return kept

    def _current(
        self, proxy: Repository, page_key: str, url: str, kept: KeyedDocument | None
    ) -> KeyedDocument:
        return current(
            self.cache,
            proxy,
            ("conda-extras", proxy.id, page_key),
            page_key,
            kept,
            _parsed,
            lambda stored: self._fetch(proxy, page_key, url, stored),
            lambda: _none(self.cache.ctx.clock()),  # the records speak for themselves
        )

    def _fetch(
        self, proxy: Repository, page_key: str, url: str, stored: StoredPage | None
    ) -> StoredPage | None:
        cache = self.cache
        ctx = cache.ctx
        headers = validators(stored)
        with cache.client.stream(url, headers=headers, auth=proxy.proxy.auth) as response:
            if response.status == 304 and headers:
                return None
            now = ctx.clock()
            if response.status in (404, 410):
                page = StoredPage(404, None, None, None, b"", None, 0, "404", now, now)
                cache.write_page(proxy.id, page_key, page)
                return page
            if response.status != 200:
                raise UpstreamError(
                    f"the upstream of {proxy.qualified_name} answered {response.status}"
                    f" for {redact_url(url)}"
                )
            limit = ctx.settings.upstream_max_index_bytes
            chunks = _capped(response.iter_bytes(_CHUNK), limit, redact_url(url))
            try:
                path, spans, sha256 = _write_lines(ctx.tmp_dir, chunks)
            except remote.RemoteError as exc:
                raise UpstreamError(f"{redact_url(url)} cannot be read: {exc}") from None
            body = msgpack.packb({"v": _VERSION, "spans": spans}, use_bin_type=True)
            page = fetched_page(response.headers, body, sha256, sha256, now)
        try:
            with blob_claims.using(ctx, [sha256]):
                ctx.blobs.put_file(sha256, path)
                cache.write_page(proxy.id, page_key, page)
        finally:
            path.unlink(missing_ok=True)
        old = stored.blob_sha256 if stored is not None else None
        if old is not None and old != sha256:
            drop_unreferenced(ctx, [old])  # the lines file it replaces
        return page


def _none(now: datetime) -> KeyedDocument:
    found = KeyedDocument(False, "none", None, {}, now)
    found.expires = time.monotonic() + STALE_RETRY
    return found


def _parsed(stored: StoredPage) -> KeyedDocument:
    index: Any = {}
    if stored.status == 200 and stored.body:
        try:
            index = msgpack.unpackb(stored.body, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException):
            index = {}
    if not isinstance(index, dict) or index.get("v") != _VERSION or stored.blob_sha256 is None:
        return KeyedDocument(False, stored.digest, None, {}, stored.checked_at)
    spans = {name: (int(o), int(n)) for name, (o, n) in index.get("spans", {}).items()}
    return KeyedDocument(True, stored.digest, stored.blob_sha256, spans, stored.checked_at)


def _capped(chunks: Iterable[bytes], limit: int, url: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"upstream {url} sent more than the {limit} bytes allowed")
        yield chunk


def _write_lines(
    tmp_dir: Path, chunks: Iterable[bytes]
) -> tuple[Path, dict[str, list[int]], Sha256]:
    """The document's members as lines grouped by package name (a scratch file in arrival
    order, then the kept one by name): holds one member and a few integers a member."""
    groups: dict[str, array[int]] = {}
    scratch = tmp_dir / f"conda-extras-{os.getpid()}-{uuid.uuid4().hex}"
    kept = tmp_dir / f"conda-extras-kept-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with scratch.open("w+b") as out:
            offset = 0
            for section, key, value in remote.iter_repodata(chunks, remote.RepodataHead()):
                name = _name_of(section, key) if isinstance(key, str) else None
                if name is None or not isinstance(value, dict) or "\t" in key or "\n" in key:
                    continue
                line = key.encode() + b"\t" + dumps(value) + b"\n"
                out.write(line)
                groups.setdefault(name, array("q")).extend((offset, len(line)))
                offset += len(line)
            out.flush()
            digest = hashlib.sha256()
            spans: dict[str, list[int]] = {}
            position = 0
            with kept.open("wb") as done:
                for name in sorted(groups):
                    group = groups[name]
                    data = b"".join(
                        os.pread(out.fileno(), group[i + 1], group[i])
                        for i in range(0, len(group), 2)
                    )
                    done.write(data)
                    digest.update(data)
                    spans[name] = [position, len(data)]
                    position += len(data)
    except BaseException:
        kept.unlink(missing_ok=True)
        raise
    finally:
        scratch.unlink(missing_ok=True)
    return kept, spans, Sha256(digest.hexdigest())


@dataclass(frozen=True)
class Described:
    """What the upstream says of one package name in one subdir."""

    run_exports: Mapping[str, Any]  # filename -> its run_exports.json value
    channeldata: Mapping[str, Any]  # the name's channeldata.json entry ({} if none)

    def apply(self, extras: Mapping[str, bytes]) -> dict[str, bytes]:
        """Extras derived from the records (services/conda_records.py), completed with
        the upstream's: a filename's run_exports, the about fields and post-install flags
        of the name's channeldata entry."""
        entry = self.channeldata
        about = {k: entry[k] for k in CHANNELDATA_ABOUT_KEYS if entry.get(k)}
        flags = {k: True for k in POST_INSTALL_FLAGS if entry.get(k) is True}
        done: dict[str, bytes] = {}
        for filename, extra in extras.items():
            value = orjson.loads(extra)
            given = self.run_exports.get(filename)
            if isinstance(given, dict) and isinstance(given.get("run_exports"), dict):
                value["run_exports"] = given["run_exports"]
            if about:
                value["about"] = about
            if flags:
                value["post_install"] = flags
            done[filename] = dumps(value)
        return done


class Describer:
    """`describe(name)` for one proxy's subdir: both documents fetched or revalidated when
    it is made, each blob opened once and read one name at a time (as the records file is);
    `close` it after use."""

    def __init__(self, extras: UpstreamExtras, proxy: Repository, subdir: str) -> None:
        self._extras = extras
        self._documents = (extras.run_exports(proxy, subdir), extras.channeldata(proxy))
        self._handles: list[BinaryIO | None] = [None, None]

    def __call__(self, name: str) -> Described:
        run_exports, channeldata = (self._read(i, name) for i in range(2))
        entry = channeldata.get(name)
        return Described(run_exports, entry if isinstance(entry, dict) else {})

    def _read(self, which: int, name: str) -> dict[str, Any]:
        found = self._documents[which]
        if name not in found.spans or found.blob is None:
            return {}
        if self._handles[which] is None:
            try:
                self._handles[which] = self._extras.cache.ctx.blobs.open(found.blob)
            except ArtifactNotFound:
                found.expires = 0.0  # replaced or pruned under us: read the row again
                return {}
        return self._extras.read(found, name, self._handles[which])

    def close(self) -> None:
        for handle in self._handles:
            if handle is not None:
                handle.close()
        self._handles = [None, None]
