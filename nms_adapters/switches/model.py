"""What billing knows about a switch, what it reads back from a port, and what every driver offers.

:class:`SwitchAccess` is built by the caller from the DB switch record and the configured
credentials (secrets never live in the DB row); :class:`PortState` is what a read returns;
:class:`SwitchDriver` is the one interface the outbox worker and the reconciler use whatever
the device type.  Everything here is data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["PortState", "SwitchAccess", "SwitchDriver"]


@dataclass(frozen=True)
class SwitchAccess:
    """How to reach and log in to one switch; ``device_type`` picks the driver (registry key).

    SNMP: v2c uses ``read_community`` for GET and ``write_community`` for SET; v3 uses the USM
    user ``v3_user`` with ``v3_auth_key``/``v3_priv_key`` (passphrases) and the protocols
    ``v3_auth_protocol`` (md5, sha, sha224, sha256, sha384, sha512) and ``v3_priv_protocol``
    (des, 3des, aes, aes192, aes256); a missing priv key means authNoPriv, a missing auth key
    noAuthNoPriv.  CLI: ``username``/``password`` for SSH, ``enable_secret`` where the vendor
    has an enable step (Cisco IOS).
    """

    name: str
    address: str
    device_type: str
    snmp_port: int = 161
    ssh_port: int = 22
    snmp_version: Literal["v2c", "v3"] = "v2c"
    read_community: str | None = None
    write_community: str | None = None
    v3_user: str | None = None
    v3_auth_key: str | None = None
    v3_priv_key: str | None = None
    v3_auth_protocol: str = "sha"
    v3_priv_protocol: str = "aes"
    username: str | None = None
    password: str | None = None
    enable_secret: str | None = None

    def __repr__(self) -> str:  # never print secrets into logs or task records
        return f"SwitchAccess(name={self.name!r}, address={self.address!r}, device_type={self.device_type!r})"


@dataclass(frozen=True)
class PortState:
    """One port as the switch reports it.

    ``port``: the name as the caller gave it (:meth:`SwitchDriver.read_port`) or as the switch
    names it (:meth:`SwitchDriver.read_ports`; compare with :func:`same_port`).
    ``oper_up``: None when the switch did not say.  ``rate_kbps``: the lowest rate limit
    configured on the port, None when there is none — or, for the SNMP driver, unknown (IF-MIB
    has no rate limit).
    """

    port: str
    admin_up: bool
    oper_up: bool | None
    alias: str
    rate_kbps: int | None


class SwitchDriver(Protocol):
    """Port control of one switch; every method is a coroutine safe to await on the reactor's loop.

    Changes are idempotent (blocking a blocked port is no error) and go to the running
    configuration only (never saved: a switch reboot undoes them, and the reconciler repairs
    that drift).  Failures raise :class:`~nms_adapters.switches.errors.SwitchError` subclasses.
    """

    async def block(self, port: str) -> None:
        """Administratively shut the port down."""
        ...

    async def unblock(self, port: str) -> None:
        """Administratively enable the port."""
        ...

    async def set_rate(self, port: str, kbps: int | None) -> None:
        """Limit the port to ``kbps`` kbit/s in both directions; None removes the limit."""
        ...

    async def read_port(self, port: str) -> PortState:
        """The state of one port."""
        ...

    async def read_ports(self) -> list[PortState]:
        """The state of every port the switch has."""
        ...

    async def close(self) -> None:
        """Release connections; the driver is not used afterwards."""
        ...
