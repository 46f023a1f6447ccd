from __future__ import annotations

import pytest
from packaging.tags import Tag
from packaging.version import Version

from packhouse.errors import InvalidUpload
from packhouse.formats.pypi.filenames import parse_dist_filename


@pytest.mark.parametrize(
    ("filename", "name", "version"),
    [
        ("toml-0.10.2.tar.gz", "toml", "0.10.2"),
        ("six-1.16.0.tar.gz", "six", "1.16.0"),
        ("idna-3.7.tar.gz", "idna", "3.7"),
        ("foo_bar-1.0.tar.gz", "foo-bar", "1.0"),
        ("foo_bar-2.0rc1.zip", "foo-bar", "2.0rc1"),
        ("zope_interface-6.0.post1.tar.gz", "zope-interface", "6.0.post1"),
        ("a_b_c-1!2.0.dev3+local.7.tar.gz", "a-b-c", "1!2.0.dev3+local.7"),
    ],
)
def test_sdists_parse(filename: str, name: str, version: str) -> None:
    dist = parse_dist_filename(filename)
    assert (dist.kind, dist.name, dist.version) == ("sdist", name, Version(version))
    assert dist.tags == frozenset()
    assert dist.build == ()
    assert dist.python_tag == "source"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Legacy.Name-1.0.tar.gz", "legacy_name-1.0.tar.gz"),
        ("Foo_Bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("foo.bar-2.0rc1.zip", "foo_bar-2.0rc1.zip"),
        ("zope.interface-6.0.tar.gz", "zope_interface-6.0.tar.gz"),
        ("legacy-name-1.0.tar.gz", "legacy_name-1.0.tar.gz"),
        ("foo__bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"),
        ("demo-1.0RC1.tar.gz", "demo-1.0rc1.tar.gz"),
        ("demo-v1.0.tar.gz", "demo-1.0.tar.gz"),
    ],
)
def test_legacy_sdist_names_are_refused_with_the_pep_625_name(filename: str, expected: str) -> None:
    with pytest.raises(InvalidUpload) as caught:
        parse_dist_filename(filename)
    assert "PEP 625" in str(caught.value)
    assert repr(expected) in str(caught.value)
    # files that exist already (the static indexer) are read as PyPI serves them
    old = parse_dist_filename(filename, legacy_names=True)
    assert (old.kind, old.name) == ("sdist", parse_dist_filename(expected).name)


def test_wheel_parses_with_tags_and_build() -> None:
    dist = parse_dist_filename("six-1.16.0-py2.py3-none-any.whl")
    assert (dist.kind, dist.name, dist.version) == ("wheel", "six", Version("1.16.0"))
    assert dist.tags == {Tag("py2", "none", "any"), Tag("py3", "none", "any")}
    assert dist.python_tag == "py2.py3"
    built = parse_dist_filename("demo-1.0-1abc-cp311-cp311-manylinux_2_17_x86_64.whl")
    assert built.build == (1, "abc")
    assert built.python_tag == "cp311"


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("", "the filename is empty"),
        ("a/demo-1.0.tar.gz", "contains '/'"),
        ("a\\demo-1.0.tar.gz", "contains a backslash"),
        ("demo-1.0.tar.gz\x00.whl", "contains a NUL byte"),
        ("demo-1.0.tar.gz\r", "contains a line break"),
        ("demo-1.0.tar.gz\n", "contains a line break"),
        ("demo\x07-1.0.tar.gz", "contains a control character"),
        ("demo..x-1.0.tar.gz", "contains '..'"),
        (".demo-1.0.tar.gz", "starts with a dot"),
        ("d" * 250 + "-1.0.tar.gz", "at most 255 are allowed"),
    ],
)
def test_unsafe_names_are_refused(filename: str, message: str) -> None:
    with pytest.raises(InvalidUpload) as caught:
        parse_dist_filename(filename)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("demo-1.0-py3.7.egg", "eggs are not accepted"),
        ("demo-1.0.win32.exe", "bdist_wininst installers are not accepted"),
        ("demo-1.0.tar.bz2", "'.tar.bz2' source distributions are not accepted"),
        ("demo-1.0.tgz", "name the file '.tar.gz'"),
        ("demo-1.0.rar", "unknown file extension"),
        ("demo-1.0", "unknown file extension"),
    ],
)
def test_unaccepted_extensions_say_what_is_accepted(filename: str, message: str) -> None:
    with pytest.raises(InvalidUpload) as caught:
        parse_dist_filename(filename)
    assert message in str(caught.value)
    assert "accepted: '.whl' (wheel), '.tar.gz' or '.zip' (source distribution)" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("demo-1.0-py3-none.whl", "invalid wheel filename 'demo-1.0-py3-none.whl'"),
        ("demo-one-py3-none-any.whl", "invalid wheel filename"),
        ("demo-1.0-py3-none-any.WHL", "the extension must be '.whl'"),
        ("demo-1.0.TAR.GZ", "the extension must be '.tar.gz' or '.zip'"),
        ("demo.tar.gz", "expected '{name}-{version}.tar.gz'"),
        ("-1.0.tar.gz", "expected '{name}-{version}.tar.gz'"),
        ("demo-1.0.x.tar.gz", "'1.0.x' is not a valid version"),
        ("demo_-1.0.tar.gz", "'demo_' is not a valid project name"),
        ("dém-1.0.tar.gz", "'dém' is not a valid project name"),
    ],
)
def test_malformed_names_are_refused(filename: str, message: str) -> None:
    with pytest.raises(InvalidUpload) as caught:
        parse_dist_filename(filename)
    assert message in str(caught.value)
