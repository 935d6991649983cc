"""What the AAA server is configured with, as frozen values.

``billing.config`` reads and validates the TOML (``[aaa]`` and ``[[aaa.nas]]`` in billing.toml)
and builds these; ``aaa`` itself never reads files or imports ``billing``. Secrets arrive here as
bytes, already resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

IDENTIFICATION_METHODS = ("login", "mac", "port")
VENDORS = ("generic", "mikrotik", "cisco", "juniper", "huawei", "accel-ppp")
STATUS_ACTIONS = ("reject", "walled_garden")
DEGRADED_MODES = ("last_known", "reject")
COA_NAK_ACTIONS = ("disconnect", "none")
"""What the provisioning worker does when a NAS refuses a CoA: disconnect the session (it logs in
again and gets the new state), or nothing (the task ends dead, for staff)."""
DEFAULT_COA_PORTS = {"mikrotik": 1700}
"""RFC 5176 says 3799; RouterOS listens on 1700 unless told otherwise."""


@dataclass(frozen=True)
class NasClient:
    """A BRAS/CMTS allowed to talk to us: where it sends from, its secret, how it identifies users."""

    name: str
    network: IPv4Network | IPv6Network
    secret: bytes = field(repr=False)
    vendor: str = "generic"
    coa_port: int = 3799
    coa_nak: str = "disconnect"
    require_message_authenticator: bool = True
    identification: tuple[str, ...] = ("login", "mac", "port")
    mac_from: tuple[str, ...] = ("Calling-Station-Id",)
    strip_realm: bool = False

    def matches(self, address: IPv4Address | IPv6Address) -> bool:
        return address in self.network


@dataclass(frozen=True)
class Listen:
    """Where the RADIUS listeners bind (loopback by default)."""

    address: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    receive_buffer_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class WalledGarden:
    """The "negative balance" profile: a captive-portal pool and a small speed."""

    pool: str = "captive"
    down_kbps: int = 512
    up_kbps: int = 512
    session_timeout_s: int = 600


@dataclass(frozen=True)
class CategoryPolicy:
    """What a subscriber category gets when its service may not browse normally."""

    out_of_funds: str = "walled_garden"
    suspended: str = "walled_garden"
    blocked: str = "reject"


@dataclass(frozen=True)
class AaaSettings:
    """Everything ``billingd``'s RADIUS side needs."""

    listen: Listen = field(default_factory=Listen)
    nas: tuple[NasClient, ...] = ()
    dictionary_dir: Path = Path("conf/dictionaries")
    extra_dictionaries: tuple[Path, ...] = ()
    session_timeout_s: int = 86_400
    interim_interval_s: int = 300
    reply_cache_window_s: float = 30.0
    journal_dir: Path = Path("var/journal")
    snapshot_poll_s: float = 1.0
    degraded_mode: str = "last_known"
    reaper_factor: int = 3
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9812
    walled_garden: WalledGarden = field(default_factory=WalledGarden)
    default_policy: CategoryPolicy = field(default_factory=CategoryPolicy)
    policies: tuple[tuple[str, CategoryPolicy], ...] = ()

    def policy_for(self, category: str) -> CategoryPolicy:
        for name, policy in self.policies:
            if name == category:
                return policy
        return self.default_policy

    def client_for(self, address: str) -> NasClient | None:
        """The NAS client a datagram from ``address`` belongs to (most specific network wins)."""
        try:
            ip = ip_address(address)
        except ValueError:
            return None
        found = [c for c in self.nas if ip.version == c.network.version and c.matches(ip)]
        return max(found, key=lambda c: c.network.prefixlen) if found else None
