"""Sources and the resolution: which repositories of an order answer for a name.

A repository's resolution order (services/repos.py) is its own files, its bases depth-first,
proxies last. Every read, PyPI or conda, pages or files, asks `resolve` which members may
answer for one name, and reads only those:

- hosted members that hold the name (a project, or a conda package name in a subdir), in
  order; the first to hold a filename wins (`first_wins`);
- proxies, only when no hosted member of the order holds the name, or the name is on the
  `allow_upstream` list of a non-proxy repository of the order (the dependency-confusion
  rule: a private name can never be shadowed or completed from an upstream, and the
  upstream is never even asked about it);
- each proxy's files then pass the cooldowns of the repositories on the way (`Cooldowns`).

Hosted sources read the database (services/pypi_reads.py, services/conda_reads.py); proxy
sources read an upstream through their cache (services/pypi_proxy.py, services/conda_proxy.py).
For conda the rule holds per package name and subdir: the holders passed to `resolve` are
the hosted members holding the name in the subdir being read (services/conda_order.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from packhouse.db.repository_store import Cooldown, Repository
from packhouse.types import RepoKind


@dataclass(frozen=True)
class Resolution:
    """The members of an order that answer for one name."""

    hosted: tuple[Repository, ...]  # hosted members that hold the name, in order
    proxies: tuple[Repository, ...]  # proxies that may contribute files for it
    blocked: tuple[Repository, ...]  # proxies the confusion rule keeps out for it

    @property
    def members(self) -> tuple[Repository, ...]:
        return self.hosted + self.proxies


def proxies_of(order: Sequence[Repository]) -> tuple[Repository, ...]:
    return tuple(r for r in order if r.kind is RepoKind.PROXY)


def hosted_of(order: Sequence[Repository]) -> tuple[Repository, ...]:
    return tuple(r for r in order if r.kind is not RepoKind.PROXY)


def allowed_upstream(order: Sequence[Repository], name: str) -> bool:
    """Whether the repository being read (the order's first) lets `name` come from upstreams
    even though it is hosted: its own `allow_upstream` list. A group built on another does
    not take the inner group's list, so opening a hosted name to upstreams is decided by
    the repository clients read, never inherited from one it happens to include."""
    return bool(order) and order[0].kind is not RepoKind.PROXY and name in order[0].allow_upstream


def resolve(order: Sequence[Repository], name: str, holders: Iterable[int]) -> Resolution:
    """Apply the confusion rule to an order for `name`, given the ids of the hosted
    repositories that hold it (their projects table has the name, live or not: a name once
    published stays protected after its files are deleted)."""
    held = set(holders)
    hosted = tuple(r for r in hosted_of(order) if r.id in held)
    proxies = proxies_of(order)
    if hosted and not allowed_upstream(order, name):
        return Resolution(hosted, (), proxies)
    return Resolution(hosted, proxies, ())


T = TypeVar("T")


def first_wins(parts: Iterable[Mapping[str, T]]) -> dict[str, T]:
    """Files by filename across the members that answer, in order: the first member to
    hold a filename wins (a conda package name's records across an order)."""
    merged: dict[str, T] = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged


@dataclass(frozen=True)
class Cooldowns:
    """The cooldowns an upstream file passes on its way to a reader: the proxy's own and
    every non-proxy repository of the order being read. A file is held back when any of
    them holds it back; a name exempt in one is exempt from that one only."""

    rules: tuple[Cooldown, ...]

    @classmethod
    def of(cls, order: Sequence[Repository], proxy: Repository) -> Cooldowns:
        rules = [r.cooldown for r in (*hosted_of(order), proxy) if r.cooldown.active]
        return cls(tuple(rules))

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def cutoff(self, name: str, now: datetime) -> datetime | None:
        """Upstream files of `name` uploaded after this are held back (None: none are)."""
        limits = [c for r in self.rules if name not in r.exempt if (c := r.cutoff(now))]
        return min(limits) if limits else None

    def admits(self, cutoff: datetime | None, uploaded: datetime | None) -> bool:
        """Whether a file uploaded at `uploaded` passes `cutoff`. A file whose upload time
        the upstream does not say is held back while a cooldown applies: its age is not
        known, and a cooldown is a safety rule."""
        if cutoff is None:
            return True
        return uploaded is not None and uploaded <= cutoff
