"""Pages joined from per-file parts are the bytes the whole-page serialisers give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from packhouse.formats.pypi import simple

FILES = [
    simple.SimpleFile(
        "a-1.0.tar.gz", "../x/a-1.0.tar.gz", "ab" * 32, ">=3.8", None, None, 10,
        datetime(2024, 1, 1, tzinfo=UTC),
    ),
    simple.SimpleFile(
        "a-ü<1>.whl", "../x/a&.whl", "cd" * 32, None, "bad <reason>", "ef" * 32, 11,
        datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=2))),
    ),
    simple.SimpleFile("b.whl", "u", "cd" * 32, None, "", None, 0, None, gpg_sig=True),
]  # fmt: skip


@pytest.mark.parametrize("files", [FILES, []])
def test_joined_parts_equal_the_whole_page(files: list[simple.SimpleFile]) -> None:
    page = simple.ProjectPage("a-é", files, ["1.0", "ü"], 7)
    html = simple.project_html_joined(page.name, [simple.file_html(f) for f in files], 7)
    assert html == simple.project_html(page)
    json = simple.project_json_joined(
        page.name, [simple.file_json(f) for f in files], page.versions, 7
    )
    assert json == simple.project_json(page)
