"""PyPI proxy sources: an upstream simple index read through its cache.

A project's upstream page is fetched on first request (PEP 691 JSON asked for first, HTML
accepted), parsed, and kept in `upstream_pages` as our own JSON list of its files. For
`ttl` seconds it is served as it is; then it is revalidated with If-None-Match /
If-Modified-Since. When the upstream fails or times out, the cached copy is served marked
stale (and the upstream is not asked again for `STALE_RETRY` seconds); with nothing cached
the error is raised (502, or 504 for a timeout). Offline proxies serve only what is cached.

Files are fetched on their first download and checked against the sha256 the page gave
(services/upstream_cache.py). A wheel's PEP 658 `.metadata` comes from the cached wheel
when its bytes match the hash the upstream gives for it, else from the upstream.

A file the upstream lists without a sha256 (old devpi, pypiserver, Artifactory, directory
listings) is shown with its md5 if the upstream gave one, else with no hash, at
`/files/upstream/<filename>` (UNHASHED_URL): fetched on its first request, checked against
the md5, kept by the sha256 computed then. From then on the pages show that sha256 and the
usual `/files/<sha256>/<filename>` URL.

The first bytes kept win. Once a proxy keeps a file, its pages show the kept sha256 for that
filename, whatever a later upstream page says: an upstream (or whoever controls it) that
changes a file's bytes, or the sha256 it lists, cannot replace what clients were given; the
disagreement is logged. `packhouse cache prune` forgets kept files, and with them this pin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.errors import PackhouseError, TooLarge, UpstreamError
from packhouse.formats.pypi import remote
from packhouse.formats.pypi.archives import ArchiveLimits, read_wheel_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.formats.pypi.remote import RemoteFile
from packhouse.formats.pypi.simple import SimpleFile
from packhouse.services import blob_claims
from packhouse.services.revalidation import STALE_RETRY, Due, kept_due, revalidate
from packhouse.services.upstream_cache import (
    Download,
    StoredFile,
    StoredPage,
    UpstreamCache,
    digest_of,
)
from packhouse.types import Sha256

log = logging.getLogger("packhouse.proxy")

# Wheels up to this size are fetched whole when their `.metadata` is asked for: one upstream
# request then serves both (installers ask for the metadata, then the wheel).
WHEEL_FOR_METADATA = 2 * 1024 * 1024
_PARSED_MAX = 512  # parsed pages kept in memory (the rows hold them too)
# Where a page sends a file whose sha256 is not known yet (relative to /pypi/<repo>/simple/<p>/)
UNHASHED_URL = "../../../../files/upstream/"
_WARNED_MAX = 10_000  # pin disagreements remembered, so each is logged once


@dataclass(frozen=True)
class ProxyPage:
    """A project as one proxy knows it now."""

    files: tuple[RemoteFile, ...]  # empty when the upstream does not have it
    found: bool
    digest: str
    stale: bool  # served from the cache because the upstream could not be asked
    expires: float  # monotonic time until which this answer holds


def page_key(name: str) -> str:
    return f"project/{name}"


def version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def simple_file(file: RemoteFile) -> SimpleFile:
    """How a proxied file is shown: served by us at /files/<sha256>/<filename>, or, while
    its sha256 is not known, at /files/upstream/<filename> with the md5 the upstream gave
    (if any) and no `.metadata` (that is served by the file's sha256)."""
    if file.sha256 is None:
        url, metadata, md5 = UNHASHED_URL + quote(file.filename), None, file.md5
    else:
        url, md5 = f"../../../../files/{file.sha256}/{file.filename}", None
        metadata = file.core_metadata if isinstance(file.core_metadata, str) else None
    return SimpleFile(
        filename=file.filename,
        url=url,
        sha256=file.sha256,
        md5=md5,
        requires_python=file.requires_python,
        yanked=file.yanked,
        metadata_sha256=metadata,
        size=file.size or 0,
        upload_time=file.upload_time,
    )


class PypiProxy:
    def __init__(self, cache: UpstreamCache) -> None:
        self.cache = cache
        self._parsed: OrderedDict[tuple[int, str, str], tuple[RemoteFile, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[tuple[int, str, str]] = set()
        cache.kept_listeners.append(self._kept)

    def _kept(self, file: StoredFile) -> None:
        """A file that came without a sha256 is kept: the pages that list it ask their
        stamp again (their digest now has its sha256), here at once; other processes see
        it when their pages expire."""
        project = file.project

        def lists(key: object) -> bool:
            return (
                isinstance(key, tuple)
                and len(key) > 2
                and key[0] in _PAGE_KINDS
                and (key[2] == project)
            )

        self.cache.ctx.pages.expire(lists)

    @property
    def stats(self) -> Any:
        return self.cache.stats

    def project(self, proxy: Repository, name: str) -> ProxyPage:
        """The proxy's files of `name` (canonical), fetching or revalidating as due."""
        cache = self.cache
        key = page_key(name)
        stored = cache.read_page(proxy.id, key)
        answer = self._fresh(proxy, name, stored)
        if answer is not None:
            cache.stats.hits += 1
            return answer
        with cache.one_at_a_time(("pypi", proxy.id, key)):
            stored = cache.read_page(proxy.id, key)
            answer = self._fresh(proxy, name, stored)
            if answer is not None:
                cache.stats.hits += 1
                return answer
            return self._refresh(proxy, name, stored)

    def _fresh(self, proxy: Repository, name: str, stored: StoredPage | None) -> ProxyPage | None:
        """The cached answer if it may be served without asking the upstream."""
        cache = self.cache
        if stored is None:
            if cache.offline(proxy):
                return ProxyPage((), False, "offline", False, time.monotonic() + STALE_RETRY)
            return None
        due = kept_due(cache, proxy, ("pypi", proxy.id, name), stored.checked_at)
        return None if due is None else self._answer(proxy, name, stored, due)

    def _refresh(self, proxy: Repository, name: str, stored: StoredPage | None) -> ProxyPage:
        cache = self.cache
        answer = revalidate(
            cache,
            proxy,
            ("pypi", proxy.id, name),
            page_key(name),
            lambda: self._fetch(proxy, name, stored),
            kept=stored is not None,
        )
        if isinstance(answer, Due):
            assert stored is not None
            return self._answer(proxy, name, stored, answer)
        return self._answer(proxy, name, answer, Due(False, time.monotonic() + cache.ttl(proxy)))

    def _fetch(self, proxy: Repository, name: str, stored: StoredPage | None) -> StoredPage | None:
        """The upstream's page of `name`, parsed and written; None when it answered 304."""
        cache = self.cache
        assert proxy.upstream_url is not None
        url = proxy.upstream_url.rstrip("/") + f"/{name}/"
        headers = {"Accept": remote.ACCEPT}
        # a page kept before files without a sha256 were (a JSON list) is fetched whole
        if stored is not None and stored.status == 200 and (stored.body or b"").startswith(b"{"):
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
        now = cache.ctx.clock()
        try:
            response = cache.client.get(
                url,
                headers=headers,
                auth=proxy.proxy.auth,
                max_bytes=cache.ctx.settings.upstream_max_page_bytes,
            )
        except TooLarge as error:
            raise UpstreamError(
                f"the upstream page {redact_url(url)} of {proxy.qualified_name} is"
                f" larger than upstream_max_page_bytes: {error}"
            ) from None
        if response.status == 304 and stored is not None:
            return None
        if response.status in (404, 410):
            page = StoredPage(404, None, None, None, b"[]", None, 0, "404", now, now)
        elif response.status == 200:
            files = remote.parse_project_page(
                response.body,
                response.headers.get("content-type", ""),
                response.url,
                name,
            )
            body = orjson.dumps({"files": [_to_json(f) for f in files.files]})
            page = StoredPage(
                200,
                response.headers.get("etag"),
                response.headers.get("last-modified"),
                response.headers.get("content-type"),
                body,
                None,
                len(body),
                digest_of(body),
                now,
                now,
            )
        else:
            raise UpstreamError(
                f"the upstream of {proxy.qualified_name} answered {response.status} for"
                f" {redact_url(url)}"
            )
        cache.write_page(proxy.id, page_key(name), page)
        return page

    def _answer(self, proxy: Repository, name: str, stored: StoredPage, due: Due) -> ProxyPage:
        if stored.status != 200:
            return ProxyPage((), False, stored.digest, due.stale, due.expires)
        files, pins = self._pinned(proxy, name, self._files(proxy.id, name, stored))
        return ProxyPage(files, True, stored.digest + pins, due.stale, due.expires)

    def _pinned(
        self, proxy: Repository, name: str, files: tuple[RemoteFile, ...]
    ) -> tuple[tuple[RemoteFile, ...], str]:
        """The files with the sha256 (and size) of what the proxy keeps under their names
        (the first bytes kept win: see the module docstring), and a digest of what that
        changed ("" for nothing)."""
        kept = self.cache.project_files(proxy.id, name)
        if not kept:
            return files, ""
        out: list[RemoteFile] = []
        changed: list[tuple[str, str]] = []
        for f in files:
            mine = kept.get(f.filename)
            if mine is None or mine.sha256 == f.sha256:
                out.append(f)
                continue
            core = f.core_metadata
            if f.sha256 is not None:
                self._disagrees(proxy, f, mine)
                core = False  # the upstream's `.metadata` is of other bytes
            size = f.size if f.size is not None else mine.size
            out.append(dataclasses.replace(f, sha256=mine.sha256, size=size, core_metadata=core))
            changed.append((f.filename, mine.sha256))
        return tuple(out), ("+" + digest_of(repr(changed).encode())) if changed else ""

    def _disagrees(self, proxy: Repository, listed: RemoteFile, mine: StoredFile) -> None:
        key = (proxy.id, listed.filename, listed.sha256 or "")
        with self._lock:
            if key in self._warned:
                return
            if len(self._warned) > _WARNED_MAX:
                self._warned.clear()
            self._warned.add(key)
        log.warning(
            "the upstream of %s now lists %s with sha256 %s; the bytes kept first (sha256 %s)"
            " are served instead", proxy.qualified_name, listed.filename, listed.sha256,
            mine.sha256,
        )  # fmt: skip

    def _files(self, proxy_id: int, name: str, stored: StoredPage) -> tuple[RemoteFile, ...]:
        key = (proxy_id, name, stored.digest)
        with self._lock:
            found = self._parsed.get(key)
            if found is not None:
                self._parsed.move_to_end(key)
                return found
        data = orjson.loads(stored.body or b"[]")
        rows = data["files"] if isinstance(data, dict) else data  # a list: an older row
        files = tuple(_from_json(d) for d in rows)
        with self._lock:
            self._parsed[key] = files
            while len(self._parsed) > _PARSED_MAX:
                self._parsed.popitem(last=False)
        return files

    def cached_project(self, proxy: Repository, name: str) -> tuple[RemoteFile, ...]:
        """What the cache holds of `name`, without asking the upstream (for downloads)."""
        stored = self.cache.read_page(proxy.id, page_key(name))
        if stored is None or stored.status != 200:
            return ()
        return self._pinned(proxy, name, self._files(proxy.id, name, stored))[0]

    def listed(self, proxies: list[Repository], filename: str) -> ListedFile | None:
        """A file without a known sha256 (its page URL is UNHASHED_URL) on the page one of
        `proxies` keeps of its project, for `/files/upstream/<filename>`: its kept copy, or
        its download. Only a file on a kept page is fetched, and the upstream is never
        asked for a page here (the confusion rule was applied when the page was read)."""
        name = project_of(filename)
        if name is None:
            return None
        for repo in proxies:
            for file in self.cached_project(repo, name):
                if file.filename == filename:
                    return ListedFile((repo,), _start(self, repo, file, name))
        return None

    def metadata_file(self, proxy: Repository, file: RemoteFile, project: str) -> StoredFile:
        """The `.metadata` file of a listed wheel (`file.core_metadata` is its sha256): from
        the wheel when it is cached or small enough to fetch now, if what the wheel holds
        matches that sha256; else from the upstream."""
        assert isinstance(file.core_metadata, str)
        assert file.sha256 is not None
        cache, want, name = self.cache, file.core_metadata, file.filename + ".metadata"
        found = cache.cached_file(proxy, name, want)
        if found is not None:
            return found
        wheel = cache.cached_file(proxy, file.filename, file.sha256)
        small = file.size is not None and file.size <= WHEEL_FOR_METADATA
        if wheel is None and small and file.filename.endswith(".whl") and not cache.offline(proxy):
            try:
                wheel = cache.fetch_file(
                    proxy, url=file.url, sha256=file.sha256, filename=file.filename,
                    project=project,
                )  # fmt: skip
            except UpstreamError:
                wheel = None  # the upstream's `.metadata` may still be had
        if wheel is not None:
            found = self._metadata_of(proxy, wheel, name, want)
            if found is not None:
                return found
        return cache.fetch_file(
            proxy, url=file.url + ".metadata", sha256=want, filename=name, project=project
        )

    def _metadata_of(
        self, proxy: Repository, wheel: StoredFile, name: str, want: str
    ) -> StoredFile | None:
        """The METADATA a cached wheel holds, kept as its `.metadata` file when it matches
        `want`; None when it cannot be read here (a store without local files) or differs."""
        ctx = self.cache.ctx
        path = ctx.blobs.local_path(wheel.sha256)
        if path is None:
            return None
        try:
            raw = read_wheel_metadata(path, parse_dist_filename(wheel.filename), ArchiveLimits())
        except PackhouseError as exc:
            log.warning("cannot read the metadata of cached %s: %s", wheel.filename, exc.message)
            return None
        sha = Sha256(hashlib.sha256(raw).hexdigest())
        if sha != want:
            return None
        stored = StoredFile(proxy.id, name, wheel.project, None, sha, len(raw))
        with blob_claims.using(ctx, [sha]) as claim:
            ctx.blobs.put_bytes(sha, raw)
            with ctx.db.write() as conn:
                self.cache.add_file(conn, stored, ctx.clock())
                claim.release(conn)
        return stored

    def visible(
        self, files: tuple[RemoteFile, ...], cutoff: datetime | None
    ) -> list[tuple[str, SimpleFile]]:
        """(version, file) of the files a cutoff lets through, as a page shows them."""
        shown: list[tuple[str, SimpleFile]] = []
        for f in files:
            if cutoff is not None and (f.upload_time is None or f.upload_time > cutoff):
                continue
            version = version_of(f.filename)
            if version is not None:
                shown.append((version, simple_file(f)))
        return shown


_PAGE_KINDS = frozenset({"pypi-project", "pypi-json"})  # services/pypi_reads.py page keys


@dataclass(frozen=True)
class ListedFile:
    """A file a proxy lists, kept or not: `start` gives its stored copy, or the download
    from the upstream just begun."""

    holders: tuple[Repository, ...]
    start: Callable[[], StoredFile | Download]

    def fetch(self) -> StoredFile:
        started = self.start()
        return started if isinstance(started, StoredFile) else started.finish()


def _start(
    proxy: PypiProxy, repo: Repository, file: RemoteFile, name: str
) -> Callable[[], StoredFile | Download]:
    def start() -> StoredFile | Download:
        return proxy.cache.start_file(
            repo, url=file.url, sha256=file.sha256, filename=file.filename, project=name,
            md5=file.md5,
        )  # fmt: skip

    return start


def _to_json(f: RemoteFile) -> dict[str, Any]:
    return {
        "filename": f.filename,
        "url": f.url,
        "sha256": f.sha256,
        "requires_python": f.requires_python,
        "yanked": f.yanked,
        "upload_time": f.upload_time.isoformat() if f.upload_time else None,
        "size": f.size,
        "core_metadata": f.core_metadata,
        "md5": f.md5,
    }


def _from_json(d: dict[str, Any]) -> RemoteFile:
    when = d.get("upload_time")
    return RemoteFile(
        filename=d["filename"],
        url=d["url"],
        sha256=d["sha256"],
        requires_python=d.get("requires_python"),
        yanked=d.get("yanked"),
        upload_time=datetime.fromisoformat(when) if when else None,
        size=d.get("size"),
        core_metadata=d.get("core_metadata", False),
        md5=d.get("md5"),
    )
