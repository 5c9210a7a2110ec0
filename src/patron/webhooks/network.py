"""Where a webhook may be delivered: HTTPS URLs whose host resolves only to global addresses, or to
networks the operator allows (``PATRON_WEBHOOK_ALLOW_NETWORKS``). The check is made when an endpoint
is saved and again before each attempt, and the attempt connects to the address checked (keeping the
host name for TLS's SNI, the certificate's check and the Host header), so a name that resolves
elsewhere between the two (DNS rebinding) reaches nothing it should not."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import ada_url

from patron.config import Network

#: The longest endpoint URL accepted.
MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL may not be delivered to; the message says why."""


@dataclass(frozen=True)
class Target:
    """An endpoint's URL, parsed: what is connected to, and what the request names."""

    url: str  # as normalised (WHATWG)
    host: str  # the host name (or address) without brackets
    port: int
    path: str  # path and query

    @property
    def authority(self) -> str:
        """The Host header: the host, and the port unless it is HTTPS's."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"

    def at(self, address: IPAddress) -> str:
        """The URL with ``address`` in place of the host."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"https://{host}:{self.port}{self.path}"


def parse(url: str) -> Target:
    """The target of an endpoint's URL: HTTPS, with a host, no credentials, no fragment."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        raise Refused("is not a URL") from None
    if parsed.protocol != "https:":
        raise Refused("must be an https:// URL")
    if parsed.username or parsed.password:
        raise Refused("must not carry a user name or password")
    if parsed.hash:
        raise Refused("must not have a fragment (#...)")
    hostname = parsed.hostname.strip("[]")
    if not hostname:
        raise Refused("has no host")
    port = int(parsed.port) if parsed.port else 443
    return Target(parsed.href, hostname, port, (parsed.pathname or "/") + parsed.search)


def allowed(address: IPAddress, networks: Sequence[Network]) -> bool:
    """Whether ``address`` may be delivered to: a global one, or one in an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in networks):
        return True
    return address.is_global and not address.is_multicast


def resolve(target: Target, networks: Sequence[Network]) -> list[IPAddress]:
    """The addresses the target's host resolves to, every one of them allowed (else :class:`Refused`)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"its host {target.host!r} does not resolve ({exc})") from None
        found = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not found:
        raise Refused(f"its host {target.host!r} resolves to no address")
    refused = [a for a in found if not allowed(a, networks)]
    if refused:
        raise Refused(
            f"its host {target.host!r} resolves to {refused[0]}, a private, loopback, link-local or other"
            " non-global address (an operator may allow its network: PATRON_WEBHOOK_ALLOW_NETWORKS)"
        )
    return found


def check(url: str, networks: Sequence[Network]) -> Target:
    """The target of ``url``, if it may be delivered to now (else :class:`Refused`)."""
    target = parse(url)
    resolve(target, networks)
    return target
