"""Secrets are masked in paths, URLs and free text."""

from __future__ import annotations

from packhouse.auth.redact import redact_path, redact_text, redact_url

SECRET = "ph_" + "A1b2" * 10 + "xyz"
NEW_SECRET = "ph-" + "A1b2" * 10 + "xyz"


def test_tokens_of_both_forms_are_masked_in_free_text_and_words_are_not() -> None:
    text = f"token {NEW_SECRET}, older {SECRET}; url /conda/x/t/{NEW_SECRET}/noarch"
    cleaned = redact_text(text)
    assert NEW_SECRET not in cleaned
    assert SECRET not in cleaned
    assert cleaned == "token ph-***, older ph_***; url /conda/x/t/ph-***/noarch"
    words = "graph-abcdefghijklmnopqrstuvwxyz ph-secret-base-1.0 ph-short"
    assert redact_text(words) == words


def test_url_token_segments_are_masked_only_at_the_start_of_a_path() -> None:
    assert redact_path(f"/t/{SECRET}/conda/main/noarch/repodata.json") == (
        "/t/***/conda/main/noarch/repodata.json"
    )
    assert redact_path("/pypi/main/simple/t/") == "/pypi/main/simple/t/"
    # where conda itself puts the segment; a channel named `t` keeps its subdir
    assert redact_path(f"/conda/t/{NEW_SECRET}/main/noarch/") == "/conda/t/***/main/noarch/"
    assert redact_path("/conda/t/ph-short/main/") == "/conda/t/***/main/"
    assert redact_path("/conda/t/noarch/repodata.json") == "/conda/t/noarch/repodata.json"
    text = redact_text("GET http://h:1/conda/t/ph-short/main/noarch and /conda/t/noarch")
    assert text == "GET http://h:1/conda/t/***/main/noarch and /conda/t/noarch"


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


def test_the_log_filter_masks_a_real_token_and_password_in_messages_and_tracebacks() -> None:
    import base64
    import io
    import logging

    from packhouse.auth.tokens import new_secret
    from packhouse.web.accesslog import RedactSecrets

    token, password = new_secret().secret, "correct-Horse-battery-9"
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.redact-filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("fetching %s", f"https://alice:{password}@example.com/simple/")
        logger.warning('127.0.0.1 "GET /t/%s/conda/main/noarch/repodata.json" 200', token)
        logger.warning("headers: {'authorization': 'Basic %s'}", basic)
        logger.warning("sent Authorization: Bearer %s", token)
        try:
            raise RuntimeError(f"upstream said no to http://__token__:{token}@host/")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert written.count("\n") >= 5  # every record was written
    for secret in (token, token[3:], password, basic):
        assert secret not in written
