"""SSRF guard classification with the resolver stubbed: no packet leaves the machine in these tests."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.media.address import AddressGuard, AllowList, blocked_reason, is_odd_ipv4_encoding
from gateway.media.errors import MediaBlocked, MediaUnreachable
from tests.fakes import StubResolver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "not publicly routable"),
        ("::ffff:127.0.0.1", "IPv6 form of a loopback"),
        ("::ffff:169.254.169.254", "IPv6 form of a cloud metadata"),
        ("::ffff:10.1.1.1", "IPv6 form of a private"),
        ("2002:a9fe:a9fe::1", "IPv6 form of a cloud metadata"),  # 6to4 around 169.254.169.254
        ("64:ff9b::7f00:1", "IPv6 form of a loopback"),  # NAT64 around 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.4.4"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "017700000001"]
)
def test_odd_ipv4_encodings_are_recognised(host: str) -> None:
    assert is_odd_ipv4_encoding(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "example.com", "1e100.net", "::1", "cdn-1.example"])
def test_ordinary_hosts_are_not_odd_encodings(host: str) -> None:
    assert not is_odd_ipv4_encoding(host)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0251.0376.0251.0376"])
async def test_guard_refuses_odd_encodings_without_resolving(host: str) -> None:
    resolver = StubResolver({})
    with pytest.raises(MediaBlocked, match="unusual encoding"):
        await AddressGuard(resolver=resolver).checked_addresses(host, 80)
    assert resolver.asked == []


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.1.2.3"], "private"),
        (["169.254.169.254"], "metadata"),
        (["fe80::1"], "link-local"),
        (["::ffff:192.168.0.1"], "IPv6 form of a private"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad answer among good ones
    ],
)
async def test_names_resolving_to_blocked_addresses_are_refused(answers: list[str], reason: str) -> None:
    guard = AddressGuard(resolver=StubResolver({"images.example": answers}))
    with pytest.raises(MediaBlocked, match=reason):
        await guard.checked_addresses("images.example", 443)


async def test_name_resolving_to_public_addresses_returns_exactly_those() -> None:
    resolver = StubResolver({"images.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    addresses = await AddressGuard(resolver=resolver).checked_addresses("Images.Example.", 443)
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert resolver.asked == ["images.example"]


async def test_metadata_host_names_are_refused_before_resolving() -> None:
    resolver = StubResolver({"metadata.google.internal": ["93.184.216.34"]})
    with pytest.raises(MediaBlocked, match="metadata"):
        await AddressGuard(resolver=resolver).checked_addresses("metadata.google.internal", 80)
    assert resolver.asked == []


async def test_unresolvable_name_is_unreachable() -> None:
    with pytest.raises(MediaUnreachable, match="could not be resolved"):
        await AddressGuard(resolver=StubResolver({})).checked_addresses("nowhere.example", 80)


async def test_allow_list_networks_and_names() -> None:
    allow = AllowList.parse(["10.20.0.0/16", "::1", "images.internal", "*.corp.example", ""])
    resolver = StubResolver(
        {
            "images.internal": ["192.168.7.7"],
            "cdn.corp.example": ["10.9.9.9"],
            "x.example": ["10.20.1.1"],
            "corp.example.evil": ["10.9.9.9"],
        }
    )
    guard = AddressGuard(allow, resolver)
    assert [str(a) for a in await guard.checked_addresses("images.internal", 80)] == ["192.168.7.7"]
    assert [str(a) for a in await guard.checked_addresses("cdn.corp.example", 80)] == ["10.9.9.9"]
    assert [str(a) for a in await guard.checked_addresses("x.example", 80)] == ["10.20.1.1"]
    assert [str(a) for a in await guard.checked_addresses("[::1]", 80)] == ["::1"]
    with pytest.raises(MediaBlocked):
        await guard.checked_addresses("10.21.0.1", 80)
    with pytest.raises(MediaBlocked):
        await guard.checked_addresses("corp.example.evil", 80)


def test_allow_list_does_not_let_ipv4_rules_match_ipv6() -> None:
    allow = AllowList.parse(["0.0.0.0/0"])
    assert allow.allows_address(ipaddress.ip_address("8.8.8.8"))
    assert not allow.allows_address(ipaddress.ip_address("::1"))
