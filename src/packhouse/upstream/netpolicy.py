"""Which upstream URLs and addresses Packhouse may connect to (server-side request forgery).

An upstream URL is operator input, and every URL an upstream sends back (redirects, file
links) is input from a remote server. Before a connection is made:

- the URL must be `http` or `https` with a host and no user info (`check_url`);
- every address the host resolves to must be publicly routable, or inside one of the
  operator's `allowed_networks` (`check_address`, `addresses_for`). One refused address
  refuses the connection, so a name that resolves to a public and an internal address cannot
  be used to reach the internal one.

Refused unless allowed: loopback, private ranges (RFC 1918, fc00::/7), link-local (which holds
the cloud metadata address 169.254.169.254) and site-local, carrier-grade NAT (100.64.0.0/10),
unspecified, broadcast, multicast, reserved and documentation ranges (the IANA
special-purpose registries), and IPv6 forms that carry one of those IPv4 addresses: mapped
(::ffff:a.b.c.d), compatible (::a.b.c.d), 6to4 (2002::/16), NAT64 (64:ff9b::/96) and Teredo.

The HTTP client (`upstream/http.py`) resolves a name once, checks every address with
`addresses_for`, and connects only to those addresses, so DNS cannot answer differently
between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from packhouse.auth.redact import redact_url
from packhouse.errors import UpstreamError, UpstreamRefused

__all__ = ["IPAddress", "NetworkPolicy", "display_url", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IPv4 ranges that are not globally reachable (IANA IPv4 special-purpose address registry).
_REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "'this network' (unspecified)"),
    (_V4("10.0.0.0/8"), "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local (holds the cloud metadata address)"),
    (_V4("172.16.0.0/12"), "private (RFC 1918)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private (RFC 1918)"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved (includes broadcast)"),
)

# IPv6 ranges refused outright (IANA IPv6 special-purpose address registry). The forms that
# embed an IPv4 address (::ffff:0:0/96, ::/96, 64:ff9b::/96, 2002::/16, 2001::/32) are
# judged by the address they carry, before this table.
_REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "ORCHID (deprecated)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("fc00::/7"), "private (unique local, RFC 4193)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)
_COMPATIBLE = _V6("::/96")  # IPv4-compatible (deprecated, RFC 4291)
_NAT64 = _V6("64:ff9b::/96")  # RFC 6052 well-known prefix


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order.

    A module function so tests can replace it; an IP literal resolves to itself (no DNS).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    out: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in out:
            out.append(address)
    return out


def display_url(url: object) -> str:
    """`url` fit for messages and logs: user info dropped, tokens in the path masked."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact_url(text)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        text = urlunsplit(parts)
    return redact_url(text)


def _parse_networks(allowed: Iterable[str]) -> tuple[_Network, ...]:
    networks: list[_Network] = []
    for text in allowed:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as exc:
            raise ValueError(
                f"upstream_allowed_networks: {text!r} is not a network in CIDR form "
                f"(for example 10.0.0.0/8 or fd00::/8): {exc}"
            ) from None
    return tuple(networks)


class NetworkPolicy:
    """The upstream URLs and addresses allowed; everything public plus `allowed_networks`."""

    def __init__(self, allowed_networks: Sequence[str] = ()) -> None:
        self.allowed_networks = _parse_networks(allowed_networks)

    def __repr__(self) -> str:
        return f"NetworkPolicy({[str(n) for n in self.allowed_networks]!r})"

    # -- URLs -----------------------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """Refuse (UpstreamRefused) a URL that is not http(s) with a host and no user info."""
        shown = display_url(url)
        if any(c.isspace() or ord(c) < 0x20 or c in "\\\x7f" for c in url):
            raise UpstreamRefused(
                f"upstream URL {shown!r} contains whitespace, control characters or a "
                "backslash; give a plain http(s) URL"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UpstreamRefused(f"upstream URL {shown!r} is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            what = f"scheme {scheme}:" if scheme else "no scheme"
            raise UpstreamRefused(
                f"upstream URL {shown!r} has {what}; only http and https upstreams are allowed"
            )
        if "@" in parts.netloc:
            raise UpstreamRefused(
                f"upstream URL {shown!r} has user info; give the credentials as the "
                "repository's upstream user and password, not in the URL"
            )
        if not parts.hostname:
            raise UpstreamRefused(f"upstream URL {shown!r} names no host")
        if port == 0:
            raise UpstreamRefused(f"upstream URL {shown!r} names port 0")

    # -- addresses ------------------------------------------------------------------------

    def is_allowed_network(self, address: IPAddress) -> bool:
        return any(address in n for n in self.allowed_networks if n.version == address.version)

    def refusal(self, address: IPAddress | str) -> str | None:
        """Why connecting to `address` is refused, or None when it is allowed."""
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return f"{address!r} is not an IP address"
        if self.is_allowed_network(address):
            return None
        if isinstance(address, ipaddress.IPv4Address):
            return _refusal_v4(address, self)
        return _refusal_v6(address, self)

    def numeric_host_refusal(self, host: str) -> str | None:
        """Why an upstream whose host is written as an address, in any form the resolver
        takes for one (`10.1.2.3`, `0x7f000001`, `::ffff:169.254.169.254`), is refused; None
        for an allowed address or for a name (names are checked when they are resolved,
        with every address they resolve to). Asks no DNS server."""
        try:
            infos = socket.getaddrinfo(
                host, None, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            return None
        address = ipaddress.ip_address(str(infos[0][4][0]).partition("%")[0])
        reason = self.refusal(address)
        return None if reason is None else f"{address} is {reason}"

    def check_address(self, address: IPAddress | str) -> None:
        """Refuse (UpstreamRefused) an address that is not public and not allowed."""
        reason = self.refusal(address)
        if reason is not None:
            raise UpstreamRefused(
                f"address {address} is {reason}; upstreams there are refused unless the "
                "setting upstream_allowed_networks lists its network"
            )

    def addresses_for(self, host: str, port: int) -> list[IPAddress]:
        """Resolve `host` once and check every address; one refused address refuses all
        (UpstreamRefused). A name that does not resolve raises UpstreamError."""
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise UpstreamError(f"{exc}") from None
        if not addresses:
            raise UpstreamError(f"{host!r} resolves to no address")
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                also = f" (one of {len(addresses)} addresses)" if len(addresses) > 1 else ""
                what = (
                    f"address {address}"
                    if host.strip("[]") == str(address)
                    else f"{host} resolves to {address}{also}, which"
                )
                raise UpstreamRefused(
                    f"{what} is {reason}; upstreams there are refused unless the setting "
                    "upstream_allowed_networks lists its network"
                )
        return addresses


def _refusal_v4(address: ipaddress.IPv4Address, policy: NetworkPolicy) -> str | None:
    if policy.is_allowed_network(address):
        return None
    for network, reason in _REFUSED_V4:
        if address in network:
            return reason
    return None


def _embedded(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, named by the form that carries them."""
    if address.ipv4_mapped is not None:
        return [("IPv4-mapped", address.ipv4_mapped)]
    if address in _COMPATIBLE and int(address) > 1:
        return [("IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))]
    if address in _NAT64:
        return [("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))]
    if address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def _refusal_v6(address: ipaddress.IPv6Address, policy: NetworkPolicy) -> str | None:
    embedded = _embedded(address)
    for form, v4 in embedded:
        reason = _refusal_v4(v4, policy)
        if reason is not None:
            return f"an {form} IPv6 form of {v4}, which is {reason}"
    if embedded:
        return None
    for network, reason in _REFUSED_V6:
        if address in network:
            return reason
    if address.is_reserved:  # unassigned IETF blocks, e.g. 0100::/8, 4000::/3
        return "reserved"
    return None
