"""Fetch media over HTTP(S) for the gateway, with the SSRF guard, time-outs, a byte cap and checked redirects.

The connector's resolver is the guard (``GuardedResolver``): aiohttp asks it for the addresses of a host
name, it resolves once, checks every answer and returns exactly those addresses, so the socket connects to
an address that was checked (no second lookup that a rebinding DNS server could answer differently). IP
literals never reach a resolver, so they are checked before each request. Redirects are followed by hand,
one hop at a time, each new URL going through the same checks. Proxies from the environment are ignored.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway import __version__
from gateway.media.address import AddressGuard, is_odd_ipv4_encoding, parse_ip_literal
from gateway.media.errors import (
    MediaBlocked,
    MediaError,
    MediaTimeout,
    MediaTooLarge,
    MediaUnreachable,
    MediaUnsupported,
)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only addresses the guard allowed (and raises ``MediaBlocked``)."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.guard.checked_addresses(host, port)
        return [
            ResolveResult(
                hostname=host, host=str(a), port=port,
                family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                proto=0, flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout_s: float = 3.0
    total_timeout_s: float = 15.0
    max_redirects: int = 3


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str
    url: str


class Fetcher:
    """Downloads media for the gateway; one aiohttp session, created on first use in the running loop."""

    def __init__(self, guard: AddressGuard, limits: FetchLimits | None = None) -> None:
        self.guard = guard
        self.limits = limits or FetchLimits()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.guard), use_dns_cache=False, limit=32, limit_per_host=8
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, headers={"User-Agent": f"vlm-gateway/{__version__}"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, max_bytes: int) -> Fetched:
        """The body at ``url`` (after at most ``max_redirects`` checked redirects), at most ``max_bytes``."""
        try:
            async with asyncio.timeout(self.limits.total_timeout_s):
                return await self._follow(URL(url), max_bytes)
        except TimeoutError as exc:
            limit = self.limits.total_timeout_s
            raise MediaTimeout(f"fetching the URL took longer than {limit:g} s") from exc

    async def _follow(self, url: URL, max_bytes: int) -> Fetched:
        for _hop in range(self.limits.max_redirects + 1):
            await self._preflight(url)
            result = await self._get(url, max_bytes)
            if isinstance(result, Fetched):
                return result
            url = result
        raise MediaUnreachable(f"more than {self.limits.max_redirects} redirects")

    async def _preflight(self, url: URL) -> None:
        """Scheme and host checks that must happen before aiohttp sees the URL."""
        if url.scheme not in ("http", "https"):
            raise MediaBlocked(f"redirect or URL to the scheme `{url.scheme}:` refused; only http(s)")
        host = url.raw_host or ""
        if not host:
            raise MediaUnsupported("the URL has no host")
        if parse_ip_literal(host) is not None or is_odd_ipv4_encoding(host):
            await self.guard.checked_addresses(host, url.port or 0)  # literals bypass the resolver
        else:
            self.guard.check_name(host)

    async def _get(self, url: URL, max_bytes: int) -> Fetched | URL:
        """One request: the body, or the next URL when the answer is a redirect."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.limits.connect_timeout_s)
        try:
            async with self._client().get(url, allow_redirects=False, timeout=timeout) as resp:
                if resp.status in REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise MediaUnreachable(f"the server answered HTTP {resp.status} without a Location")
                    return url.join(URL(location))
                if resp.status >= 400:
                    raise MediaUnreachable(f"the server answered HTTP {resp.status}")
                data = await _read_capped(resp, max_bytes)
                return Fetched(data, resp.headers.get("Content-Type", ""), str(url))
        except MediaError:
            raise
        except aiohttp.ClientConnectorDNSError as exc:
            raise MediaUnreachable(f"the host `{url.host}` could not be resolved") from exc
        except aiohttp.ClientConnectorError as exc:
            raise MediaUnreachable(f"could not connect to `{url.host}`") from exc
        except aiohttp.ServerTimeoutError as exc:
            raise MediaTimeout("the server did not answer in time") from exc
        except (aiohttp.InvalidURL, ValueError) as exc:
            raise MediaUnsupported("the URL is not valid") from exc
        except aiohttp.ClientError as exc:
            raise MediaUnreachable(f"fetching failed ({type(exc).__name__})") from exc


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, refusing early on a large Content-Length and stopping as soon as the cap is passed."""
    too_large = MediaTooLarge(f"the download is larger than the limit of {max_bytes} bytes")
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
