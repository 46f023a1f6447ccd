"""The address of the client a request comes from, for the failed-login limit and the log.

Behind a reverse proxy or load balancer every request comes from the proxy. When the peer
is one of the `trusted_proxies` (addresses or CIDRs), the client is the nearest address in
`X-Forwarded-For` that is not itself a trusted proxy, read from the right: those entries
were added by the proxies we trust, the ones further left by whoever sent the request, who
can write anything there. A peer that is not trusted is the client, whatever it sends.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(text, strict=False) for text in trusted)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(
    peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]
) -> str | None:
    networks = _networks(trusted)
    if peer is None or not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # not an address: a proxy we trust would not have written it
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_address(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    trusted = request.app.state.services.ctx.settings.trusted_proxies
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.get("x-forwarded-for"), tuple(trusted))
