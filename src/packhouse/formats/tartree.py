"""What the members of a tar archive may be when it is unpacked: the rule for sdists and for
conda packages (their `info/` stricter still, see formats/conda/archive.py).

Unpacked, every member must stay inside the directory it is unpacked into (PEP 721's "data"
filter, which pip and uv apply to sdists; conda's own checks for packages):

- no absolute names and no `..` components;
- symbolic links only when their target, resolved through the archive's other symbolic links,
  stays inside (`lib/libz.so -> libz.so.1` is common, hatchling keeps a project's own links
  in sdists; `/etc/passwd` or `../../x` is refused), and hard links only to a regular file
  that an earlier member holds (what tar requires);
- where links are not allowed at all (`links=False`), regular files and directories only;
- never devices, FIFOs or GNU sparse files (no build tool writes them).

`TreeCheck` is fed every member in archive order and checks the symbolic links at the end,
when all of them are known (a link may point through one that comes later).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field

from packhouse.errors import UnsafeArchive

__all__ = ["TreeCheck"]

_MAX_LINK_DEPTH = 40  # like the kernel's limit on nested symbolic links


def _name_problem(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"archive member {name!r} has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return f"archive member {name!r} has a '..' path component"
    if "\x00" in name:
        return f"archive member {name!r} has a NUL byte in its name"
    # `a//b`, `a/./b`, `a/.`: no build tool writes them, and tarfile's extraction of a link so
    # named recurses without end; a leading `./` (GNU tar's `tar -C dir .`) is fine.
    parts = name.removeprefix("./").rstrip("/").split("/")
    if any(part in ("", ".") for part in parts) and name not in (".", "./"):
        return f"archive member {name!r} has an empty or '.' path component"
    return None


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


@dataclass
class TreeCheck:
    """Checks one archive's members; `label` names the archive (or part) in messages and
    `root` what a link must stay inside ("package", "sdist")."""

    label: str = "archive"
    root: str = "package"
    _files: set[str] = field(default_factory=set)
    _links: dict[str, str] = field(default_factory=dict)
    _names: dict[str, bool] = field(default_factory=dict)  # name -> is a link

    def add(self, member: tarfile.TarInfo, *, links: bool = True, where: str | None = None) -> None:
        """Refuse `member` if its name or type is not allowed; `links=False` refuses links too,
        naming the member as a `where` member."""
        name = member.name
        problem = _name_problem(name)
        if problem:
            raise UnsafeArchive(problem)
        kind = _special_kind(member)
        if name.endswith("/") and not member.isdir():
            # tarfile would unpack a link so named over its directory, recursing without end
            raise UnsafeArchive(
                f"{self.label} member {name!r} ends with '/' but is not a directory"
            )
        key = "/".join(_parts(name))
        if not key and not member.isdir():
            raise UnsafeArchive(
                f"{self.label} member {name!r} names the root but is not a directory"
            )
        is_link = kind in ("symbolic link", "hard link")
        if key in self._names and (is_link or self._names[key]):
            # A link replaced later (or replacing a member) is checked nowhere at the end, yet
            # while it exists, members unpacked after it are written through it.
            raise UnsafeArchive(
                f"{self.label} member {name!r} appears twice, once as a link: the archive would"
                " unpack differently from the way it is checked"
            )
        self._names[key] = is_link or self._names.get(key, False)
        if kind is None:
            if member.isreg():
                self._files.add(key)
            return
        if not links or kind not in ("symbolic link", "hard link"):
            raise UnsafeArchive(f"{where or self.label} member {name!r} is a {kind}")
        if member.issym():
            self._links[key] = member.linkname
        else:
            self._check_hard_link(name, member.linkname)

    def _check_hard_link(self, name: str, target: str) -> None:
        problem = _name_problem(target)
        if problem or not target:
            raise UnsafeArchive(
                f"{self.label} member {name!r} is a hard link to {target!r}, outside the"
                f" {self.root}"
            )
        if "/".join(_parts(target)) not in self._files:
            raise UnsafeArchive(
                f"{self.label} member {name!r} is a hard link to {target!r}, which is not a"
                " regular file earlier in the archive"
            )

    def finish(self) -> None:
        """Check every symbolic link, resolved through the others, stays inside the package."""
        resolved: dict[str, list[str] | None] = {}
        for name, target in self._links.items():
            if "\\" in target:
                raise UnsafeArchive(
                    f"{self.label} member {name!r} is a symbolic link to {target!r}, which has a"
                    " backslash"
                )
            if _is_absolute(target):
                raise UnsafeArchive(
                    f"{self.label} member {name!r} is a symbolic link to the absolute path"
                    f" {target!r}, outside the {self.root}"
                )
            if self._target(name, resolved, set()) is None:
                raise UnsafeArchive(
                    f"{self.label} member {name!r} is a symbolic link to {target!r}, which leaves"
                    f" the {self.root}"
                )

    def _target(
        self, link: str, resolved: dict[str, list[str] | None], busy: set[str]
    ) -> list[str] | None:
        """Where the link `link` leads, as path parts from the root; None if it leaves it."""
        if link in resolved:
            return resolved[link]
        if link in busy or len(busy) > _MAX_LINK_DEPTH:
            raise UnsafeArchive(f"{self.label} has symbolic links nested too deep or in a loop")
        busy.add(link)
        target = self._links[link]
        where: list[str] | None = []
        if not _is_absolute(target):
            where = self._walk([*_parts(link)[:-1], *target.split("/")], resolved, busy)
        else:
            where = None
        busy.discard(link)
        resolved[link] = where
        return where

    def _walk(
        self, parts: list[str], resolved: dict[str, list[str] | None], busy: set[str]
    ) -> list[str] | None:
        """Walk `parts` from the package root as the kernel would, following known links."""
        where: list[str] = []
        for part in parts:
            if part in ("", "."):
                continue
            if part == "..":
                if not where:
                    return None
                where.pop()
                continue
            where.append(part)
            joined = "/".join(where)
            if joined in self._links:
                target = self._target(joined, resolved, busy)
                if target is None:
                    return None
                where = list(target)
        return where


def _is_absolute(target: str) -> bool:
    return target.startswith("/") or (len(target) > 1 and target[1] == ":")


def _special_kind(member: tarfile.TarInfo) -> str | None:
    """None for a regular file or directory, else what the member is."""
    if member.issparse():
        return "GNU sparse file"
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"member of the unknown tar type {member.type!r}"
