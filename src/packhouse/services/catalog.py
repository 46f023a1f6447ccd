"""Repositories by name and their resolution orders, kept per journal serial.

Every request starts by finding its repository; this answers from memory until the
journal moves. A change to files only (an upload, a yank) reads just the repositories'
serials again; a change of structure (a repository, its bases or settings) reads them all.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packhouse.db import repository_store
from packhouse.db.repository_store import Repository
from packhouse.errors import InvalidInput, RepositoryNotFound
from packhouse.services.context import Context
from packhouse.services.repos import resolution_order
from packhouse.types import Format


@dataclass(frozen=True)
class _Snapshot:
    serial: int
    by_key: Mapping[tuple[Format, str], Repository]
    orders: Mapping[tuple[Format, str], tuple[Repository, ...]]
    generation: int  # the structure generation it was read at (db/journal_store.py)


def _with_serials(snap: _Snapshot, serial: int, serials: Mapping[int, int]) -> _Snapshot:
    """The same repositories with the `last_serial` each has now."""

    def fresh(repo: Repository) -> Repository:
        now = serials.get(repo.id, repo.last_serial)
        return repo if now == repo.last_serial else dataclasses.replace(repo, last_serial=now)

    by_key = {key: fresh(repo) for key, repo in snap.by_key.items()}
    orders = {key: tuple(fresh(r) for r in order) for key, order in snap.orders.items()}
    return _Snapshot(serial, by_key, orders, snap.generation)


class Catalog:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._snap: _Snapshot | None = None
        self._lock = threading.Lock()

    def _snapshot(self, serial: int | None = None) -> _Snapshot:
        watcher = self._ctx.db.watcher
        serial = watcher.current() if serial is None else serial
        snap = self._snap
        if snap is not None and snap.serial == serial:
            return snap
        generation = watcher.structure(serial)
        with self._lock, self._ctx.db.read() as conn:
            if snap is not None and snap.generation == generation:
                # only files changed: the repositories are the same but for their serials
                snap = _with_serials(snap, serial, repository_store.repo_serials(conn, None))
            else:
                repos = repository_store.list_all(conn)
                orders: dict[tuple[Format, str], tuple[Repository, ...]] = {
                    (r.format, r.name): tuple(resolution_order(conn, r)) for r in repos
                }
                by_key: dict[tuple[Format, str], Repository] = {
                    (r.format, r.name): r for r in repos
                }
                snap = _Snapshot(serial, by_key, orders, generation)
            self._snap = snap
            return snap

    def get(self, fmt: Format, name: str, serial: int | None = None) -> Repository:
        repo = self._snapshot(serial).by_key.get((fmt, name))
        if repo is None:
            raise RepositoryNotFound(f"there is no {fmt} repository named {name!r}")
        return repo

    def order(self, repo: Repository, serial: int | None = None) -> tuple[Repository, ...]:
        return self._snapshot(serial).orders[(repo.format, repo.name)]

    def all(self, fmt: Format | None = None) -> Sequence[Repository]:
        return [r for (f, _), r in self._snapshot().by_key.items() if fmt is None or f == fmt]

    def named(self, entry: str, fmt: Format | None = None) -> list[Repository]:
        """The repositories a name given by a person reaches, the one meaning every command
        and the API give it: `FORMAT/NAME` (pypi/main) names one; a bare `NAME` every
        repository so named, of either format (pypi/main and conda/main), or of `fmt` only
        when that is given. Empty when none exists."""
        head, sep, name = entry.partition("/")
        if sep:
            try:
                wanted: Format | None = Format(head)
            except ValueError:
                raise InvalidInput(
                    f"unknown format {head!r} in {entry!r}: use pypi/NAME or conda/NAME"
                ) from None
        else:
            wanted, name = fmt, entry
        found = [r for r in self.all(wanted) if r.name == name]
        return sorted(found, key=lambda r: list(Format).index(r.format))

    def readers_of(self, repo: Repository) -> list[Repository]:
        """Every repository whose resolution order includes `repo` (itself first)."""
        snap = self._snapshot()
        return [
            snap.by_key[key]
            for key, order in snap.orders.items()
            if key[0] == repo.format and any(r.id == repo.id for r in order)
        ]
