"""
Who a request comes from, as an address: the one module that says so, for
the password throttle (throttle.py) and vmpooler 3.x's request limits
(ratelimit.py) alike.

Note [Client addresses]: a request's client is the peer of its
connection, unless that peer is a *trusted proxy* (``:config:
trusted_proxies``: addresses and networks, and ``unix`` for the peer of
the UNIX socket the daemon listens on).  Then, and only then,
``X-Forwarded-For`` is read: every such header, joined, from the right;
each address that is itself a trusted proxy is passed over, and the first
that is not is the client.  When every one is trusted, the leftmost is the
client; when there is no header, the proxy itself is.  An entry that is not
an address (a proxy that wrote something else, or a client's own header
that a proxy passed on unchanged) ends the walk: the last trusted hop
counts as the client, so that a made-up entry never buys a fresh address.
Nothing else a client sends (``X-Real-IP``, ``Forwarded``, a header from an
untrusted peer) is believed.

An address is then counted as its *group*: an IPv4 address as itself, an
IPv6 address as its /64 (one site is given a /64 and may use any address
in it), an IPv4-mapped IPv6 address as the IPv4 address.  A UNIX peer
that is not trusted is the one group ``unix``: behind a proxy that the
configuration does not name, every client is one client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.iweb import IRequest

from ..config import Config

UNIX = "unix"  # a UNIX socket's peer, in trusted_proxies and as a group
IPV6_GROUP = 64  # the prefix an IPv6 client is counted by

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TrustedProxies:
    """The peers whose ``X-Forwarded-For`` is believed (Note [Client addresses])."""

    networks: tuple[Network, ...] = ()
    unix: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From ``:config: trusted_proxies`` (checked at start-up:
        config/values.py ``trusted_proxy``)."""
        listed = list(entries)
        return cls(tuple(ipaddress.ip_network(e, strict=False) for e in listed if e != UNIX),
                     UNIX in listed)

    def trusts(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def parse_address(text: str) -> Address | None:
    """``text`` as an address (``[v6]`` brackets, a zone, an IPv4-mapped form
    unwrapped), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def group(address: Address) -> str:
    """The group an address is counted by: IPv4 itself, IPv6 its /64."""
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, IPV6_GROUP), strict=False))


def client_group(peer: object, forwarded: Sequence[bytes], proxies: TrustedProxies) -> str:
    """The group of the client of a connection from ``peer`` that sent the
    ``X-Forwarded-For`` headers ``forwarded`` (Note [Client addresses])."""
    if isinstance(peer, UNIXAddress):
        if not proxies.unix:
            return UNIX
        hop: Address | None = None
    elif isinstance(peer, (IPv4Address, IPv6Address)):
        address = parse_address(peer.host)
        if address is None:
            return peer.host
        if not proxies.trusts(address):
            return group(address)
        hop = address
    else:
        return str(peer)
    entries = [e for header in forwarded
               for e in header.decode("latin-1").split(",") if e.strip()]
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            break
        hop = address
        if not proxies.trusts(address):
            break
    return UNIX if hop is None else group(hop)


class Clients:
    """Tells a request's client (Note [Client addresses])."""

    def __init__(self, proxies: TrustedProxies = TrustedProxies()) -> None:
        self._proxies = proxies

    @classmethod
    def of(cls, config: Config) -> Clients:
        return cls(TrustedProxies.parse(config.service.trusted_proxies))

    def group(self, request: IRequest) -> str:
        """The group of addresses the request's client is counted by."""
        forwarded = request.requestHeaders.getRawHeaders(b"X-Forwarded-For") or []
        return client_group(request.getClientAddress(), forwarded, self._proxies)
