"""Who may associate: calling AE titles and source addresses, decided at A-ASSOCIATE.

Rejections use the reasons of PS3.8 9.3.4 so the sender's log says why:
an unknown calling AE title gets rejected-permanent / service-user / "calling
AE title not recognised" (0x01, 0x01, 0x03); a wrong called AE title
"called AE title not recognised" (0x07); a source address outside the
allowed networks "no reason given" (0x01), the standard having no code for it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from scp_node.errors import ScpConfigError
from scp_node.types import AccessDecision

logger = logging.getLogger(__name__)

_REJECTED_PERMANENT = 0x01
_SERVICE_USER = 0x01
_NO_REASON = 0x01
_CALLING_AE_NOT_RECOGNISED = 0x03
_CALLED_AE_NOT_RECOGNISED = 0x07

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Parsed allow lists; empty means anyone. ``called_ae_title`` None: any called AE."""

    calling_ae_titles: frozenset[str]
    networks: tuple[IpNetwork, ...]
    called_ae_title: str | None = None

    def check(self, calling_ae: str, called_ae: str, address: str) -> AccessDecision:
        """Decide one association request."""
        calling = calling_ae.strip()
        if self.networks and not _in_networks(address, self.networks):
            return AccessDecision(
                False, f"source address {address} not allowed",
                (_REJECTED_PERMANENT, _SERVICE_USER, _NO_REASON),
            )
        if self.calling_ae_titles and calling not in self.calling_ae_titles:
            return AccessDecision(
                False, f"calling AE title {calling!r} not recognised",
                (_REJECTED_PERMANENT, _SERVICE_USER, _CALLING_AE_NOT_RECOGNISED),
            )
        if self.called_ae_title is not None and called_ae.strip() != self.called_ae_title:
            return AccessDecision(
                False, f"called AE title {called_ae.strip()!r} not recognised",
                (_REJECTED_PERMANENT, _SERVICE_USER, _CALLED_AE_NOT_RECOGNISED),
            )
        return AccessDecision(True, "allowed")


def build_policy(
    calling_ae_titles: Iterable[str], addresses: Iterable[str], called_ae_title: str | None
) -> AccessPolicy:
    """Parse the allow lists once at start-up; a bad address or network fails fast."""
    networks: list[IpNetwork] = []
    for entry in addresses:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ScpConfigError(f"allowed_source_addresses: {entry!r} is not an IP/CIDR") from exc
    titles = frozenset(t.strip() for t in calling_ae_titles if t.strip())
    called = called_ae_title.strip() if called_ae_title else None
    return AccessPolicy(titles, tuple(networks), called)


def _in_networks(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)
