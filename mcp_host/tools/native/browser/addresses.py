"""Which addresses the browser may connect to: public ones, unless the user allows private ones.

    guard = AddressGuard()                                   # the system resolver, the real rules
    await guard.check(httpx2.URL("https://example.com/"))    # -> [IPv4Address('93.184.215.14'), ...]
    await guard.check(httpx2.URL("http://0x7f.1:8321/"))     # BrowserError: ... a loopback address ...

A page the model reads can ask it to open any address: the host's own API on 127.0.0.1, the cloud
metadata service on 169.254.169.254, a router on 192.168.0.1. The guard resolves the name once, off the
event loop, and refuses it if any address it resolves to is not public; the caller then connects to one
of the addresses returned (see `fetch.py`), so a second resolution cannot swap in another (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeAlias

import anyio
import httpx2

from mcp_host.errors import BrowserError

IPAddress: TypeAlias = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`resolve(host, port)` -> the addresses `host` resolves to, as text; raises `OSError` when it does not."""

ALLOW_HINT = (
    "The browser only opens public addresses, so that a page cannot steer it to this machine's or the local "
    "network's services; the user can allow private addresses with `[browser] allow_private_addresses = true` "
    "in settings.toml."
)
# The well-known NAT64 prefix embeds an IPv4 address that a NAT64 gateway would connect to.
_NAT64 = IPv6Network("64:ff9b::/96")
# Shared address space (carrier-grade NAT, Tailscale): not `is_private`, yet nothing public lives there.
_SHARED = IPv4Network("100.64.0.0/10")


async def resolve_with_system(host: str, port: int) -> list[str]:
    """The system resolver (`getaddrinfo` in a worker thread), every address once, in its order."""
    found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def refusal_reason(address: IPAddress) -> str | None:
    """Why the browser may not connect to `address` ("loopback", "private", ...), or None for a public one."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            return refusal_reason(address.ipv4_mapped)
        if address in _NAT64:  # what a DNS64 resolver answers for every IPv4-only site: judge the IPv4 inside
            return refusal_reason(IPv4Address(int(address) & 0xFFFFFFFF))
        embedded = refusal_reason(address.sixtofour) if address.sixtofour is not None else None
        if embedded is not None:  # 2002:7f00:1:: carries 127.0.0.1
            return embedded
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("site-local", isinstance(address, IPv6Address) and address.is_site_local),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("shared (carrier-grade NAT)", isinstance(address, IPv4Address) and address in _SHARED),
        ("non-public", not address.is_global),
    )
    return next((reason for reason, applies in checks if applies), None)


def numeric_address(host: str) -> IPAddress | None:
    """`host` as an address when it is one in any form `getaddrinfo` accepts (`2130706433`, `0x7f.1`, `::1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # the forms the C library reads without asking DNS: decimal, hex, octal, short (127.1)
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class AddressGuard:
    """Resolves a URL's host and refuses it unless every address is public.

    `resolve` and `refusal_reason` are the system resolver and the rules above; tests pass others (a
    name that resolves to a local test server they treat as public).
    """

    def __init__(
        self,
        resolve: Resolver = resolve_with_system,
        refusal_reason: Callable[[IPAddress], str | None] = refusal_reason,
        *,
        hint: str = ALLOW_HINT,
    ) -> None:
        self._resolve = resolve
        self._refusal_reason = refusal_reason
        self.hint = hint  # how the user allows such addresses (the browser's setting, or a plugin's)

    async def check(self, url: httpx2.URL) -> list[IPAddress]:
        """The addresses to connect to for `url`, all public. Raises `BrowserError` with text for the model."""
        host = url.host.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always this machine
            raise BrowserError(f"refused to open {url}: {url.host} names this machine (loopback). {self.hint}")
        literal = numeric_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                answers = await self._resolve(url.raw_host.decode("ascii"), port)
                addresses = [ipaddress.ip_address(answer) for answer in answers]
            except (OSError, ValueError) as exc:
                raise BrowserError(f"could not resolve {url.host} ({exc}); {url} was not opened") from exc
            if not addresses:
                raise BrowserError(f"{url.host} resolves to no address; {url} was not opened")
        for address in addresses:
            reason = self._refusal_reason(address)
            if reason is not None:
                article = "an" if reason[0] in "aeiou" else "a"
                if literal is None:
                    what = f"{url.host} resolves to {address}, {article} {reason} address"
                elif str(address) == url.host:
                    what = f"{address} is {article} {reason} address"
                else:
                    what = f"{url.host} is {address}, {article} {reason} address"
                raise BrowserError(f"refused to open {url}: {what}. {self.hint}")
        return addresses
