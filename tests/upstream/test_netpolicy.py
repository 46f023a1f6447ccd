"""The address and URL checks as units: no connection is opened here."""

from __future__ import annotations

import ipaddress

import pytest

from packhouse.errors import UpstreamError, UpstreamRefused
from packhouse.upstream import netpolicy
from packhouse.upstream.netpolicy import NetworkPolicy, display_url

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not a bind)
    "0.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # the cloud metadata address
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.255",
    "192.0.0.170",
    "192.0.2.1",
    "198.18.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "2001:db8::1",
    "100::1",
    "64:ff9b:1::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "4000::1",  # reserved
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "151.101.0.223",
    "100.63.255.255",  # just below carrier-grade NAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "2606:4700:4700::1111",
    "2a04:4e42::223",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_by_default(address: str) -> None:
    policy = NetworkPolicy([])
    assert policy.refusal(address) is not None
    with pytest.raises(UpstreamRefused, match="upstream_allowed_networks"):
        policy.check_address(address)
    with pytest.raises(UpstreamRefused):
        policy.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_allowed(address: str) -> None:
    policy = NetworkPolicy([])
    assert policy.refusal(address) is None
    policy.check_address(address)


def test_reasons_name_the_range() -> None:
    policy = NetworkPolicy([])
    assert "link-local" in (policy.refusal("169.254.169.254") or "")
    assert "metadata" in (policy.refusal("169.254.169.254") or "")
    reason = policy.refusal("::ffff:169.254.169.254") or ""
    assert "IPv4-mapped" in reason
    assert "169.254.169.254" in reason
    assert "6to4" in (policy.refusal("2002:7f00:1::1") or "")
    assert "NAT64" in (policy.refusal("64:ff9b::7f00:1") or "")
    assert "loopback" in (policy.refusal("::1") or "")
    assert "private" in (policy.refusal("fd00::1") or "")
    assert "carrier-grade" in (policy.refusal("100.64.0.1") or "")


def test_not_an_address() -> None:
    assert NetworkPolicy([]).refusal("example.org") is not None
    with pytest.raises(UpstreamRefused):
        NetworkPolicy([]).check_address("127.1")


def test_allowed_networks_open_exactly_their_range() -> None:
    policy = NetworkPolicy(["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"])
    for ok in ("10.0.0.1", "10.255.255.255", "127.0.0.1", "fd12::1", "::ffff:10.1.2.3"):
        policy.check_address(ok)
    # IPv6 forms carrying an allowed IPv4 address are that address
    policy.check_address("::ffff:127.0.0.1")
    policy.check_address("2002:a01:203::1")  # 6to4 of 10.1.2.3
    for refused in (
        "127.0.0.2",
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "192.168.0.1",
        "fc00::1",
        "::1",
    ):
        with pytest.raises(UpstreamRefused):
            policy.check_address(refused)


def test_allowing_the_metadata_address_needs_it_listed() -> None:
    NetworkPolicy(["169.254.169.254/32"]).check_address("169.254.169.254")
    with pytest.raises(UpstreamRefused):
        NetworkPolicy(["169.254.169.254/32"]).check_address("169.254.169.253")


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-a-network", "10.0.0.0/33", ""])
def test_bad_allowed_networks_are_refused_at_construction(bad: str) -> None:
    with pytest.raises(ValueError, match="upstream_allowed_networks"):
        NetworkPolicy([bad])


# -- names that resolve to several addresses (the resolver is replaced: no DNS) ------------


def fake_resolver(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]
) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[netpolicy.IPAddress]:
        calls.append((host, port))
        if host not in answers:
            raise OSError(f"cannot resolve {host!r}: no such name")
        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(netpolicy, "resolve", resolve)
    return calls


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_resolver(
        monkeypatch,
        {
            "public.test": ["151.101.0.223", "2a04:4e42::223"],
            "mixed.test": ["151.101.0.223", "10.0.0.5"],
            "rebind.test": ["169.254.169.254"],
            "mapped.test": ["2a04:4e42::223", "::ffff:127.0.0.1"],
            "empty.test": [],
        },
    )
    policy = NetworkPolicy([])
    assert [str(a) for a in policy.addresses_for("public.test", 443)] == [
        "151.101.0.223",
        "2a04:4e42::223",
    ]
    with pytest.raises(UpstreamRefused, match=r"mixed\.test resolves to 10\.0\.0\.5 \(one of 2"):
        policy.addresses_for("mixed.test", 443)
    with pytest.raises(UpstreamRefused, match="link-local"):
        policy.addresses_for("rebind.test", 80)
    with pytest.raises(UpstreamRefused, match="IPv4-mapped"):
        policy.addresses_for("mapped.test", 80)
    with pytest.raises(UpstreamError, match="no address"):
        policy.addresses_for("empty.test", 80)
    with pytest.raises(UpstreamError, match="cannot resolve") as info:
        policy.addresses_for("missing.test", 80)
    assert not isinstance(info.value, UpstreamRefused)
    assert calls[0] == ("public.test", 443)
    # an allowed network opens the mixed name
    assert len(NetworkPolicy(["10.0.0.0/24"]).addresses_for("mixed.test", 443)) == 2


def test_literal_addresses_resolve_to_themselves() -> None:
    # getaddrinfo on an IP literal does no DNS lookup
    assert [str(a) for a in netpolicy.resolve("127.0.0.1", 80)] == ["127.0.0.1"]
    assert [str(a) for a in netpolicy.resolve("::1", 80)] == ["::1"]
    with pytest.raises(UpstreamRefused, match=r"address 127\.0\.0\.1 is loopback"):
        NetworkPolicy([]).addresses_for("127.0.0.1", 80)


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.org/simple/",
        "http://mirror.example:8080/simple/demo/",
        "HTTPS://PYPI.ORG/simple/",
        "https://[2a04:4e42::223]/simple/",
        "http://127.0.0.1:9/",  # the address check comes at connect time
        "https://conda.example/t/ph_abcdefgh123/main/",
    ],
)
def test_check_url_accepts_http_and_https(url: str) -> None:
    NetworkPolicy([]).check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme file"),
        ("FILE:///etc/passwd", "scheme file"),
        ("ftp://ftp.example/pub/", "scheme ftp"),
        ("data:text/plain,hello", "scheme data"),
        ("gopher://example:70/", "scheme gopher"),
        ("javascript:alert(1)", "scheme javascript"),
        ("//pypi.org/simple/", "no scheme"),
        ("pypi.org/simple/", "no scheme"),
        ("http:///simple/", "no host"),
        ("https://", "no host"),
        ("http://user:secret@pypi.org/simple/", "user info"),
        ("http://pypi.org@169.254.169.254/", "user info"),
        ("http://pypi.org\\@169.254.169.254/", "backslash"),
        ("http://pypi.org /simple/", "whitespace"),
        ("http://pypi.org/\r\nHost: evil/", "control"),
        ("http://pypi.org:99999/", "not a valid URL"),
        ("http://pypi.org:0/", "port 0"),
    ],
)
def test_check_url_refuses(url: str, why: str) -> None:
    with pytest.raises(UpstreamRefused, match=why) as info:
        NetworkPolicy([]).check_url(url)
    assert "secret" not in str(info.value)


def test_fragment_with_at_sign_is_not_user_info() -> None:
    # urlsplit keeps "#@pypi.org/" out of the netloc: the host is 169.254.169.254, which the
    # address check then refuses; the URL itself is well-formed.
    NetworkPolicy([]).check_url("http://169.254.169.254/#@pypi.org/")


def test_display_url_removes_credentials() -> None:
    shown = display_url("https://alice:s3cret@mirror.example/t/ph_abcdefghijk/main/?x=1")
    assert "s3cret" not in shown
    assert "alice" not in shown
    assert "ph_abcdefghijk" not in shown
    assert shown.startswith("https://mirror.example/t/")
