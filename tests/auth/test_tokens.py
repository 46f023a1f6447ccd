"""Token secrets, hashes and expiry parsing."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest

from packhouse.auth import tokens
from packhouse.errors import InvalidInput

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_a_new_secret_is_prefixed_random_and_only_its_hash_is_kept() -> None:
    first, second = tokens.new_secret(), tokens.new_secret()
    assert first.secret.startswith("ph-")
    assert len(first.secret) == 3 + 43
    assert first.secret[3:].isascii()
    assert first.secret[3:].isalnum()
    assert tokens.well_formed(first.secret)
    assert first.secret != second.secret
    assert first.sha256 == tokens.hash_secret(first.secret)
    assert first.secret not in first.sha256
    assert first.shown == first.secret[:8]
    assert tokens.same_hash(first.sha256, first.secret)
    assert not tokens.same_hash(first.sha256, second.secret)


def test_a_secret_holds_at_least_256_random_bits() -> None:
    assert 62**tokens.SECRET_CHARS >= 2**256
    seen = "".join(tokens.new_secret().secret[3:] for _ in range(200))
    assert set(seen) == set(string.ascii_letters + string.digits)  # all 62, nothing else


# conda 26.7.1 conda/common/url.py split_anaconda_token, and libmamba's token_regex
CONDA_TOKEN = re.compile(r"/t/([a-zA-Z0-9-]*)")
LIBMAMBA_TOKEN = re.compile(r"/t/([a-zA-Z0-9-_]{0,2}[a-zA-Z0-9-]*)")


@pytest.mark.parametrize("rule", [CONDA_TOKEN, LIBMAMBA_TOKEN], ids=["conda", "libmamba"])
def test_conda_and_mamba_read_a_whole_new_token_from_a_t_segment(rule: re.Pattern[str]) -> None:
    for _ in range(50):
        secret = tokens.new_secret().secret
        found = rule.search(f"http://127.0.0.1:8080/t/{secret}/conda/main/noarch/repodata.json")
        assert found is not None
        assert found.group(1) == secret
    legacy = "ph_" + "A" * 43  # why the form changed: both cut it short
    found = rule.search(f"http://127.0.0.1:8080/t/{legacy}/conda/main")
    assert found is not None
    assert found.group(1) != legacy


def test_tokens_of_the_older_form_stay_well_formed() -> None:
    assert tokens.well_formed("ph_" + "Ab-_" * 10 + "xyz")
    assert tokens.well_formed("ph-" + "Ab1" * 14 + "x")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ph_",
        "ph_short",
        "xx_" + "a" * 43,
        "ph_" + "a" * 42,
        "ph_" + "a" * 42 + "!",
        "ph-",
        "ph-" + "a" * 42,
        "ph-" + "a" * 44,
        "ph-" + "a" * 42 + "_",  # the new form has no underscore or hyphen in its body
        "ph-" + "a" * 42 + "-",
        "ph_" + "a" * 43 + "\n",
    ],
)
def test_malformed_secrets_are_recognised(text: str) -> None:
    assert not tokens.well_formed(text)


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("ph_anything", True),  # always a token, as before
        ("ph-" + "a" * 43, True),
        ("ph-my-old-password", False),  # `ph-` passwords were allowed before the new form
        ("hunter2", False),
    ],
)
def test_which_basic_passwords_are_taken_for_tokens(text: str, claims: bool) -> None:
    assert tokens.is_token_text(text) is claims


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("90m", NOW + timedelta(minutes=90)),
        ("2w", NOW + timedelta(weeks=2)),
        (" 7D ", NOW + timedelta(days=7)),
        ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),  # valid through that day
        ("2026-07-01T10:00:00+02:00", datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
        ("2026-07-01T10:00:00", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_expiry_forms(text: str, expected: datetime) -> None:
    assert tokens.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "use a duration such as 30d"),
        ("30x", "use a duration such as 30d"),
        ("0d", "positive"),
        ("2020-01-01", "in the past"),
        ("999999999d", "too far ahead"),
        ("999999999999w", "too far ahead"),
        ("3651d", "too far ahead: .* at most 3650 days ahead"),
        ("9" * 13 + "d", "cannot read"),
        ("9" * 5000 + "d", "cannot read"),
        ("9999-12-31", "cannot read|too far ahead"),
        ("2999-01-01T00:00:00+00:00", "too far ahead"),
    ],
)
def test_bad_expiries_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tokens.parse_expiry(text, NOW)


def test_expiry_is_capped_at_ten_years() -> None:
    assert tokens.parse_expiry("3650d", NOW) == NOW + tokens.MAX_LIFETIME
    tokens.check_expiry(NOW + tokens.MAX_LIFETIME, NOW)
    with pytest.raises(InvalidInput, match="too far ahead"):
        tokens.check_expiry(NOW + tokens.MAX_LIFETIME + timedelta(seconds=1), NOW)
