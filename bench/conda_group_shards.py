"""Conda group shard index through a sharded upstream: without a cooldown, and with min-age
(which reads every shard of the names the proxy answers for, 8 at a time, the first time).

An in-process Packhouse (SQLite file, in-memory blobs) and a static upstream on loopback that
serves CEP 16 shards and repodata.json.zst for N names (three versions each, the newest
indexed moments ago; one name in twenty only moments ago). Two proxies of it, two groups:
`plain` (main + proxy) and `cool` (main + proxy, --min-age 3d). Times, side by side:

1. the cold shard index of each group (`cool` fetches every shard; `plain` none);
2. `cool` again after its page is dropped (shards cached, record times in memory): the
   rebuild a new upstream index or a cooldown crossing costs;
3. `cool`'s cold monolithic repodata.json (fetches and streams the upstream's whole
   repodata.json.zst), for comparison.

    .venv/bin/python bench/conda_group_shards.py --names 5000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgpack
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.test_conda_sources_proxy import Channel  # noqa: E402
from tests.upstream_server import static_upstream  # noqa: E402

from packhouse.config import Settings  # noqa: E402
from packhouse.db.engine import Database  # noqa: E402
from packhouse.services.context import Context  # noqa: E402
from packhouse.services.repos import RepoSettings, create_repository, update_repository  # noqa: E402
from packhouse.storage.memory import MemoryBlobStore  # noqa: E402
from packhouse.types import Format, RepoKind  # noqa: E402
from packhouse.wiring import Services  # noqa: E402

NOW_MS = int(datetime.now(UTC).timestamp() * 1000)
OLD_MS = NOW_MS - 30 * 86400 * 1000


def fill(chan: Channel, names: int) -> None:
    """Records only (nothing is downloaded): `files[subdir][filename] = (record, b"")`."""
    files = chan.files.setdefault("noarch", {})
    for i in range(names):
        name = f"pkg{i:06d}"
        versions = [("1.0", OLD_MS), ("1.1", OLD_MS + 1000), ("2.0", NOW_MS)]
        if i % 20 == 0:
            versions = [("1.0", NOW_MS)]  # held back whole
        for version, stamp in versions:
            filename = f"{name}-{version}-0.conda"
            sha = hashlib.sha256(filename.encode()).hexdigest()
            record = {
                "build": "0",
                "build_number": 0,
                "depends": ["python >=3.9"],
                "license": "MIT",
                "md5": sha[:32],
                "name": name,
                "sha256": sha,
                "size": 1000 + i,
                "subdir": "noarch",
                "timestamp": OLD_MS,
                "indexed_timestamp": stamp,
                "version": version,
            }
            files[filename] = (record, b"")


def timed(what: str, run: object) -> float:
    start = time.perf_counter()
    assert callable(run)
    run()
    took = time.perf_counter() - start
    print(f"{what:<55} {took:8.2f} s")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, static_upstream() as upstream:
        chan = Channel(upstream)
        fill(chan, args.names)
        chan.publish(shards=True)
        data = Path(tmp)
        (data / "tmp").mkdir()
        settings = Settings(data=data, upstream_allowed_networks=["127.0.0.1/32"])
        db = Database(f"sqlite:///{data}/db.sqlite")
        db.upgrade()
        svc = Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))
        ctx = svc.ctx
        for proxy in ("pa", "pb"):
            create_repository(
                ctx, actor="b", name=proxy, fmt=Format.CONDA, kind=RepoKind.PROXY,
                upstream_url=chan.url,
            )  # fmt: skip
        create_repository(ctx, actor="b", name="main", fmt=Format.CONDA)
        create_repository(ctx, actor="b", name="plain", fmt=Format.CONDA, bases=["main", "pa"])
        create_repository(ctx, actor="b", name="cool", fmt=Format.CONDA, bases=["main", "pb"])
        update_repository(
            ctx, actor="b", fmt=Format.CONDA, name="cool",
            settings=RepoSettings(min_age=3 * 86400),
        )  # fmt: skip

        def index(group: str) -> dict[str, bytes]:
            repo = svc.catalog.get(Format.CONDA, group)
            page = svc.conda.page(repo, "noarch", "repodata_shards.msgpack.zst")
            body = page.read() if hasattr(page, "read") else page.body
            found: dict[str, bytes] = msgpack.unpackb(zstandard.decompress(body))["shards"]
            return found

        records = len(chan.files["noarch"])
        print(f"{args.names} names, {records} records in the upstream's noarch")
        plain = timed("plain: cold shard index (no cooldown)", lambda: index("plain"))
        asked = len(upstream.requests)
        cold = timed(
            "cool: cold shard index (min-age 3d, every shard fetched)", lambda: index("cool")
        )
        fetched = len(upstream.asked("/shards/"))
        svc.conda.proxied._entries.clear()
        warm = timed("cool: shard index again (shards cached)", lambda: index("cool"))
        repo = svc.catalog.get(Format.CONDA, "cool")
        mono = timed(
            "cool: cold repodata.json (whole upstream repodata.json.zst)",
            lambda: svc.conda.page(repo, "noarch", "repodata.json"),
        )
        names = index("cool")
        doc = svc.conda.page(repo, "noarch", "repodata.json")
        listed = json.loads(doc.read() if hasattr(doc, "read") else doc.body)  # type: ignore[union-attr]
        shown = {r["name"] for r in listed["packages.conda"].values()}
        assert set(names) == shown, "the sharded and monolithic views differ"
        print(f"names in the cool index: {len(names)} (held back whole: {args.names - len(names)})")
        print(f"upstream requests before cool: {asked}; shards fetched for cool: {fetched}")
        print(
            f"ratios: cool cold / plain cold {cold / plain:.1f}x, cool again / cool cold"
            f" {warm / cold:.2f}x, cool repodata.json / cool cold index {mono / cold:.2f}x"
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {rss:.0f} MiB")
        svc.close()


if __name__ == "__main__":
    main()
