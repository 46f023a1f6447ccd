"""`packhouse conda index DIR`: conda-index 0.13's `conda index`, incremental and parallel.

Per subdir, as conda-index writes them: `repodata_from_packages.json` (unpatched) and
`repodata.json` (patched), each with `.zst` / `.bz2` when asked; `current_repodata.json` and
`run_exports.json` (also compressed) when asked; CEP 16 shards with
`repodata_shards_from_packages.msgpack.zst` and `repodata_shards.msgpack.zst`; `index.html`.
At the root: `channeldata.json`, `rss.xml` and `index.html`. Every record also carries the
CEP 47 `indexed_timestamp` (milliseconds) of the run that first indexed its bytes; re-runs,
patches and other tools' repodata that already has one keep it.

Differences from conda-index, on purpose: shards get the same patches as repodata.json
(conda-index applies a `.py` patch generator's instructions to shards wrongly and writes
`patch_instructions.json` as `{name: {}}` when sharding); channeldata.json is rebuilt from the
records instead of merged into the previous file (a removed name leaves it); a dependency
of current_repodata.json's back-fill that conda cannot parse is skipped (conda-index stops).

Incremental: a subdir whose packages, options and written files are those of the last run
is left alone (see `conda_index_cache`); otherwise only new or changed packages are read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from packhouse.errors import InvalidInput, PackhouseError
from packhouse.formats.conda.names import EXTENSIONS
from packhouse.services.conda_index_cache import (
    SubdirCache,
    channel_state,
    stat_of,
    write_if_changed,
)

if TYPE_CHECKING:
    from packhouse.services.conda_index_write import PatchGenerator

__all__ = ["IndexOptions", "IndexReport", "index_channel", "write_if_changed"]

_SUBDIR = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9]+)$")
ProgressCallback = Callable[[int, int], None]  # (done, total) packages read


@dataclass(frozen=True)
class IndexOptions:
    """conda-index's options, under its names (`write_shards` is `shards`, `threads` is
    `jobs`); the defaults are Packhouse's, which also write `.zst`, shards and channeldata."""

    zst: bool = True
    bz2: bool = False
    shards: bool = True
    monolithic: bool = True
    current_repodata: bool = False
    channeldata: bool = True
    rss: bool = True
    run_exports: bool = False
    patch: Path | None = None  # a `.py` generator, a patches package, or instructions JSON
    jobs: int | None = None
    channel_name: str | None = None
    subdirs: tuple[str, ...] = ()
    output: Path | None = None
    base_url: str | None = None
    compact: bool = True
    current_index_versions: Mapping[str, list[str]] | None = None
    update_cache: bool = True
    update_only: bool = False
    html_dependencies: bool = False
    # conda-index compresses repodata.json.zst at 16; 9 decompresses to the same bytes, is
    # about a third smaller than level 3 and keeps a one-package re-index of 20,000 fast
    zst_level: int = 9

    def problems(self) -> list[str]:
        problems = []
        if not self.monolithic:
            clash = [
                flag
                for flag, on in (
                    ("--current-repodata", self.current_repodata),
                    ("--run-exports", self.run_exports),
                    ("--channeldata", self.channeldata),
                )
                if on
            ]
            if clash:
                problems.append(
                    f"{', '.join(clash)} need repodata.json: drop --no-write-monolithic,"
                    f" or add {', '.join('--no-' + c[2:] for c in clash)}"
                )
        problems += [
            f"subdir {s!r} is not valid: use 'noarch' or '<os>-<arch>' in lowercase letters"
            " and digits"
            for s in self.subdirs
            if not _SUBDIR.match(s)
        ]
        if self.jobs is not None and self.jobs < 1:
            problems.append(f"--threads must be at least 1, not {self.jobs}")
        if self.patch is not None and not self.patch.is_file():
            problems.append(f"--patch-generator {self.patch} is not a file")
        return problems


@dataclass
class IndexReport:
    subdirs: list[str] = field(default_factory=list)
    packages: int = 0
    read: int = 0
    removed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def _extract_one(path: str, subdir: str) -> tuple[str, str, bytes, bytes, str]:
    """(filename, name, record JSON, extra JSON, error) for one package file."""
    from packhouse.formats.conda.archive import read_package
    from packhouse.formats.conda.records import make_record

    filename = os.path.basename(path)
    try:
        # The operator's own files, indexed like conda-index: info/ only (uploads check all).
        record = make_record(read_package(path, subdir=subdir, check_body=False))
    except PackhouseError as error:
        return filename, "", b"", b"", str(error)
    except Exception as error:
        return filename, "", b"", b"", f"{type(error).__name__}: {error}"
    return filename, record.name, record.record_json, record.extra_json, ""


def _extract_chunk(chunk: list[tuple[str, str]]) -> list[tuple[str, str, str, bytes, bytes, str]]:
    return [(subdir, *_extract_one(path, subdir)) for path, subdir in chunk]


def _chunks(items: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_changed(
    work: list[tuple[str, str]], jobs: int, progress: ProgressCallback | None
) -> Iterable[tuple[str, str, str, bytes, bytes, str]]:
    total = len(work)
    if progress:
        progress(0, total)
    if jobs <= 1 or total < 32:
        for done, (path, subdir) in enumerate(work, 1):
            yield (subdir, *_extract_one(path, subdir))
            if progress:
                progress(done, total)
        return
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, min(256, total // (jobs * 8)))
    done = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for results in pool.map(_extract_chunk, _chunks(work, size)):
            yield from results
            done += len(results)
            if progress:
                progress(done, total)


def _discover_subdirs(root: Path, wanted: tuple[str, ...]) -> list[str]:
    if wanted:
        return sorted(set(wanted))
    found = {p.name for p in root.iterdir() if p.is_dir() and _SUBDIR.match(p.name)}
    return sorted(found | {"noarch"})


def _earlier_timestamps(subdir: SubdirCache, output: Path) -> dict[str, tuple[str, int]]:
    """CEP 47 timestamps that repodata written before (by any indexer) gives, by filename."""
    found: dict[str, tuple[str, int]] = {}
    for name in ("repodata_from_packages.json", "repodata.json"):
        path = output / name
        if stat_of(path) == subdir.outputs.get(str(path)):
            # as this indexer's last run wrote it (or absent): its records are the cache's,
            # whose timestamps `previous` holds; a filename new to the cache is not in it
            continue
        try:
            document = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            continue
        if not isinstance(document, dict):
            continue
        for section in ("packages", "packages.conda"):
            records = document.get(section)
            for filename, record in (records if isinstance(records, dict) else {}).items():
                stamp = record.get("indexed_timestamp") if isinstance(record, dict) else None
                if isinstance(stamp, int) and stamp > 0 and filename not in found:
                    found[filename] = (str(record.get("sha256", "")), stamp)
    return found


def _stamp(
    subdirs: Mapping[str, SubdirCache], read: list[tuple[str, str]], now_ms: int, out: Path
) -> None:
    """Give each package read its CEP 47 `indexed_timestamp`: the one its bytes had (in this
    cache or in repodata written before), else the time of this run."""
    earlier: dict[str, dict[str, tuple[str, int]]] = {}
    for subdir_name, filename in read:
        subdir = subdirs[subdir_name]
        entry = subdir.entries[filename]
        if entry.error:
            continue
        record = orjson.loads(entry.record_json)
        known = subdir.previous.get(filename)
        if known is None:
            if subdir_name not in earlier:
                earlier[subdir_name] = _earlier_timestamps(subdir, out / subdir_name)
            known = earlier[subdir_name].get(filename)
        stamp = known[1] if known and known[0] == record.get("sha256") else now_ms
        record["indexed_timestamp"] = stamp
        entry.indexed_timestamp = stamp
        # copied: orjson's bytes keep the spare room of its write buffer (about 3 KB a record
        # here, 65 MB more peak memory at 20,000 packages); a copy is exactly its length
        entry.record_json = bytes(memoryview(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)))


def _file_identity(path: Path | None) -> list[Any]:
    if path is None:
        return []
    try:
        st = path.stat()
    except FileNotFoundError:
        return [str(path)]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _fingerprint(subdir: SubdirCache, options: IndexOptions, root: Path, out: Path) -> bytes:
    digest = hashlib.sha256()
    settings = {
        k: v
        for k, v in vars(options).items()
        if k not in ("jobs", "subdirs", "update_cache", "update_only", "channeldata", "rss")
    }
    settings["patch"] = _file_identity(options.patch)
    settings["output"] = str(out.resolve())
    settings["instructions"] = _file_identity(subdir.path / "patch_instructions.json")
    settings["gen_patch"] = _file_identity(root / "gen_patch.py")
    digest.update(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS, default=str))
    digest.update(subdir.stat_digest())
    return digest.digest()


def load_patch_generator(path: Path | None, root: Path) -> PatchGenerator:
    """`(subdir, repodata) -> instructions`, as conda-index finds them: a repodata-patches
    `.conda`/`.tar.bz2` holding `<subdir>/patch_instructions.json`; a `.py` file whose
    `_patch_repodata(repodata, subdir)` returns them (conda-index runs `<channel>/gen_patch.py`
    when there is one and no `--patch-generator`); or, Packhouse's own, a
    patch_instructions.json for every subdir. No generator: `{}`, and each subdir's existing
    patch_instructions.json is applied, as conda-index does."""
    from packhouse.formats.conda.patches import load_patch_instructions, read_patches_package

    if path is None and (root / "gen_patch.py").is_file():
        path = root / "gen_patch.py"
    if path is None:
        return lambda subdir, repodata: {}
    if path.name.endswith(EXTENSIONS):
        by_subdir = read_patches_package(path)
        return lambda subdir, repodata: by_subdir.get(subdir, {})
    if path.suffix == ".py":
        spec = importlib.util.spec_from_file_location("packhouse_patch_generator", path)
        if spec is None or spec.loader is None:
            raise InvalidInput(f"{path}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise InvalidInput(f"{path} failed to load: {type(error).__name__}: {error}") from error
        generate = getattr(module, "_patch_repodata", None)
        if not callable(generate):
            raise InvalidInput(f"{path} has no _patch_repodata(repodata, subdir) function")

        def run(subdir: str, repodata: Callable[[], dict[str, Any]]) -> Mapping[str, Any]:
            try:
                instructions = generate(repodata(), subdir)
            except Exception as error:
                raise InvalidInput(
                    f"{path}: _patch_repodata failed for {subdir}: {type(error).__name__}: {error}"
                ) from error
            if not isinstance(instructions, dict):
                raise InvalidInput(f"{path}: _patch_repodata returned no instructions object")
            return load_patch_instructions(orjson.dumps(instructions), str(path))

        return run
    document = load_patch_instructions(path.read_bytes(), str(path))
    return lambda subdir, repodata: document


def index_channel(
    root: Path, options: IndexOptions | None = None, progress: ProgressCallback | None = None
) -> IndexReport:
    """Index the channel at `root` in place (or into `options.output`); return what was read,
    refused and written. Bad options raise InvalidInput listing every problem."""
    options = options or IndexOptions()
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    problems = options.problems()
    if problems:
        raise InvalidInput("; ".join(problems))
    out = Path(options.output) if options.output else root
    now = time.time()
    report = IndexReport()
    cache_dir = root / ".cache" / "packhouse"
    names = _discover_subdirs(root, options.subdirs)
    subdirs = {n: SubdirCache.load(n, root / n, cache_dir) for n in names}
    report.subdirs = list(subdirs)
    work: list[tuple[str, str]] = []
    for subdir in subdirs.values():
        if not options.update_cache:  # conda-index --no-update-cache: the cached list only
            subdir.path.mkdir(parents=True, exist_ok=True)
            continue
        changed, removed = subdir.scan(keep_missing=options.update_only)
        report.removed += removed
        work += [(str(subdir.path / fn), subdir.name) for fn in changed]
    jobs = options.jobs or os.cpu_count() or 1
    read: list[tuple[str, str]] = []
    for subdir_name, filename, name, record_json, extra_json, error in _read_changed(
        work, jobs, progress
    ):
        entry = subdirs[subdir_name].entries[filename]
        entry.name, entry.record_json, entry.extra_json, entry.error = (
            name,
            record_json,
            extra_json,
            error,
        )
        read.append((subdir_name, filename))
    report.read = len(read)
    _stamp(subdirs, read, int(now * 1000), out)
    generator = None
    channel_name = options.channel_name or os.path.basename(str(root).rstrip("/"))
    written = None
    any_written = False
    for subdir in subdirs.values():
        fingerprint = _fingerprint(subdir, options, root, out)
        if not subdir.outputs_intact(fingerprint):
            # imported here: a run that finds nothing changed needs none of it
            from packhouse.services.conda_index_write import SubdirWriter, Written

            if generator is None or written is None:
                generator = load_patch_generator(options.patch, root)
                written = Written(out, report.written)
            writer = SubdirWriter(subdir, options, out, channel_name, now, written)
            paths = writer.write(generator)
            subdir.remember_outputs(_fingerprint(subdir, options, root, out), paths)
            subdir.save()
            any_written = True
        report.failures += [(f"{subdir.name}/{fn}", why) for fn, why in subdir.failures]
        report.packages += subdir.packages
    if options.channeldata:
        state = channel_state(
            root, out, subdirs, rss=options.rss, compact=options.compact, channel_name=channel_name
        )
        if any_written or not state.current:
            from packhouse.services.conda_index_write import Written, channel_files

            written = written or Written(out, report.written)
            channel_files(out, subdirs, options, channel_name, now, written, state)
    return report
