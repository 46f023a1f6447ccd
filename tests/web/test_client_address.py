"""Which address a request comes from, behind trusted proxies or not."""

from __future__ import annotations

import pytest

from packhouse.web.client import forwarded_client

TRUSTED = ("10.0.0.0/8", "192.0.2.1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.1", "203.0.113.5", "198.51.100.1"),  # not a trusted peer: ignored
        ("10.1.2.3", None, "10.1.2.3"),  # trusted, but said nothing
        ("10.1.2.3", "203.0.113.5", "203.0.113.5"),
        ("10.1.2.3", "1.1.1.1, 203.0.113.5", "203.0.113.5"),  # the sender wrote 1.1.1.1
        ("10.1.2.3", "203.0.113.5, 192.0.2.1, 10.9.9.9", "203.0.113.5"),  # a chain of ours
        ("10.1.2.3", "10.4.4.4, 10.5.5.5", "10.4.4.4"),  # all ours: the first
        ("10.1.2.3", "203.0.113.5, not-an-ip", "10.1.2.3"),  # garbage: trust nothing
        ("192.0.2.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_forwarded_client(peer: str, forwarded: str | None, client: str) -> None:
    assert forwarded_client(peer, forwarded, TRUSTED) == client


def test_no_trusted_proxies_means_the_peer() -> None:
    assert forwarded_client("10.1.2.3", "203.0.113.5", ()) == "10.1.2.3"
