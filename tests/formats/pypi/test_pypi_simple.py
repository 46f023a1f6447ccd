from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import orjson
import pytest

from packhouse.errors import InvalidInput
from packhouse.formats.pypi.simple import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    NotAcceptable,
    ProjectIndex,
    ProjectPage,
    SimpleFile,
    index_html,
    index_json,
    negotiate,
    project_html,
    project_json,
    sort_versions,
)

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
FILES = [
    SimpleFile(
        filename="demo-1.0.tar.gz",
        url="https://repo.example/files/aa/demo-1.0.tar.gz",
        sha256="a" * 64,
        requires_python=">=3.8,<4",
        yanked=None,
        metadata_sha256="m" * 64,
        size=1234,
        upload_time=WHEN,
    ),
    SimpleFile(
        filename="demo-1.1-py3-none-any.whl",
        url="https://repo.example/files/bb/demo-1.1-py3-none-any.whl?x=1&y=2",
        sha256="b" * 64,
        requires_python=None,
        yanked="",
        metadata_sha256=None,
        size=99,
        upload_time=None,
        gpg_sig=True,
    ),
    SimpleFile(
        filename="demo-2.0-py3-none-any.whl",
        url="https://repo.example/files/cc/demo-2.0-py3-none-any.whl",
        sha256="c" * 64,
        requires_python=">=3.10",
        yanked='broken <"quoted"> & bad',
        metadata_sha256="n" * 64,
        size=5,
        upload_time=datetime(2024, 1, 1, 12, 0, 0),
    ),
]
PAGE = ProjectPage("demo", FILES, ["1.0", "1.1", "2.0"], last_serial=42)


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}
        self._current: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current = dict(attrs)
            self.anchors.append(self._current)
        elif tag == "meta":
            self.meta = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["text"] = data

    def handle_endtag(self, tag: str) -> None:
        self._current = None


def parse(html: bytes) -> Anchors:
    parser = Anchors()
    parser.feed(html.decode())
    return parser


def test_project_html() -> None:
    html = project_html(PAGE)
    assert html.startswith(b"<!DOCTYPE html>\n")
    assert b'<meta name="pypi:repository-version" content="1.1">' in html
    assert b"<title>Links for demo</title>" in html
    assert b"<!--SERIAL 42-->" in html
    # PEP 503: < and > in data-requires-python are escaped.
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in html
    anchors = parse(html).anchors
    first, second, third = anchors
    assert first["href"] == f"https://repo.example/files/aa/demo-1.0.tar.gz#sha256={'a' * 64}"
    assert first["data-requires-python"] == ">=3.8,<4"
    assert first["data-dist-info-metadata"] == first["data-core-metadata"] == "sha256=" + "m" * 64
    assert "data-yanked" not in first
    assert first["text"] == "demo-1.0.tar.gz"
    assert second["href"] == (
        "https://repo.example/files/bb/demo-1.1-py3-none-any.whl?x=1&y=2#sha256=" + "b" * 64
    )
    assert b"?x=1&amp;y=2#" in html
    assert second["data-yanked"] == ""
    assert second["data-gpg-sig"] == "true"
    assert "data-requires-python" not in second
    assert "data-core-metadata" not in second
    assert third["data-yanked"] == 'broken <"quoted"> & bad'
    assert b'data-yanked="broken &lt;&quot;quoted&quot;&gt; &amp; bad"' in html


def test_project_json() -> None:
    doc = orjson.loads(project_json(PAGE))
    assert doc["meta"] == {"api-version": "1.1", "_last-serial": 42}
    assert doc["name"] == "demo"
    assert doc["versions"] == ["1.0", "1.1", "2.0"]
    first, second, third = doc["files"]
    assert first == {
        "filename": "demo-1.0.tar.gz",
        "url": "https://repo.example/files/aa/demo-1.0.tar.gz",
        "hashes": {"sha256": "a" * 64},
        "requires-python": ">=3.8,<4",
        "yanked": False,
        "core-metadata": {"sha256": "m" * 64},
        "dist-info-metadata": {"sha256": "m" * 64},
        "size": 1234,
        "upload-time": "2024-05-06T07:08:09.123456Z",
    }
    assert second["yanked"] is True
    assert second["core-metadata"] is False
    assert second["dist-info-metadata"] is False
    assert second["gpg-sig"] is True
    assert "upload-time" not in second
    assert "requires-python" not in second
    assert third["yanked"] == 'broken <"quoted"> & bad'
    assert third["upload-time"] == "2024-01-01T12:00:00Z"  # naive is taken as UTC


def test_upload_time_in_another_zone_is_converted_to_utc() -> None:
    local = datetime(2024, 1, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    page = ProjectPage("demo", [SimpleFile("f", "u", "h", None, None, None, 1, local)], [], 1)
    assert orjson.loads(project_json(page))["files"][0]["upload-time"] == "2024-01-01T12:00:00Z"


def test_html_and_json_list_the_same_files() -> None:
    anchors = parse(project_html(PAGE)).anchors
    files = orjson.loads(project_json(PAGE))["files"]
    assert [a["text"] for a in anchors] == [f["filename"] for f in files]
    assert [a["href"] for a in anchors] == [
        f"{f['url']}#sha256={f['hashes']['sha256']}" for f in files
    ]
    assert [a.get("data-requires-python") for a in anchors] == [
        f.get("requires-python") for f in files
    ]


def test_names_are_escaped_in_html() -> None:
    page = ProjectPage("a<b", [], [], 0)
    assert b"Links for a&lt;b" in project_html(page)


def test_index() -> None:
    index = ProjectIndex(["attrs", "zope-interface"], last_serial=7)
    html = index_html(index)
    assert b'<meta name="pypi:repository-version" content="1.1">' in html
    anchors = parse(html).anchors
    assert [(a["href"], a["text"]) for a in anchors] == [
        ("attrs/", "attrs"),
        ("zope-interface/", "zope-interface"),
    ]
    doc = orjson.loads(index_json(index))
    assert doc == {
        "meta": {"api-version": "1.1", "_last-serial": 7},
        "projects": [{"name": "attrs"}, {"name": "zope-interface"}],
    }


def test_sort_versions() -> None:
    assert sort_versions(["1.10", "1.2", "1.2rc1", "2.0.dev1", "weird"]) == [
        "weird",
        "1.2rc1",
        "1.2",
        "1.10",
        "2.0.dev1",
    ]


def test_rendering_5000_files_is_fast() -> None:
    files = [
        SimpleFile(
            f"pkg-{i}.0-py3-none-any.whl",
            f"https://repo.example/files/{i:064d}/pkg-{i}.0-py3-none-any.whl",
            "d" * 64,
            ">=3.8,<4",
            None if i % 7 else "reason",
            "e" * 64,
            100_000,
            WHEN,
        )
        for i in range(5000)
    ]
    page = ProjectPage("pkg", files, [f"{i}.0" for i in range(5000)], 1)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        project_html(page)
        project_json(page)
        best = min(best, time.perf_counter() - start)
    # The target is < 20 ms; the bound is loose so a busy CI machine does not fail it.
    assert best < 0.1


# --- content negotiation ---------------------------------------------------------------------

UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2,"
    " text/html;q=0.01"
)
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        ("text/html", TEXT_HTML),
        ("text/*", TEXT_HTML),
        (BROWSER, TEXT_HTML),
        (UV_ACCEPT, JSON_V1),
        ("application/vnd.pypi.simple.v1+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON_V1),
        # Equal quality between named types: PEP 691 prefers the most expressive, JSON.
        ("text/html, application/vnd.pypi.simple.v1+json", JSON_V1),
        ("application/vnd.pypi.simple.v1+html, text/html", HTML_V1),
        # Quality decides before preference.
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.4", JSON_V1),
        ("text/html;q=0.9, */*", HTML_V1),  # text/html rated below "anything else"
        ("application/vnd.pypi.simple.v1+json;q=0.8, */*", TEXT_HTML),
        # A named type beats a wildcard at equal quality.
        ("application/vnd.pypi.simple.v1+json, */*", JSON_V1),
        ("application/*", HTML_V1),
        # q=0 excludes, even when a wildcard would match.
        ("text/html;q=0, */*", HTML_V1),
        ("text/html;q=0, application/vnd.pypi.simple.v1+html;q=0, */*", JSON_V1),
        ("application/vnd.pypi.simple.v1+json;q=0, */*;q=0.1", TEXT_HTML),
        # Malformed q values drop their entry; other parameters are ignored.
        ("application/vnd.pypi.simple.v1+json;q=2, text/html;q=0.1", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=abc, text/html;q=0.1", TEXT_HTML),
        ("text/html;level=1;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", TEXT_HTML),
        (" application/vnd.pypi.simple.v1+json ; q=1.000 ", JSON_V1),
    ],
)
def test_negotiate(accept: str | None, content_type: str) -> None:
    chosen = negotiate(accept, None)
    assert chosen.content_type == content_type
    assert chosen.kind == ("json" if content_type == JSON_V1 else "html")


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "image/png, text/plain",
        "application/vnd.pypi.simple.v2+json",
        "text/html;q=0",
        "*/*;q=0",
        "garbage",
    ],
)
def test_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        negotiate(accept, None)
    assert isinstance(caught.value, InvalidInput)
    message = str(caught.value)
    assert repr(accept) in message
    assert "this index serves application/vnd.pypi.simple.v1+json" in message
    assert "text/html" in message


@pytest.mark.parametrize(
    ("format_param", "content_type"),
    [
        ("application/vnd.pypi.simple.v1+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("text/html", TEXT_HTML),
    ],
)
def test_format_param_overrides_accept(format_param: str, content_type: str) -> None:
    assert negotiate("application/json", format_param).content_type == content_type
    assert negotiate(UV_ACCEPT, format_param).content_type == content_type


def test_unknown_format_param() -> None:
    with pytest.raises(NotAcceptable) as caught:
        negotiate(UV_ACCEPT, "application/json")
    assert "cannot answer with any of format 'application/json'" in str(caught.value)


def test_empty_format_param_falls_back_to_accept() -> None:
    assert negotiate(UV_ACCEPT, "").content_type == JSON_V1


def test_negotiate_is_pure() -> None:
    assert negotiate(UV_ACCEPT, None) == negotiate(UV_ACCEPT, None)
    assert hash(negotiate(UV_ACCEPT, None)) == hash(negotiate(UV_ACCEPT, None))
