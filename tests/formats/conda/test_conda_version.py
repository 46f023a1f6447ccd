"""Packhouse's conda version order against conda's own `conda.models.version.VersionOrder`.

The named cases need nothing; the corpus and property tests ask conda 26.7.1 itself (installed
from ../shared/clients by the session fixture), through one helper process that answers, for a
list of versions, which are valid and the rank of each in conda's order (ties share a rank).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.clients.conda_client import Conda, conda_fixture

from packhouse.formats.conda.version import InvalidVersion, VersionOrder, version_key

__all__ = ["conda_fixture"]  # the `conda` fixture, used by the tests below

# conda's docstring order, in which `a < b` for each neighbour unless marked equal.
CONDA_DOC_ORDER = [
    "0.4",
    "==0.4.0",
    "0.4.1.rc",
    "==0.4.1.RC",
    "0.4.1",
    "0.5a1",
    "0.5b3",
    "0.5C1",
    "0.5",
    "0.9.6",
    "0.960923",
    "1.0",
    "1.1dev1",
    "1.1_",
    "1.1a1",
    "1.1.0dev1",
    "==1.1.dev1",
    "1.1.a1",
    "1.1.0rc1",
    "1.1.0",
    "==1.1",
    "1.1.0post1",
    "==1.1.post1",
    "1.1post1",
    "1996.07.12",
    "1!0.4.1",
    "1!3.1.1.6",
    "2!0.4.1",
]

# (smaller, larger) pairs, each checked both ways; the first three are the ones issue 9 found
# the old code got wrong.
NAMED_LESS = [
    ("1.1.post1", "1.1.1"),
    ("1.1.1_", "1.1.1a"),
    ("1.0.1_", "1.0.1a"),
    ("1.0.1a", "1.0.1"),
    ("1.1", "1.1.post1"),
    ("1.1.0post1", "1.1post1"),
    ("1.0a", "1.0.dev"),  # [1], [0, "a"] against [1], [0], [0, "DEV"]
    ("1.0a", "1.0.0a"),
    ("1.0*", "1.0dev"),
    ("1.0dev", "1.0_"),
    ("1.0", "1.0.0.1"),
    ("1.0.0.a", "1.0"),
    ("1.2.3", "1.2.3+1"),
    ("1.2.3+a", "1.2.3+1"),
    ("1.2.3+1", "1.2.4"),
    ("9!0", "10!0"),
    ("2.0", "1!1.0"),
    ("1.9", "1.10"),
    ("1.0-rc1", "1.0"),
    ("2024.1.post1", "2024.1.1"),
    ("1.0.a", "1.0.devel"),  # only `dev` itself is special
    ("1.0.post", "1.0.1"),
    ("1.0.0post", "1.0post"),
]
NAMED_EQUAL = [
    ("1.0", "1.0.0"),
    ("1.0", "1.0.0.0+0"),
    ("1.1.a1", "1.1.0a1"),
    ("1.0.RC1", "1.0.rc1"),
    ("1-2-3", "1_2_3"),
    ("1-2", "1.2"),
    ("0!1.0", "1.0"),
    ("00!1.00", "1"),
    (" 1.0 ", "1.0"),
]
NAMED_INVALID = [
    "",
    " ",
    "1..0",
    ".1",
    "1.",
    "1!2!3",
    "a!1.0",
    "!1.0",
    "1.0+",
    "1.0+a+b",
    "+1.0",
    "1.0+a..b",
    "1-0_1",
    "1.0@2",
    "1.0 2",
    "1_.0",
]


def _split_doc_order() -> list[tuple[str, bool]]:
    """(version, equal to the previous one) pairs."""
    return [(v.removeprefix("=="), v.startswith("==")) for v in CONDA_DOC_ORDER]


def test_conda_docstring_order() -> None:
    items = _split_doc_order()
    for (previous, _), (current, equal) in itertools.pairwise(items):
        a, b = VersionOrder(previous), VersionOrder(current)
        if equal:
            assert a == b, (previous, current)
            assert hash(a) == hash(b)
        else:
            assert a < b, (previous, current)
            assert not b < a, (previous, current)
    shuffled = [v for v, _ in items]
    random.Random(9).shuffle(shuffled)
    ordered = sorted(shuffled, key=version_key)
    assert [VersionOrder(v) for v in ordered] == [VersionOrder(v) for v, _ in items]


@pytest.mark.parametrize(("smaller", "larger"), NAMED_LESS)
def test_named_less(smaller: str, larger: str) -> None:
    assert VersionOrder(smaller) < VersionOrder(larger)
    assert VersionOrder(larger) > VersionOrder(smaller)
    assert VersionOrder(smaller) != VersionOrder(larger)
    assert version_key(smaller) < version_key(larger)


@pytest.mark.parametrize(("a", "b"), NAMED_EQUAL)
def test_named_equal(a: str, b: str) -> None:
    assert VersionOrder(a) == VersionOrder(b)
    assert hash(VersionOrder(a)) == hash(VersionOrder(b))


@pytest.mark.parametrize("text", NAMED_INVALID)
def test_named_invalid(text: str) -> None:
    with pytest.raises(InvalidVersion, match="is not a conda version"):
        VersionOrder(text)


def test_invalid_versions_sort_below_valid_ones_without_raising() -> None:
    versions = ["1.0", "1..0", "0.1", "a!b"]
    assert sorted(versions, key=version_key) == ["1..0", "a!b", "0.1", "1.0"]
    assert max(versions, key=version_key) == "1.0"


# --- against conda itself -----------------------------------------------------------------

_ORACLE = r"""
import json, sys
from conda.exceptions import InvalidVersionSpec
from conda.models.version import VersionOrder
from functools import cmp_to_key

def cmp(a, b):
    return -1 if a < b else (1 if b < a else 0)

for line in sys.stdin:
    versions = json.loads(line)
    parsed = {}
    for v in versions:
        try:
            parsed[v] = VersionOrder(v)
        except InvalidVersionSpec:
            pass
    valid = sorted(set(parsed), key=lambda v: parsed[v])
    ranks, rank = {}, 0
    for i, v in enumerate(valid):
        if i and not parsed[valid[i - 1]] == parsed[v]:
            rank += 1
        ranks[v] = rank
    # every neighbouring pair also compared by <, >, == directly, so a rank tie is conda's ==
    sys.stdout.write(json.dumps(ranks) + "\n")
    sys.stdout.flush()
"""


class Oracle:
    """conda's VersionOrder in a helper process of the conda venv."""

    def __init__(self, conda: Conda) -> None:
        self.process = subprocess.Popen(
            [str(conda.python), "-c", _ORACLE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ranks(self, versions: Sequence[str]) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(list(versions)) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "conda's VersionOrder helper stopped"
        result: dict[str, int] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def oracle(conda: Conda) -> Iterator[Oracle]:
    helper = Oracle(conda)
    yield helper
    helper.close()


def our_ranks(versions: Sequence[str]) -> dict[str, int]:
    parsed: dict[str, VersionOrder] = {}
    for v in versions:
        with contextlib.suppress(InvalidVersion):
            parsed[v] = VersionOrder(v)
    valid = sorted(set(parsed), key=lambda v: parsed[v])
    ranks: dict[str, int] = {}
    rank = 0
    for i, v in enumerate(valid):
        if i and parsed[valid[i - 1]] != parsed[v]:
            rank += 1
        ranks[v] = rank
    return ranks


def assert_same_order(oracle: Oracle, versions: Sequence[str]) -> None:
    theirs = oracle.ranks(versions)
    ours = our_ranks(versions)
    assert set(ours) == set(theirs), {
        "valid for conda only": sorted(set(theirs) - set(ours)),
        "valid for Packhouse only": sorted(set(ours) - set(theirs)),
    }
    wrong = [(v, theirs[v], ours[v]) for v in sorted(theirs, key=theirs.__getitem__)]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert not wrong, f"rank differs (version, conda, packhouse): {wrong[:20]}"


ATOMS = ["0", "1", "2", "9", "10", "00", "01", "007", "123456789012345678901234567890"]
ATOMS += ["a", "b", "c", "rc", "alpha", "beta", "dev", "post", "devel", "pre", "g", "z"]
ATOMS += ["_", "*", "**", "DEV", "Post", "RC", "A"]
SEPARATORS = [".", "_", "-", "", "+", "!"]


def generated_version(rng: random.Random) -> str:
    parts = [rng.choice(ATOMS)]
    for _ in range(rng.randint(0, 6)):
        parts.append(rng.choice(SEPARATORS))
        parts.append(rng.choice(ATOMS))
    text = "".join(parts)
    if rng.random() < 0.1:
        text += "_"
    if rng.random() < 0.05:
        text = " " + text
    return text


def test_generated_corpus_orders_as_conda(oracle: Oracle) -> None:
    """Eight thousand generated versions (about a third valid) plus the named cases, ranked."""
    rng = random.Random(20260107)
    corpus = [generated_version(rng) for _ in range(8000)]
    corpus += [v.removeprefix("==") for v in CONDA_DOC_ORDER]
    corpus += [v for pair in NAMED_LESS + NAMED_EQUAL for v in pair] + NAMED_INVALID
    assert len(our_ranks(corpus)) > 2000
    assert_same_order(oracle, corpus)


TESTDATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "conda"


def _testdata_versions() -> list[str]:
    versions: set[str] = set()
    for path in sorted(TESTDATA.rglob("*.json")):
        try:
            document = json.loads(path.read_bytes())
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        for section in ("packages", "packages.conda"):
            for record in (document.get(section) or {}).values():
                if isinstance(record, dict) and isinstance(record.get("version"), str):
                    versions.add(record["version"])
    return sorted(versions)


def test_real_world_versions_order_as_conda(oracle: Oracle) -> None:
    """Every version in the conda test channels of ../shared/testdata (thousands of real ones)."""
    versions = _testdata_versions()
    if len(versions) < 1000:
        pytest.skip(f"fewer than 1,000 versions in the repodata under {TESTDATA}")
    assert_same_order(oracle, versions)


_atom = st.sampled_from(ATOMS) | st.text("0123456789abcdefpostv_*-.+!", min_size=1, max_size=4)
_version = st.builds(
    lambda first, rest, tail: first + "".join(s + a for s, a in rest) + tail,
    _atom,
    st.lists(st.tuples(st.sampled_from(SEPARATORS), _atom), max_size=6),
    st.sampled_from(["", "", "", "_", "+1", "+a_b"]),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(_version | st.text("0123456789.ab_+!-*", max_size=8), min_size=2, max_size=40))
def test_property_orders_as_conda(oracle: Oracle, versions: list[str]) -> None:
    assert_same_order(oracle, versions)


@given(st.lists(_version | st.text(max_size=6), min_size=1, max_size=20))
def test_property_keys_compare_like_the_class_and_never_raise(versions: list[str]) -> None:
    """Any two keys compare (no str-against-int TypeError inside), valid ones as the class."""
    for a in versions:
        for b in versions:
            ka, kb = version_key(a), version_key(b)
            assert (ka < kb) + (ka == kb) + (ka > kb) == 1
            try:
                va, vb = VersionOrder(a), VersionOrder(b)
            except InvalidVersion:
                continue
            assert (va < vb, va == vb) == (ka < kb, ka == kb)


# conda's own answers (`VersionOrder(a).startswith(VersionOrder(b))`, conda 26.7.1): what
# MatchSpec `name=b` matches, used for current_repodata.json
STARTSWITH = [
    ("1.1a1", "1.1", True),
    ("1.10", "1.1", False),
    ("1.1.5", "1.1", True),
    ("1.1post1", "1.1", True),
    ("1.1", "1.1", True),
    ("2.0", "1", False),
    ("1.2.3+4", "1.2.3+4", True),
    ("1.2.3+4.1", "1.2.3+4", True),
    ("1.2.3", "1.2.3+4", False),
    ("1.1.dev1", "1.1", True),
    ("1.1", "1.1.0", True),
]


@pytest.mark.parametrize(("version", "prefix", "expected"), STARTSWITH)
def test_startswith_named(version: str, prefix: str, expected: bool) -> None:
    assert VersionOrder(version).startswith(VersionOrder(prefix)) is expected


def test_startswith_as_conda_on_generated_pairs(conda: Conda) -> None:
    rng = random.Random(47)
    versions = sorted({generated_version(rng).strip() for _ in range(3000)})
    valid = [v for v in versions if version_key(v)[0] == 1]
    pairs = [(rng.choice(valid), rng.choice(valid)) for _ in range(20000)]
    pairs += [(a, a[: i + 1]) for a in valid[:500] for i in range(len(a))]
    script = (
        "import json, sys\n"
        "from conda.models.version import VersionOrder as V\n"
        "from conda.exceptions import InvalidVersionSpec\n"
        "out = []\n"
        "for a, b in json.load(sys.stdin):\n"
        "    try:\n"
        "        out.append(V(a).startswith(V(b)))\n"
        "    except InvalidVersionSpec:\n"
        "        out.append(None)\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(conda.python), "-c", script],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = json.loads(result.stdout)
    wrong = []
    for (a, b), expected in zip(pairs, theirs, strict=True):
        if expected is None:
            continue
        if VersionOrder(a).startswith(VersionOrder(b)) is not expected:
            wrong.append((a, b, expected))
    assert sum(e is not None for e in theirs) > 15000
    assert not wrong, wrong[:20]
