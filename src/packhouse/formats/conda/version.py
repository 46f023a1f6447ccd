"""Conda version ordering (conda's `VersionOrder`), enough to sort and compare versions.

Rules, as conda applies them: lowercase; an optional `N!` epoch; an optional `+local` part
compared only when the rest is equal; components split on `.` and `_`; each component is
split into runs of digits and non-digits; a component starting with letters gets a leading 0;
`dev` sorts before any other string, `post` after any number; strings sort before numbers;
missing components count as 0, so `1.0 == 1.0.0`.
"""

from __future__ import annotations

import functools
import re
from itertools import zip_longest

__all__ = ["VersionOrder"]

_PART = re.compile(r"[0-9]+|[^0-9]+")
_Part = int | float | str
_FILL: list[_Part] = [0]


def _split(text: str) -> list[list[_Part]]:
    components: list[list[_Part]] = []
    for component in text.replace("_", ".").split("."):
        parts: list[_Part] = []
        for raw in _PART.findall(component):
            if raw.isdigit():
                parts.append(int(raw))
            elif raw == "post":
                parts.append(float("inf"))
            elif raw == "dev":
                parts.append("DEV")  # uppercase: sorts before every lowercase string
            else:
                parts.append(raw)
        if not parts or isinstance(parts[0], str):
            parts.insert(0, 0)
        components.append(parts)
    return components


def _cmp_parts(a: list[list[_Part]], b: list[list[_Part]]) -> int:
    for ca, cb in zip_longest(a, b, fillvalue=_FILL):
        for va, vb in zip_longest(ca, cb, fillvalue=0):
            if va == vb:
                continue
            if isinstance(va, str) and not isinstance(vb, str):
                return -1
            if isinstance(vb, str) and not isinstance(va, str):
                return 1
            return -1 if va < vb else 1  # type: ignore[operator]
    return 0


@functools.total_ordering
class VersionOrder:
    __slots__ = ("_local", "_main", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        lowered = text.strip().lower()
        epoch = "0"
        if "!" in lowered:
            epoch, lowered = lowered.split("!", 1)
        main, _, local = lowered.partition("+")
        epoch_value: _Part = int(epoch) if epoch.isdigit() else epoch
        self._main: list[list[_Part]] = [[epoch_value], *_split(main)]
        self._local: list[list[_Part]] = _split(local) if local else []

    def _cmp(self, other: VersionOrder) -> int:
        return _cmp_parts(self._main, other._main) or _cmp_parts(self._local, other._local)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionOrder) and self._cmp(other) == 0

    def __lt__(self, other: VersionOrder) -> bool:
        return self._cmp(other) < 0

    def __repr__(self) -> str:
        return f"VersionOrder({self.text!r})"
