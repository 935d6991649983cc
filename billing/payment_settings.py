"""Settings of the payment API: where it listens, and the banks allowed to pay through it.

Built by ``billing.config`` from the ``[payments]`` table and its ``[[payments.bank]]`` blocks
(every key is documented in ``conf/billing.toml``). A bank's ``code`` is the payments'
``source``, its HTTP Basic user name and the prefix of its clearing book.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billing.config import Secret


@dataclass(frozen=True)
class BankSettings:
    """One bank or payment agent: its credentials, signing key and the addresses it calls from."""

    code: str
    name: str
    password: Secret
    signing_key: Secret
    allow_from: tuple[IPv4Network | IPv6Network, ...]

    def allows(self, address: str) -> bool:
        """Whether a request from ``address`` (the TCP peer) may come from this bank."""
        try:
            peer: IPv4Address | IPv6Address = ip_address(address)
        except ValueError:
            return False
        if isinstance(peer, IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in network for network in self.allow_from)


@dataclass(frozen=True)
class PaymentSettings:
    """The payment API's listeners and banks; no bank configured means no API is served."""

    listen_address: str
    plain_http: bool
    http_port: int
    tls_port: int
    tls_certificate: Path | None
    tls_private_key: Path | None
    timestamp_window_s: int
    threads: int
    banks: tuple[BankSettings, ...]

    @property
    def tls(self) -> bool:
        """Whether the TLS listener runs (a certificate and its key are configured)."""
        return self.tls_certificate is not None and self.tls_private_key is not None

    def bank(self, code: str) -> BankSettings | None:
        """The bank with this code, if configured."""
        return next((b for b in self.banks if b.code == code), None)
