"""Upstream files without a sha256: read from both page forms with the md5 they may carry,
and shown on our pages with that md5 or no hash (PEP 503 fragment, PEP 691 `hashes`)."""

from __future__ import annotations

import orjson

from packhouse.formats.pypi.remote import parse_html_page, parse_json_page
from packhouse.formats.pypi.simple import ProjectPage, SimpleFile, project_html, project_json

PAGE = "https://old.example/simple/demo-pkg/"
MD5 = "0123456789abcdef0123456789ABCDEF"
SHA = "e" * 64


def test_html_links_without_a_sha256_are_kept_with_their_md5() -> None:
    body = f"""<html><body>
    <a href="/p/demo_pkg-1.0-py3-none-any.whl">demo_pkg-1.0-py3-none-any.whl</a>
    <a href="/p/demo_pkg-1.1.tar.gz#md5={MD5}">demo_pkg-1.1.tar.gz</a>
    <a href="/p/demo_pkg-1.2.tar.gz#md5=short">demo_pkg-1.2.tar.gz</a>
    <a href="/p/demo_pkg-1.3.tar.gz#sha256={SHA}">demo_pkg-1.3.tar.gz</a>
    <a href="/p/other-1.0.tar.gz">other-1.0.tar.gz</a>
    </body></html>""".encode()
    page = parse_html_page(body, PAGE, "demo-pkg")
    got = {f.filename: (f.sha256, f.md5) for f in page.files}
    assert got == {
        "demo_pkg-1.0-py3-none-any.whl": (None, None),
        "demo_pkg-1.1.tar.gz": (None, MD5.lower()),
        "demo_pkg-1.2.tar.gz": (None, None),  # a malformed md5 is no hash
        "demo_pkg-1.3.tar.gz": (SHA, None),
    }
    assert page.skipped == 1  # the filename checks hold as before
    assert page.files[0].url == "https://old.example/p/demo_pkg-1.0-py3-none-any.whl"


def test_json_files_without_a_sha256_are_kept_with_their_md5() -> None:
    files = [
        {"filename": "demo_pkg-1.0.tar.gz", "url": "/a", "hashes": {}},
        {"filename": "demo_pkg-1.1.tar.gz", "url": "/b", "hashes": {"md5": MD5}},
        {"filename": "demo_pkg-1.2.tar.gz", "url": "/c", "hashes": {"sha256": SHA, "md5": MD5}},
        {"filename": "demo_pkg-1.3.tar.gz", "url": "/d", "hashes": {"sha1": "0" * 40}},
        {"filename": "demo_pkg-1.4.tar.gz", "url": "/e", "hashes": {"sha256": "bad"}},
    ]
    body = orjson.dumps({"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": files})
    page = parse_json_page(body, PAGE, "demo-pkg")
    got = {f.filename: (f.sha256, f.md5) for f in page.files}
    assert got == {
        "demo_pkg-1.0.tar.gz": (None, None),
        "demo_pkg-1.1.tar.gz": (None, MD5.lower()),
        "demo_pkg-1.2.tar.gz": (SHA, None),  # the sha256 is the hash that counts
        "demo_pkg-1.3.tar.gz": (None, None),
    }
    assert page.skipped == 1  # a malformed sha256 is still refused


def shown(md5: str | None) -> SimpleFile:
    return SimpleFile(
        filename="demo_pkg-1.0.tar.gz",
        url="../../../../files/upstream/demo_pkg-1.0.tar.gz",
        sha256=None,
        md5=md5,
        requires_python=None,
        yanked=None,
        metadata_sha256=None,
        size=0,
        upload_time=None,
    )


def test_a_file_without_a_sha256_is_shown_with_its_md5_or_no_hash() -> None:
    for md5, fragment, hashes in (
        (MD5.lower(), f"#md5={MD5.lower()}", {"md5": MD5.lower()}),
        (None, "", {}),
    ):
        page = ProjectPage(name="demo-pkg", files=[shown(md5)], versions=["1.0"], last_serial=0)
        html = project_html(page).decode()
        assert f'href="../../../../files/upstream/demo_pkg-1.0.tar.gz{fragment}"' in html
        assert "sha256" not in html
        (entry,) = orjson.loads(project_json(page))["files"]
        assert entry["hashes"] == hashes  # PEP 691: present even when empty
