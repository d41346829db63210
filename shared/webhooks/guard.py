"""The SSRF guard: a webhook URL may only reach public addresses, unless
ENGRAM_WEBHOOK_ALLOW_PRIVATE_NETWORKS allows private ones. Checked when an endpoint is
registered, and again at each send on the addresses the request then connects to, so that a DNS
name that later resolves to an internal address (DNS rebinding) is refused too."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class Refused(Exception):
    """The URL must not be called; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a request goes: its URL with the host replaced by the address checked, and the
    original host for the Host header and TLS (SNI and certificate)."""

    url: str
    host: str
    address: str


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and check every address it has; the target pinned to the first."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 literal
        raise Refused(f"the URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("the URL must be http:// or https:// with a host")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"the host '{parts.hostname}' does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                raise Refused(f"the host '{parts.hostname}' resolves to {address}, a private, loopback or "
                              "link-local address (set ENGRAM_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it)")
    first = addresses[0]
    literal = f"[{first}]" if first.version == 6 else str(first)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
    return Target(urlunsplit(parts._replace(netloc=netloc)), parts.hostname, str(first))
