"""conda's match specifications, as repodata `depends` and `constrains` use them.

`MatchSpec.parse("python >=3.11,<3.12.0a0")` and `.match(record)` follow conda's rules
(`conda.models.match_spec`, `conda.models.version`):

- `name`, `name VERSION`, `name VERSION BUILD`, the glued forms `name>=1.2`, `name=1.2`,
  `name==1.2=build` and `name=1.2=build`, a `channel::` prefix (ignored: one channel is read
  at a time), a trailing `# comment`, and `[version=..., build=..., build_number=...]`;
- a version spec: `|` (or) over `,` (and) over parenthesised groups (inside brackets only:
  conda takes `(...)` elsewhere for key=value pairs), each atom one of `*`,
  `==V`, `!=V`, `<V`, `<=V`, `>V`, `>=V`, `=V` (V's prefix: `=1.2` matches `1.2.3`, not
  `1.20`), `~=V` (compatible release), a bare `V` (equal as conda versions: `1.2` is `1.2.0`),
  `V*` or `V.*` (the prefix again), a glob with `*` inside (`1.*.3`, matched on the text),
  `^...$` (a regular expression on the text);
- a build: exact, a glob with `*`, or `^...$`.

What conda refuses is refused here too (`InvalidSpec`); a spec with a field this module does
not read (`md5`, `subdir`, `features`...) is refused as well rather than matched loosely.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packhouse.formats.conda.version import InvalidVersion, VersionOrder


class InvalidSpec(ValueError):
    """A match specification conda would refuse, or one with fields not read here."""


Matcher = Callable[[str], bool]
Combine = Callable[[Iterable[bool]], bool]  # any or all

# `>=1.2` and the like: one operator, then a version with no space after it
_RELATION = re.compile(r"^(==|!=|<=|>=|~=|<|>|=)(?![=<>!~])(\S+)$")
_COMPARE: dict[str, Callable[[VersionOrder, VersionOrder], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "=": VersionOrder.startswith,
    "!=startswith": lambda v, spec: not v.startswith(spec),
    "~=": lambda v, spec: v >= spec and v.startswith(_truncated(spec)),
}
_NAME = re.compile(r"^([^ =<>!~]+)(.*)$")
_SEPARATOR = re.compile(r"[ =]")  # between a spec's version and its build
_BUILD_WORD = re.compile(r"[^-=,|<>~]+")
_BRACKETS = re.compile(r"\[(.*)\]\s*$")
_BRACKET_ITEM = re.compile(r"""\s*([a-zA-Z0-9_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^,\s]+))\s*,?""")
_READ_IN_BRACKETS = {"version", "build", "build_number"}


def _truncated(spec: VersionOrder) -> VersionOrder:
    """`1.2.3` -> `1.2`: the prefix a compatible release (`~=1.2.3`) must keep."""
    return VersionOrder(".".join(spec.text.split(".")[:-1]))


def _version_of(text: str) -> VersionOrder | None:
    try:
        return VersionOrder(text)
    except InvalidVersion:
        return None


def _relation(op: str, version: str) -> Matcher:
    try:
        wanted = VersionOrder(version)
    except InvalidVersion as exc:
        raise InvalidSpec(f"{version!r} is not a conda version") from exc
    compare = _COMPARE[op]

    def matches(text: str) -> bool:
        have = _version_of(text)
        return have is not None and compare(have, wanted)

    return matches


def _atom(text: str) -> Matcher:
    """One version spec without `|`, `,` or parentheses."""
    if not text:
        raise InvalidSpec("an empty version spec")
    if text.startswith("^") or text.endswith("$"):
        if not (text.startswith("^") and text.endswith("$")):
            raise InvalidSpec(f"{text!r}: a regular expression must start with ^ and end with $")
        pattern = re.compile(text)
        return lambda v: pattern.match(v) is not None
    if text[0] in "=<>!~":
        found = _RELATION.match(text)
        if found is None:
            raise InvalidSpec(f"{text!r} has an invalid operator")
        op, version = found.groups()
        if version.endswith(".*"):
            if op == "~=":
                raise InvalidSpec(f"{text!r}: ~= takes no .*")
            version = version[:-2]  # `>=1.2.*` is `>=1.2`: the .* is ignored, as conda does
            if op == "!=":
                op = "!=startswith"
        return _relation(op, version)
    if text == "*":
        return lambda v: True
    if "*" in text.rstrip("*"):
        pattern = re.compile(
            "^(?:" + text.replace(".", r"\.").replace("+", r"\+").replace("*", ".*") + ")$"
        )
        return lambda v: pattern.match(v) is not None
    if text.endswith("*"):
        return _relation("=", text.rstrip("*").rstrip("."))
    if "@" in text:
        return lambda v: v == text
    return _relation("==", text)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"([(),|])", text.replace(" ", "")) if t]


def version_matcher(text: str) -> Matcher:
    """A conda version spec: `|` binds loosest, then `,`, then parentheses."""
    tokens = _tokens(text)
    position = 0

    def joined(separator: str, part: Callable[[], Matcher], combine: Combine) -> Matcher:
        """`part` once, or several times between `separator`s, combined with any or all."""
        nonlocal position
        parts = [part()]
        while position < len(tokens) and tokens[position] == separator:
            position += 1
            parts.append(part())
        return parts[0] if len(parts) == 1 else lambda v: combine(m(v) for m in parts)

    def alternatives() -> Matcher:
        return joined("|", conjunction, any)

    def conjunction() -> Matcher:
        return joined(",", term, all)

    def term() -> Matcher:
        nonlocal position
        if position >= len(tokens):
            raise InvalidSpec(f"{text!r} ends too early")
        word = tokens[position]
        position += 1
        if word == "(":
            inner = alternatives()
            if position >= len(tokens) or tokens[position] != ")":
                raise InvalidSpec(f"{text!r} has an unclosed parenthesis")
            position += 1
            return inner
        if word in "),|":
            raise InvalidSpec(f"{text!r} has {word!r} where a version belongs")
        return _atom(word)

    matcher = alternatives()
    if position != len(tokens):
        raise InvalidSpec(f"{text!r} has {tokens[position]!r} left over")
    return matcher


def build_matcher(text: str) -> Matcher:
    if text.startswith("^") and text.endswith("$"):
        pattern = re.compile(text)
        return lambda b: pattern.match(b) is not None
    if "*" in text:
        pattern = re.compile(fnmatch.translate(text))
        return lambda b: pattern.match(b) is not None
    return lambda b: b == text


def _number_matcher(text: str) -> Callable[[int], bool]:
    found = re.fullmatch(r"(==|!=|<=|>=|<|>|=)?\s*(\d+)", text.strip())
    if found is None:
        raise InvalidSpec(f"build_number {text!r} is not a number or a comparison with one")
    op, number = found.group(1) or "==", int(found.group(2))
    compare = _COMPARE["==" if op == "=" else op]
    return lambda n: bool(compare(n, number))  # type: ignore[arg-type]


def _split_version_build(rest: str) -> tuple[str | None, str | None]:
    """The version and build of what follows the name, split as conda splits them: the
    build follows the first space or `=` that comes after a version character (not after
    an operator) and leads to a word without operators (`>=1.0 , < 2.0 py34_0`, `1.2=0`,
    `* *`); spaces inside the version are dropped."""
    rest = rest.strip()
    if not rest:
        return None, None
    for found in _SEPARATOR.finditer(rest):
        at = found.start()
        build = rest[at + 1 :].strip()
        if at > 0 and rest[at - 1] not in "=!|,<>~" and build and _BUILD_WORD.fullmatch(build):
            return rest[:at].replace(" ", ""), build
    return rest.replace(" ", ""), None


def _conda_version(version: str, build: str | None) -> str:
    """conda's reading of a spec's version: `==1.2` is `1.2`; `=1.2` is `1.2*`, or `1.2`
    when a build is given; anything with `,` or `|` in it stays as written."""
    if version in ("=", "==") or not version.startswith("="):
        return version
    bare = version.lstrip("=")
    if version.startswith("==") and build is None:
        return bare
    if not any(c in bare for c in "=,|"):
        return bare + "*" if build is None and not bare.endswith("*") else bare
    return version


@dataclass(frozen=True)
class MatchSpec:
    name: str
    version: Matcher | None
    build: Matcher | None
    build_number: Callable[[int], bool] | None
    text: str
    channel: str = ""  # `conda-forge::foo`: the records of an index name no channel

    @classmethod
    def parse(cls, spec: str) -> MatchSpec:
        original = spec
        spec = spec.split("#", 1)[0].split(" if ", 1)[0].strip()
        fields: dict[str, str] = {}
        brackets = _BRACKETS.search(spec)
        if brackets:
            for key, *values in _BRACKET_ITEM.findall(brackets.group(1)):
                value = next((v for v in values if v), "")
                if key not in _READ_IN_BRACKETS:
                    raise InvalidSpec(f"{original!r}: [{key}=...] is not read here")
                fields[key] = value
            spec = spec[: brackets.start()].strip()
        if "(" in spec:  # conda reads `(...)` outside brackets as key=value pairs
            raise InvalidSpec(f"{original!r}: parentheses belong in [version='...']")
        channel, _, spec = spec.rpartition("::")
        spec = spec.strip()
        found = _NAME.match(spec)
        if found is None or not found.group(1):
            raise InvalidSpec(f"{original!r} names no package")
        name, rest = found.groups()
        version, build = _split_version_build(rest)
        if version is not None:
            version = _conda_version(version, build)
        version = fields.get("version", version)
        build = fields.get("build", build)
        try:
            return cls(
                name=name.lower(),
                version=version_matcher(version) if version not in (None, "*") else None,
                build=build_matcher(build) if build not in (None, "*") else None,
                build_number=(
                    _number_matcher(fields["build_number"]) if "build_number" in fields else None
                ),
                text=original,
                channel=channel.strip(),
            )
        except re.error as exc:
            raise InvalidSpec(f"{original!r}: {exc}") from exc

    def match(self, record: Mapping[str, Any]) -> bool:
        if self.channel or str(record.get("name", "")).lower() != self.name:
            return False
        if self.version is not None and not self.version(str(record.get("version", ""))):
            return False
        if self.build is not None and not self.build(str(record.get("build", ""))):
            return False
        if self.build_number is not None:
            number = record.get("build_number", 0)
            if not isinstance(number, int) or not self.build_number(number):
                return False
        return True
