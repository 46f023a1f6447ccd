"""Packhouse's conda match specs against conda's own `conda.models.match_spec.MatchSpec`.

The named cases need nothing; the oracle test asks conda 26.7.1 itself (installed from
../shared/clients by the session fixture), in one helper process, whether each record of a
list matches each spec of a corpus (the specs of every record in the repositories under
tests/data/conda, and forms written out below), and which specs conda refuses.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.clients.conda_client import Conda, conda_fixture

from packhouse.formats.conda.matchspec import InvalidSpec, MatchSpec

__all__ = ["conda_fixture"]  # the `conda` fixture, used by the tests below

DATA = Path(__file__).resolve().parents[2] / "data" / "conda"


def record(version: str, build: str = "py311_0", number: int = 0) -> dict[str, Any]:
    return {"name": "foo", "version": version, "build": build, "build_number": number}


@pytest.mark.parametrize(
    ("spec", "version", "build", "expected"),
    [
        ("foo", "1.0", "0", True),
        ("bar", "1.0", "0", False),
        ("FOO >=1", "1.0", "0", True),
        ("foo 1.2", "1.2.0", "0", True),  # equal as conda versions
        ("foo 1.2", "1.2.1", "0", False),
        ("foo 1.2*", "1.2.1", "0", True),
        ("foo 1.2*", "1.20", "0", False),  # a prefix of components, not of text
        ("foo=1.2", "1.2.9", "0", True),
        ("foo=1.2", "1.3", "0", False),
        ("foo >=1.2,<2|3.*", "3.1", "0", True),
        ("foo >=1.2,<2|3.*", "2.5", "0", False),
        ("foo >=1.0 , < 2.0 py34_0", "1.5", "py34_0", True),
        ("foo >=1.0 , < 2.0 py34_0", "1.5", "py35_0", False),
        ("foo 1.2.* *_cp311", "1.2.3", "py_cp311", True),
        ("foo 1.2.* *_cp311", "1.2.3", "py_cp312", False),
        ("foo ~=1.2", "1.9", "0", True),
        ("foo ~=1.2", "2.0", "0", False),
        ("foo==1.2=b", "1.2", "b", True),
        ("foo==1.2=b", "1.2.1", "b", False),
        ("foo=1.2=b", "1.2.1", "b", False),  # with a build, `=1.2` is exact (conda's rule)
        ("foo !=1.2.*", "1.2.5", "0", False),
        ("foo !=1.2.*", "1.3", "0", True),
        ("foo[version='(>=1,<2)|>=3']", "2.5", "0", False),
        ("foo[version='(>=1,<2)|>=3']", "3", "0", True),
        ("foo 1.*.3", "1.7.3", "0", True),
        ("conda-forge::foo >=1", "1.0", "0", False),  # an index's records name no channel
        ('foo[version=">=2"]', "1.0", "0", False),
        ("foo[build_number='>=3']", "1.0", "0", False),
        ("foo >=3.11,<3.12.0a0", "3.11.9", "0", True),
        ("foo >=3.11,<3.12.0a0", "3.12.0rc1", "0", False),
        ("foo <= 1.2", "1.1", "0", True),  # the space after an operator is not a build
        ("foo >=1 # a comment", "1.0", "0", True),
    ],
)
def test_named_specs(spec: str, version: str, build: str, expected: bool) -> None:
    assert MatchSpec.parse(spec).match(record(version, build)) is expected


@pytest.mark.parametrize("spec", ["", ">=1", "foo >=", "foo >>1", "foo[md5=x]"])
def test_refused_specs(spec: str) -> None:
    with pytest.raises(InvalidSpec):
        MatchSpec.parse(spec)


WRITTEN = [
    "foo",
    "foo *",
    "foo * *",
    "foo 1.2",
    "foo 1.2.0",
    "foo 1.2*",
    "foo 1.2.*",
    "foo=1.2",
    "foo=1.2=py311_0",
    "foo==1.2=py311_0",
    "foo==1.2",
    "foo 1.2 py311_0",
    "foo 1.2 py*",
    "foo * py311_*",
    "foo * *_0",
    "foo >=1.2",
    "foo>=1.2",
    "foo >1.2",
    "foo <1.2",
    "foo <=1.2",
    "foo !=1.2",
    "foo !=1.2.*",
    "foo >=1.2.*",
    "foo ~=1.2",
    "foo ~=1.2.3",
    "foo >=1.0,<2.0a0",
    "foo >=1.0 , < 2.0 py311_0",
    "foo >=1,<2|>=3",
    "foo (>=1,<2)|>=3",
    "foo[version='(>=1,<2)|>=3']",
    "foo 1.2|1.3",
    "foo 1.*.3",
    "foo 1.2.3_1",
    "foo 1!2.0",
    "foo >=2.0rc1",
    "foo <2.0.0a0",
    "foo 1.2.3.*",
    "foo=1",
    "foo >=1.2,<1.3.0a0 py311_*",
    "foo ^1\\.2.*$",
    "foo[version='>=1.2,<2']",
    "foo[build=py311_0]",
    "foo[build_number=1]",
    "foo[build_number='>=1']",
    "conda-forge::foo >=1.2",
    "foo 1.2 =py311_0",
    "foo <= 1.2",
    "foo 1.0 b extra",
    "foo >>1",
]
VERSIONS = [
    "1",
    "1.0",
    "1.1",
    "1.2",
    "1.2.0",
    "1.2.1",
    "1.2.3",
    "1.20",
    "1.3",
    "1.7.3",
    "1.9",
    "2.0",
    "2.0rc1",
    "2.0.0a0",
    "2.5",
    "3",
    "3.1",
    "1.2.3_1",
    "1!2.0",
    "1.2a1",
    "1.2.dev1",
    "1.2.post1",
]
BUILDS = [("py311_0", 0), ("py311_1", 1), ("py312_0", 0), ("h1_0", 0)]

ORACLE = """
import json, sys
from conda.models.match_spec import MatchSpec
from conda.models.records import PackageRecord
specs, records = json.load(sys.stdin)
out = []
for spec in specs:
    try:
        m = MatchSpec(spec)
    except Exception as exc:
        out.append(None)
        continue
    row = []
    for r in records:
        try:
            row.append(bool(m.match(PackageRecord(**r))))
        except Exception:
            row.append(None)
    out.append(row)
json.dump(out, sys.stdout)
"""


def corpus_specs() -> list[str]:
    """Every `depends` and `constrains` entry of the repositories kept for tests, renamed to
    `foo` so that each can match the records below."""
    found: set[str] = set()
    for path in DATA.rglob("repodata.json"):
        document = json.loads(path.read_text())
        for section in ("packages", "packages.conda"):
            for rec in document.get(section, {}).values():
                for spec in (*rec.get("depends", ()), *rec.get("constrains", ())):
                    rest = spec.partition(" ")[2]
                    found.add(f"foo {rest}" if rest else "foo")
    return sorted(found)


def test_matches_what_conda_matches(conda: Conda) -> None:
    specs = WRITTEN + corpus_specs()
    records = [
        record(version, build, number)
        for version, (build, number) in itertools.product(VERSIONS, BUILDS)
    ]
    answer = subprocess.run(
        [str(conda.python), "-c", ORACLE],
        input=json.dumps([specs, records]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = json.loads(answer.stdout)
    differences = []
    for spec, row in zip(specs, theirs, strict=True):
        try:
            ours: list[bool | None] | None = [MatchSpec.parse(spec).match(r) for r in records]
        except InvalidSpec:
            ours = None
        if row is None or ours is None:
            if (row is None) != (ours is None):
                differences.append(f"{spec!r}: conda {'refuses' if row is None else 'parses'} it")
            continue
        for rec, mine, conda_says in zip(records, ours, row, strict=True):
            if conda_says is not None and mine != conda_says:
                differences.append(
                    f"{spec!r} on {rec['version']} {rec['build']}: conda {conda_says}"
                )
    assert len(specs) > 60
    assert not differences, "\n".join(differences[:40])
