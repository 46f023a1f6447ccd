"""Conda version ordering, exactly as conda's `conda.models.version.VersionOrder` orders.

conda's rules (conda 26.7.1, `VersionOrder.__init__` and `__lt__`):

- Lowercase and strip. Allowed characters are `[*.+!_0-9a-z]`; when a version has `-` and no
  `_`, each `-` is read as `_`. Anything else is invalid.
- An optional epoch `N!` (digits only, at most one `!`), and an optional local part after `+`
  (at most one), compared only when the rest is equal.
- A trailing `_` stays on the last component (`1.1_` is `[1], [1, "_"]`: the openssl-style
  "plain release sorts before its letters" trick); any other `_` separates like `.`.
- Each component is split into runs of digits, of `*`, and of other characters; digit runs are
  integers, `post` is infinity, `dev` is `DEV` (upper case sorts before every other string).
  A component that does not start with a digit gets a leading 0 (`1.1.post1` is
  `[1], [1], [0, inf, 1]`, so it sorts *below* `1.1.1`). An empty component is invalid.
- Strings sort before numbers; strings among themselves as Python strings; a missing
  subcomponent or component counts as 0 (`1.1 == 1.1.0`, `1.1a1 < 1.1`).

conda compares with nested `zip_longest` padding, which no plain tuple does. `_key` encodes a
parsed version as a tuple whose ordinary tuple order is conda's order, so versions can be
sorted, hashed and compared by key at C speed: trailing zeros are dropped, every zero that
remains is tagged with the sign of the next non-zero value after it (which is what decides a
comparison between a zero and padding), and a terminator stands for the padding. The same
trick is applied at both levels, subcomponents within a component and components within the
version. tests/formats/conda/test_conda_version.py checks it against conda's own class.
"""

from __future__ import annotations

import functools
import re
from itertools import zip_longest
from typing import Any

__all__ = ["InvalidVersion", "VersionOrder", "version_key"]

_CHECK = re.compile(r"^[*.+!_0-9a-z]+$")
_SPLIT = re.compile(r"[0-9]+|[*]+|[^0-9*]+")

_Part = int | float | str
# Subcomponent codes: (0, str) < zero followed by a string (1, -1) < padding (1, 0)
# < zero followed by a number (1, 1) < (2, positive number).
_END = (1, 0)
# Component codes: a component that is all zeros is (1, 0, sign of the next component that is
# not); the version's padding is (1, 0, 0). Other components are their subcomponent tuples.
_END_COMPONENT = ((1, 0, 0),)


class InvalidVersion(ValueError):
    """A version string conda refuses (conda raises `InvalidVersionSpec` for the same)."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"version {version!r} is not a conda version: {reason}")
        self.version = version
        self.reason = reason


def _components(original: str, components: list[str]) -> list[list[_Part]]:
    parsed: list[list[_Part]] = []
    for component in components:
        runs = _SPLIT.findall(component)
        if not runs:
            raise InvalidVersion(original, "empty version component")
        parts: list[_Part] = []
        for run in runs:
            if run.isdigit():
                parts.append(int(run))
            elif run == "post":
                parts.append(float("inf"))
            elif run == "dev":
                parts.append("DEV")
            else:
                parts.append(run)
        if not component[0].isdigit():
            parts.insert(0, 0)
        parsed.append(parts)
    return parsed


def parse(original: str) -> tuple[list[list[_Part]], list[list[_Part]]]:
    """conda's parsed form: (`[[epoch], component, ...]`, local components)."""
    version = original.strip().lower()
    if not version:
        raise InvalidVersion(original, "empty version string")
    if not _CHECK.match(version):
        if "-" in version and "_" not in version:
            version = version.replace("-", "_")
        if not _CHECK.match(version):
            raise InvalidVersion(original, "invalid character(s)")
    pieces = version.split("!")
    if len(pieces) > 2:
        raise InvalidVersion(original, "duplicated epoch separator '!'")
    epoch = "0"
    if len(pieces) == 2:
        epoch = pieces[0]
        if not epoch.isdigit():
            raise InvalidVersion(original, "epoch must be an integer")
    main_local = pieces[-1].split("+")
    if len(main_local) > 2:
        raise InvalidVersion(original, "duplicated local version separator '+'")
    main = main_local[0]
    if not main:
        raise InvalidVersion(original, "missing version before local version separator '+'")
    local = main_local[1].replace("_", ".").split(".") if len(main_local) == 2 else []
    if main.endswith("_"):
        split = main[:-1].replace("_", ".").split(".")
        split[-1] += "_"
    else:
        split = main.replace("_", ".").split(".")
    return (
        _components(original, [epoch, *split]),
        _components(original, local),
    )


def _is_zero(part: _Part) -> bool:
    return not isinstance(part, str) and part == 0


def _component_key(parts: list[_Part]) -> tuple[tuple[Any, ...], ...]:
    end = len(parts)
    while end and _is_zero(parts[end - 1]):
        end -= 1
    codes: list[tuple[Any, ...]] = [_END]
    following = 0
    for part in reversed(parts[:end]):
        if isinstance(part, str):
            codes.append((0, part))
            following = -1
        elif part == 0:
            codes.append((1, following))
        else:
            codes.append((2, part))
            following = 1
    codes.reverse()
    return tuple(codes)


def _sign(component: tuple[tuple[Any, ...], ...]) -> int:
    first = component[0]
    return 0 if first == _END else (-1 if first < _END else 1)


def _version_key(components: list[list[_Part]]) -> tuple[tuple[Any, ...], ...]:
    keys = [_component_key(parts) for parts in components]
    end = len(keys)
    while end and _sign(keys[end - 1]) == 0:
        end -= 1
    codes: list[tuple[Any, ...]] = [_END_COMPONENT]
    following = 0
    for key in reversed(keys[:end]):
        sign = _sign(key)
        if sign == 0:
            codes.append(((1, 0, following),))
        else:
            codes.append(key)
            following = sign
    codes.reverse()
    return tuple(codes)


@functools.lru_cache(maxsize=65536)
def _parsed(text: str) -> tuple[list[list[_Part]], list[list[_Part]]]:
    return parse(text)


@functools.lru_cache(maxsize=65536)
def _key(text: str) -> tuple[Any, ...]:
    main, local = _parsed(text)
    return (_version_key(main), _version_key(local))


def _same(a: list[list[_Part]], b: list[list[_Part]]) -> bool:
    """conda's `_eq`: component lists equal with 0 padding at both levels."""
    empty: list[_Part] = []
    for ca, cb in zip_longest(a, b, fillvalue=empty):
        for va, vb in zip_longest(ca, cb, fillvalue=0):
            if va != vb:
                return False
    return True


def version_key(text: str) -> tuple[Any, ...]:
    """A sort key in conda's order for any string: a version conda refuses sorts below every
    valid one (ordered by its text among the other invalid ones), so that a channel holding
    one (from an upstream, say) still has a newest version and nothing raises."""
    try:
        return (1, _key(text))
    except InvalidVersion:
        return (0, text)


@functools.total_ordering
class VersionOrder:
    """A conda version, compared as conda compares it; raises `InvalidVersion` as conda does."""

    __slots__ = ("key", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.key = _key(text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionOrder):
            return NotImplemented
        return self.key == other.key

    def __lt__(self, other: VersionOrder) -> bool:
        return bool(self.key < other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"VersionOrder({self.text!r})"

    def startswith(self, other: VersionOrder) -> bool:
        """conda's `VersionOrder.startswith`, which MatchSpec `name=1.2` (`1.2*`) uses: equal
        up to the last subcomponent of `other`, whose string must prefix ours
        (`1.1a1` starts with `1.1`; `1.10` does not)."""
        main, local = _parsed(self.text)
        other_main, other_local = _parsed(other.text)
        if other_local:
            if not _same(main, other_main):
                return False
            mine, theirs = local, other_local
        else:
            mine, theirs = main, other_main
        last = len(theirs) - 1
        if not _same(mine[:last], theirs[:last]):
            return False
        component: list[_Part] = [] if len(mine) <= last else mine[last]
        prefix = theirs[last]
        end = len(prefix) - 1
        if not _same([component[:end]], [prefix[:end]]):
            return False
        ours: _Part = 0 if len(component) <= end else component[end]
        wanted = prefix[end]
        if isinstance(wanted, str):
            return isinstance(ours, str) and ours.startswith(wanted)
        return ours == wanted
