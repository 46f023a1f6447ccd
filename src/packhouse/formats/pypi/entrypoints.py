"""Check a wheel's `entry_points.txt`: installers write one file per console or GUI script.

https://packaging.python.org/en/latest/specifications/entry-points/ : the file is UTF-8, in
the INI-like format `importlib.metadata` reads (`[section]` lines, `name = object reference`
lines, `#` and `;` comments). pip, uv and `installer` write `bin/<name>` (`Scripts\\<name>.exe`)
for every name in `[console_scripts]` and `[gui_scripts]`, so a name such as `../../bin/x` or
`/usr/bin/evil` would write outside the environment. Such names are refused here, at upload;
only the spec's recommended form is accepted for script names: letters, digits, `_`, `.`, `-`
(and not `.` or `..`, nor starting with a dot or dash).
"""

from __future__ import annotations

import re

from packhouse.errors import UnsafeArchive

__all__ = ["check_entry_points"]

_SCRIPT_SECTIONS = {"console_scripts", "gui_scripts"}
_SCRIPT_NAME = re.compile(r"[^\W.-][\w.-]*", re.ASCII)
_MAX_PROBLEMS = 10


def _name_problem(section: str, name: str) -> str | None:
    if _SCRIPT_NAME.fullmatch(name):
        return None
    return (
        f"entry_points.txt [{section}] names the script {name!r}: a script name must be a plain"
        " file name (letters, digits, '_', '.', '-'), because installers write it into the"
        " environment's bin directory"
    )


def check_entry_points(data: bytes) -> None:
    """Raise UnsafeArchive listing every problem with the scripts `data` declares."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsafeArchive(
            f"entry_points.txt is not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    problems: list[str] = []
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section not in _SCRIPT_SECTIONS:
            continue
        name, equals, _ = line.partition("=")
        if not equals:
            problems.append(
                f"entry_points.txt [{section}] has the line {line!r}, which is not"
                " 'name = module:function'"
            )
            continue
        problem = _name_problem(section, name.strip())
        if problem:
            problems.append(problem)
    if problems:
        raise UnsafeArchive(problems[:_MAX_PROBLEMS])
