"""SSRF guard: which hosts and addresses the gateway may fetch media from.

By default only globally routable unicast addresses are allowed. Refused: loopback, private, shared
(carrier-grade NAT), link-local, multicast, reserved and unspecified addresses, cloud metadata endpoints,
IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo) unless the embedded address is
allowed, and host names that C resolvers would read as an IPv4 address in an odd encoding (``2130706433``,
``0x7f.1``, ``0177.0.0.1``), which are refused outright because they exist only to slip past filters.

Every address a name resolves to must pass, not just one (a DNS answer mixing a public and a private address
is refused). The fetcher connects only to the addresses checked here (``GuardedResolver`` in
``gateway.media.fetch``), so a second DNS answer cannot change the target after the check.

``allow`` entries (setting ``media_fetch_allow``) open trusted targets: an IP network (``10.1.0.0/16``,
``127.0.0.1``) allows addresses inside it; a host name (``images.internal``, or ``*.corp.example`` for its
sub-domains) allows that name whatever it resolves to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.media.errors import MediaBlocked, MediaUnreachable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ... instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure wire server (a public address, so it needs naming)
    )
)
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class HostResolver(Protocol):
    """Turns a host name into IP address strings (tests stub this; no packet leaves the machine)."""

    async def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), run off the event loop."""

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked_reason(ip: IPAddress) -> str | None:
    """Why the gateway must not connect to ``ip`` by default, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"an IPv6 form of {inner}" if inner else None
        if ip.teredo is not None:
            return "a Teredo tunnel address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attribute, reason in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, attribute):
            return reason
    if not ip.is_global:
        return "an address that is not publicly routable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is a canonical IP literal (brackets and IPv6 zone dropped), else None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_odd_ipv4_encoding(host: str) -> bool:
    """True for names that ``inet_aton`` reads as IPv4 though they are not dotted-quad decimal.

    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1`` all mean 127.0.0.1 to C resolvers.
    """
    if parse_ip_literal(host) is not None:
        return False
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class AllowList:
    """Trusted networks and host names (``media_fetch_allow``)."""

    networks: tuple[IPNetwork, ...] = ()
    names: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        networks: list[IPNetwork] = []
        names: list[str] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.append(entry.lower().rstrip("."))
        return cls(tuple(networks), tuple(names))

    def allows_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name.startswith("*.") and host.endswith(name[1:]):
                return True
            if host == name:
                return True
        return False

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


class AddressGuard:
    """Decides whether a host may be fetched from, and returns the checked addresses to connect to."""

    def __init__(self, allow: AllowList | None = None, resolver: HostResolver | None = None) -> None:
        self.allow = allow or AllowList()
        self.resolver = resolver or SystemResolver()

    async def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all of them allowed; raises ``MediaBlocked`` otherwise."""
        host = host.lower().rstrip(".")
        if not host:
            raise MediaBlocked("the URL has no host")
        literal = parse_ip_literal(host)
        if literal is not None:
            self.check_address(literal, host)
            return [literal]
        self.check_name(host)
        try:
            answers = await self.resolver.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise MediaUnreachable(f"the host `{host}` could not be resolved") from exc
        addresses = [a for a in (parse_ip_literal(answer) for answer in answers) if a is not None]
        if not addresses:
            raise MediaUnreachable(f"the host `{host}` could not be resolved")
        if not self.allow.allows_name(host):
            for address in addresses:
                self.check_address(address, host)
        return addresses

    def check_name(self, host: str) -> None:
        """Refuse names that are addresses in disguise or well-known metadata names."""
        if self.allow.allows_name(host):
            return
        if is_odd_ipv4_encoding(host):
            raise MediaBlocked(f"the host `{host}` is an IPv4 address in an unusual encoding; refused")
        if host in METADATA_NAMES:
            raise MediaBlocked(f"the host `{host}` is a cloud metadata service; refused")

    def check_address(self, ip: IPAddress, host: str) -> None:
        if self.allow.allows_address(ip):
            return
        reason = blocked_reason(ip)
        if reason is not None:
            raise MediaBlocked(
                f"the host `{host}` is or resolves to {reason}; the gateway only fetches media from public "
                "addresses (an administrator can allow trusted hosts with VLMGW_MEDIA_FETCH_ALLOW)"
            )
