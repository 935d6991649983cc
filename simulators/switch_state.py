"""The port state of the simulated access switch, shared by its SNMP agent and its SSH CLI.

Ports are numbered 1..N; port ``n`` has ifIndex ``n`` and the name ``GigabitEthernet0/n``
(``GigabitEthernet0/0/n`` for a Huawei-style switch: ``port_prefix``).
Both faces read and change the same :class:`SwitchState`, so what the CLI does SNMP sees and
vice versa.  A lock guards it: the faces run on one event loop in ``billing-sim switch``, but a
test may read the state from its own thread.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from enum import IntEnum

__all__ = ["AdminStatus", "Port", "SwitchState", "UnknownPort", "canonical_port_name"]

PORT_PREFIX = "GigabitEthernet0/"
_PORT_NAME = re.compile(r"^\s*([a-z]+)\s*0/(\d+)\s*$", re.IGNORECASE)


class UnknownPort(LookupError):
    """No such port on this switch."""


class AdminStatus(IntEnum):
    """IF-MIB ifAdminStatus / ifOperStatus values used here."""

    UP = 1
    DOWN = 2


@dataclass(frozen=True, slots=True)
class Port:
    """One switch port as both faces report it."""

    if_index: int
    name: str
    alias: str = ""
    admin: AdminStatus = AdminStatus.UP
    rate_limit_kbps: int = 0  # 0 = no limit

    @property
    def oper(self) -> AdminStatus:
        """Operational status: the simulated link is up exactly when the port is enabled."""
        return self.admin


def canonical_port_name(text: str) -> str | None:
    """``Gi0/1``, ``gi 0/1`` or ``GigabitEthernet0/1`` → ``GigabitEthernet0/1``; None if not a port name."""
    match = _PORT_NAME.match(text)
    if not match or len(match.group(1)) < 2 or not "gigabitethernet".startswith(match.group(1).lower()):
        return None
    return f"{PORT_PREFIX}{int(match.group(2))}"


class SwitchState:
    """Ports 1..``ports``, all up, no description, no rate limit; named ``port_prefix`` + n."""

    def __init__(self, ports: int = 8, hostname: str = "switch1", port_prefix: str = PORT_PREFIX) -> None:
        if ports < 1:
            raise ValueError("a switch needs at least one port")
        self.hostname = hostname
        self._lock = threading.Lock()
        self._ports = {n: Port(if_index=n, name=f"{port_prefix}{n}") for n in range(1, ports + 1)}
        self.saved = 0  # times the configuration was written (``write memory``)

    def ports(self) -> list[Port]:
        """A snapshot of every port, by ifIndex."""
        with self._lock:
            return [self._ports[n] for n in sorted(self._ports)]

    def port(self, if_index: int) -> Port:
        """One port by ifIndex; :class:`UnknownPort` if there is none."""
        with self._lock:
            try:
                return self._ports[if_index]
            except KeyError:
                raise UnknownPort(if_index) from None

    def index_of(self, name: str) -> int:
        """The ifIndex of a port given by (abbreviated) Cisco-style name; :class:`UnknownPort` if none."""
        canonical = canonical_port_name(name)
        for port in self.ports():
            if port.name == canonical:
                return port.if_index
        raise UnknownPort(name)

    def _update(self, if_index: int, **changes: object) -> Port:
        with self._lock:
            if if_index not in self._ports:
                raise UnknownPort(if_index)
            port = self._ports[if_index] = replace(self._ports[if_index], **changes)  # type: ignore[arg-type]
            return port

    def set_admin(self, if_index: int, admin: AdminStatus) -> Port:
        """Enable (UP) or shut down (DOWN) a port."""
        return self._update(if_index, admin=AdminStatus(admin))

    def set_alias(self, if_index: int, alias: str) -> Port:
        """Set the port description (ifAlias)."""
        return self._update(if_index, alias=alias)

    def set_rate_limit(self, if_index: int, kbps: int) -> Port:
        """Set the port rate limit in kbit/s (0 = none)."""
        if kbps < 0:
            raise ValueError("rate limit must be >= 0")
        return self._update(if_index, rate_limit_kbps=kbps)

    def mark_saved(self) -> None:
        """Record a ``write memory``."""
        with self._lock:
            self.saved += 1
