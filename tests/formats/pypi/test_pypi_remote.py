"""Reading upstream project pages (PEP 691 JSON, PEP 503 HTML) into RemoteFiles."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from packhouse.errors import UpstreamError
from packhouse.formats.pypi.remote import (
    ACCEPT,
    RemoteFile,
    accept_header,
    check_filename,
    parse_html_page,
    parse_json_page,
    parse_project_page,
)
from packhouse.formats.pypi.simple import (
    JSON_V1,
    ProjectPage,
    SimpleFile,
    negotiate,
    project_html,
    project_json,
)
from packhouse.types import canonicalize_name

PAGE = "https://upstream.example/simple/demo-pkg/"
SHA_A = "a" * 64
SHA_B = "B" * 64
SHA_M = "c" * 64

# As pypi.org writes it (trimmed), plus the bad entries an upstream might send.
HTML_PAGE = f"""<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.1">
    <title>Links for demo-pkg</title>
  </head>
  <body>
    <h1>Links for demo-pkg</h1>
<a href="https://files.example/packages/aa/demo_pkg-1.0.tar.gz#sha256={SHA_A}" >
  demo_pkg-1.0.tar.gz</a><br />
<a href="../../files/demo_pkg-1.1-py3-none-any.whl#sha256={SHA_B}"
   data-requires-python="&gt;=3.8,&lt;4"
   data-dist-info-metadata="sha256={SHA_M}"
   data-core-metadata="sha256={SHA_M}">demo_pkg-1.1-py3-none-any.whl</a><br />
<a href="/files/Demo.Pkg-2.0.zip" data-yanked="broken &amp; bad">Demo.Pkg-2.0.zip</a><br />
<a href="demo_pkg-2.1-py3-none-any.whl#md5=0123" data-yanked data-core-metadata="true"
  >demo_pkg-2.1-py3-none-any.whl</a><br />
<a href="/x/other-1.0.tar.gz">other-1.0.tar.gz</a>
<a href="/x/evil.whl">../../evil-1.0-py3-none-any.whl</a>
<a href="file:///etc/passwd">demo_pkg-3.0.tar.gz</a>
<a href="javascript:alert(1)">demo_pkg-3.1.tar.gz</a>
<a href="/x/demo_pkg-1.0.exe">demo_pkg-1.0.exe</a>
<a href="/x/demo_pkg-9.0.tar.gz#sha256=nothex">demo_pkg-9.0.tar.gz</a>
<a href="/x/demo_pkg-9.1-py3-none-any.whl" data-core-metadata="md5=abc"
  >demo_pkg-9.1-py3-none-any.whl</a>
<a href="/x/demo_pkg-9.2.tar.gz"></a>
<a>demo_pkg-9.3.tar.gz</a>
  </body>
</html>
<!--SERIAL 1234-->
""".encode()


def test_html_page() -> None:
    page = parse_html_page(HTML_PAGE, PAGE, "Demo_Pkg")
    assert page.name == "demo-pkg"
    assert page.versions is None
    by_name = {f.filename: f for f in page.files}
    assert list(by_name) == [
        "demo_pkg-1.0.tar.gz",
        "demo_pkg-1.1-py3-none-any.whl",
        "Demo.Pkg-2.0.zip",
        "demo_pkg-2.1-py3-none-any.whl",
        "demo_pkg-9.1-py3-none-any.whl",
        "demo_pkg-9.2.tar.gz",  # no anchor text: the URL's last segment
    ]
    assert by_name["demo_pkg-1.0.tar.gz"] == RemoteFile(
        filename="demo_pkg-1.0.tar.gz",
        url="https://files.example/packages/aa/demo_pkg-1.0.tar.gz",
        sha256=SHA_A,
        requires_python=None,
        yanked=None,
        upload_time=None,
        size=None,
        core_metadata=False,
    )
    wheel = by_name["demo_pkg-1.1-py3-none-any.whl"]
    assert wheel.url == "https://upstream.example/files/demo_pkg-1.1-py3-none-any.whl"
    assert wheel.sha256 == SHA_B.lower()
    assert wheel.requires_python == ">=3.8,<4"  # &gt; and &lt; unescaped
    assert wheel.core_metadata == SHA_M
    zip_ = by_name["Demo.Pkg-2.0.zip"]
    assert zip_.url == "https://upstream.example/files/Demo.Pkg-2.0.zip"
    assert zip_.yanked == "broken & bad"
    assert zip_.sha256 is None
    other = by_name["demo_pkg-2.1-py3-none-any.whl"]
    assert other.url == PAGE + "demo_pkg-2.1-py3-none-any.whl"  # fragment removed
    assert other.sha256 is None  # md5 is ignored
    assert other.yanked == ""  # PEP 592: yanked without a reason
    assert other.core_metadata is True
    assert by_name["demo_pkg-9.1-py3-none-any.whl"].core_metadata is True  # served, no sha256
    # other project, path in the name, non-http links, .exe, a bad sha256, no href
    assert page.skipped == 7
    assert len(page.problems) == 7
    assert any("other-1.0.tar.gz" in p for p in page.problems)
    assert any("path" in p for p in page.problems)


def test_html_base_href_and_charset() -> None:
    body = (
        '<html><head><base href="https://mirror.example/pkgs/"></head><body>'
        '<a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a></body></html>'
    ).encode("latin-1")
    page = parse_project_page(body, "text/html; charset=ISO-8859-1", PAGE, "demo")
    assert page.files[0].url == "https://mirror.example/pkgs/demo-1.0.tar.gz"


def test_html_major_version_2_is_refused() -> None:
    body = b'<meta name="pypi:repository-version" content="2.0"><a href="x-1.0.tar.gz">x</a>'
    with pytest.raises(UpstreamError, match=r"version '2\.0'"):
        parse_html_page(body, PAGE, "x")


JSON_PAGE = {
    "meta": {"api-version": "1.1", "_last-serial": 987},
    "name": "demo-pkg",
    "versions": ["1.0", "1.1", "2.0"],
    "files": [
        {
            "filename": "demo_pkg-1.0.tar.gz",
            "url": "https://files.example/packages/aa/demo_pkg-1.0.tar.gz#sha256=ignored",
            "hashes": {"sha256": SHA_A, "md5": "0" * 32},
            "requires-python": ">=3.8",
            "yanked": False,
            "size": 1234,
            "upload-time": "2024-05-06T07:08:09.123456Z",
        },
        {
            "filename": "demo_pkg-1.1-py3-none-any.whl",
            "url": "../../files/demo_pkg-1.1-py3-none-any.whl",
            "hashes": {"sha256": SHA_B},
            "core-metadata": {"sha256": SHA_M},
            "dist-info-metadata": {"sha256": "d" * 64},
            "yanked": "bad build",
            "upload-time": "2024-05-06T09:08:09+02:00",
        },
        {
            "filename": "demo_pkg-2.0-py3-none-any.whl",
            "url": "demo_pkg-2.0-py3-none-any.whl",
            "hashes": {"blake2b_256": "e" * 64},
            "dist-info-metadata": True,
            "yanked": True,
            "size": True,
            "upload-time": "not a time",
        },
        {"filename": "other-1.0.tar.gz", "url": "/x/other-1.0.tar.gz", "hashes": {}},
        {"filename": "demo_pkg-1.0.tar.gz/../../x", "url": "/x", "hashes": {}},
        {"filename": "demo_pkg-3.0.tar.gz", "url": "file:///etc/passwd", "hashes": {}},
        {"filename": "demo_pkg-3.1.tar.gz", "url": "/x", "hashes": {"sha256": "short"}},
        {"filename": 5, "url": "/x"},
        "not an object",
        {"filename": "demo_pkg-" + "1" * 300 + ".tar.gz", "url": "/x", "hashes": {}},
    ],
}


def test_json_page() -> None:
    page = parse_json_page(orjson.dumps(JSON_PAGE), PAGE, "demo.pkg")
    assert page.name == "demo-pkg"
    assert page.versions == ("1.0", "1.1", "2.0")
    assert page.last_serial == 987
    first, second, third = page.files
    assert first == RemoteFile(
        filename="demo_pkg-1.0.tar.gz",
        url="https://files.example/packages/aa/demo_pkg-1.0.tar.gz",
        sha256=SHA_A,
        requires_python=">=3.8",
        yanked=None,
        upload_time=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        size=1234,
        core_metadata=False,
    )
    assert second.url == "https://upstream.example/files/demo_pkg-1.1-py3-none-any.whl"
    assert second.sha256 == SHA_B.lower()
    assert second.core_metadata == SHA_M  # PEP 714 `core-metadata` wins
    assert second.yanked == "bad build"
    assert second.upload_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert second.size is None
    assert third.url == PAGE + "demo_pkg-2.0-py3-none-any.whl"
    assert third.sha256 is None
    assert third.core_metadata is True
    assert third.yanked == ""
    assert third.size is None  # a boolean is not a size
    assert third.upload_time is None
    assert page.skipped == 7


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"meta": {"api-version": "2.0"}, "files": []}', "version '2.0'"),
    ],
)
def test_json_pages_that_cannot_be_read(body: bytes, why: str) -> None:
    with pytest.raises(UpstreamError, match=why):
        parse_json_page(body, PAGE, "demo")


def test_dispatch_on_content_type() -> None:
    as_json = orjson.dumps(JSON_PAGE)
    for media in (JSON_V1, "application/vnd.pypi.simple.latest+json", "application/json"):
        assert len(parse_project_page(as_json, media, PAGE, "demo-pkg").files) == 3
    for media in ("text/html", "application/vnd.pypi.simple.v1+html", "TEXT/HTML; charset=utf-8"):
        assert len(parse_project_page(HTML_PAGE, media, PAGE, "demo-pkg").files) == 6
    with pytest.raises(UpstreamError, match="not a Simple API content type"):
        parse_project_page(as_json, "application/vnd.pypi.simple.v2+json", PAGE, "demo-pkg")
    with pytest.raises(UpstreamError, match="image/png"):
        parse_project_page(b"", "image/png", PAGE, "demo-pkg")


def test_accept_header_prefers_json_and_our_server_agrees() -> None:
    assert accept_header() == ACCEPT
    assert ACCEPT == (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
        "text/html;q=0.01"
    )
    assert negotiate(ACCEPT).kind == "json"
    assert negotiate(ACCEPT.split(", ", 1)[1]).kind == "html"


@pytest.mark.parametrize("render", [project_html, project_json])
def test_reads_back_what_packhouse_serves(render: object) -> None:
    """A Packhouse upstream (our own serialisers) reads back into the same files."""
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    files = [
        SimpleFile(
            filename="demo-1.0-py3-none-any.whl",
            url="/files/" + SHA_A + "/demo-1.0-py3-none-any.whl",
            sha256=SHA_A,
            requires_python="<4,>=3.9",
            yanked="why",
            metadata_sha256=SHA_M,
            size=10,
            upload_time=when,
        ),
        SimpleFile(
            filename="demo-1.0.tar.gz",
            url="/files/" + SHA_B.lower() + "/demo-1.0.tar.gz",
            sha256=SHA_B.lower(),
            requires_python=None,
            yanked=None,
            metadata_sha256=None,
            size=20,
            upload_time=when,
        ),
    ]
    body = render(ProjectPage("demo", files, ["1.0"], 5))  # type: ignore[operator]
    media = "text/html" if render is project_html else JSON_V1
    page = parse_project_page(body, media, "http://127.0.0.1:8000/pypi/main/simple/demo/", "demo")
    assert page.skipped == 0
    for got, want in zip(page.files, files, strict=True):
        assert got.filename == want.filename
        assert got.url == "http://127.0.0.1:8000" + want.url
        assert got.sha256 == want.sha256
        assert got.requires_python == want.requires_python
        assert got.yanked == want.yanked
        assert got.core_metadata == (want.metadata_sha256 or False)
        if render is project_json:
            assert (got.size, got.upload_time) == (want.size, want.upload_time)


@pytest.mark.parametrize(
    ("filename", "ok"),
    [
        ("demo-1.0.tar.gz", True),
        ("Demo_-1.0.zip", False),  # "Demo_" canonicalises to "demo-"
        ("DEMO-1.0rc1.tar.gz", True),
        ("demo-1.0-py2.py3-none-any.whl", True),
        ("demo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl", True),
        ("demo-legacy-version-r5.tar.gz", True),  # pip's rule: a dash after the name
        ("demo.tar.gz", False),
        ("demo-.tar.gz", False),
        ("demonic-1.0.tar.gz", False),
        ("demo-1.0.tar.bz2", False),
        ("demo-1.0.egg", False),
        ("demo-1.0-py3-none-any.whl.metadata", False),
        ("demo-1.0.whl", False),
        ("other-1.0-py3-none-any.whl", False),
        ("demo-1.0-py3-none-any.whl\n", False),
        ("sub/demo-1.0.tar.gz", False),
        ("sub\\demo-1.0.tar.gz", False),
        ("demo-1..0.tar.gz", False),
        (".demo-1.0.tar.gz", False),
        ("", False),
        ("demo-" + "1" * 260 + ".tar.gz", False),
    ],
)
def test_check_filename(filename: str, ok: bool) -> None:
    assert (check_filename(filename, canonicalize_name("demo")) is None) is ok
