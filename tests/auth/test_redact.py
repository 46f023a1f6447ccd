"""Secrets are masked in paths, URLs and free text."""

from __future__ import annotations

from packhouse.auth.redact import redact_path, redact_text, redact_url

SECRET = "ph_" + "A1b2" * 10 + "xyz"


def test_url_token_segments_are_masked_only_at_the_start_of_a_path() -> None:
    assert redact_path(f"/t/{SECRET}/conda/main/noarch/repodata.json") == (
        "/t/***/conda/main/noarch/repodata.json"
    )
    assert redact_path("/pypi/main/simple/t/") == "/pypi/main/simple/t/"


def test_passwords_in_urls_are_masked() -> None:
    assert redact_url("https://bob:hunter2@example.com/simple/") == (
        "https://bob:***@example.com/simple/"
    )
    assert redact_url("https://example.com/simple/") == "https://example.com/simple/"


def test_free_text_loses_tokens_url_passwords_and_authorization_values() -> None:
    text = (
        f"GET http://h:1/t/{SECRET}/conda/x from http://__token__:{SECRET}@h/ "
        "Authorization: Basic YWxpY2U6c2VjcmV0 {'authorization': 'Bearer abc.def'}"
    )
    cleaned = redact_text(text)
    assert SECRET not in cleaned
    assert "YWxpY2U6c2VjcmV0" not in cleaned
    assert "abc.def" not in cleaned
    assert "http://h:1/t/***/conda/x" in cleaned
