"""The records file of a proxy's cached subdir: every checked record of an upstream
repodata.json, one line each (`filename TAB sha256 TAB time TAB record JSON`), grouped by
package name and sorted, written from the document as it arrives (services/conda_proxy.py
keeps it as a blob, and its index in the `upstream_pages` row)."""

from __future__ import annotations

import hashlib
import os
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from packhouse.formats.conda import remote
from packhouse.formats.conda.names import name_problems, parse_filename
from packhouse.formats.conda.remote import RemoteRecord, RepodataHead, Skipped
from packhouse.types import Sha256

INDEX_VERSION = 1  # of the records-file index kept in the row's body


@dataclass(frozen=True, slots=True)
class Line:
    """One record of the records file."""

    filename: str
    sha256: str
    time_ms: int
    record: bytes


def encode_line(record: RemoteRecord) -> bytes:
    head = f"{record.filename}\t{record.sha256}\t{record.time_ms}\t".encode()
    return head + record.record + b"\n"


def line_extras(lines: Iterable[Line]) -> dict[str, bytes]:
    """{filename: extras JSON} as the records themselves say them: an upstream record carries
    no about or post_install, but may carry its `run_exports` (conda-index's shards do)."""
    extras: dict[str, bytes] = {}
    for line in lines:
        run_exports = (
            orjson.loads(line.record).get("run_exports")
            if b'"run_exports"' in line.record
            else None
        )
        extras[line.filename] = (
            orjson.dumps({"run_exports": run_exports}) if isinstance(run_exports, dict) else b"{}"
        )
    return extras


def decode_lines(data: bytes) -> list[Line]:
    lines: list[Line] = []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        filename, sha256, ms, record = raw.split(b"\t", 3)
        lines.append(Line(filename.decode(), sha256.decode(), int(ms), record))
    return lines


class Deriver:
    """Writes the records file of a repodata.json arriving in chunks: lines in arrival
    order to a scratch file, then grouped by name, sorted by filename, into the file that
    is kept. Holds one line at a time and a few integers per record."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.skipped = Skipped()
        self.head = RepodataHead()
        self._groups: dict[str, array[int]] = {}  # name -> offset, length, offset, ...

    def derive(self, chunks: Iterable[bytes]) -> tuple[Path, dict[str, Any], Sha256]:
        scratch = self.tmp_dir / f"conda-scratch-{os.getpid()}-{threading.get_ident()}"
        try:
            with scratch.open("w+b") as out:
                offset = 0
                for section, filename, value in remote.iter_repodata(chunks, self.head):
                    checked, why = remote.check_record(section, filename, value)
                    if checked is None:
                        self.skipped.add(why or "?")
                        continue
                    line = encode_line(checked)
                    out.write(line)
                    self._groups.setdefault(checked.name, array("q")).extend((offset, len(line)))
                    offset += len(line)
                out.flush()
                return self._sorted(out)
        finally:
            scratch.unlink(missing_ok=True)

    def _sorted(self, scratch: BinaryIO) -> tuple[Path, dict[str, Any], Sha256]:
        kept = self.tmp_dir / f"conda-records-{os.getpid()}-{threading.get_ident()}"
        digest = hashlib.sha256()
        names: dict[str, list[Any]] = {}
        fd = scratch.fileno()
        offset = 0
        with kept.open("wb") as out:
            for name in sorted(self._groups):
                group = self._groups[name]
                by_filename: dict[bytes, bytes] = {}
                for i in range(0, len(group), 2):
                    line = os.pread(fd, group[i + 1], group[i])
                    by_filename[line.split(b"\t", 1)[0]] = line  # a repeated filename: last
                data = b"".join(by_filename[f] for f in sorted(by_filename))
                out.write(data)
                digest.update(data)
                times = sorted(int(line.split(b"\t", 3)[2]) for line in by_filename.values())
                part = hashlib.blake2b(data, digest_size=12).hexdigest()
                names[name] = [offset, len(data), times, part]
                offset += len(data)
        removed: dict[str, list[str]] = {}
        for filename in self.head.removed:
            parsed = parse_filename(filename)
            if parsed is not None and not name_problems(parsed.name):
                removed.setdefault(parsed.name, []).append(filename)
        index = {"v": INDEX_VERSION, "names": names, "removed": removed}
        return kept, index, Sha256(digest.hexdigest())
