"""Network topology the AAA server identifies subscribers by: access switches and their ports.

A port is bound to at most one service; DHCP Option 82 (circuit-id: the port, remote-id: the
switch) in an Access-Request names the port, and so the service.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId


class Switch(Base):
    """An access switch; ``remote_id`` is what it puts in Option 82 (its MAC, or a hostname).

    ``device_type`` picks the driver that controls it (``nms_adapters.switches``: snmp,
    cisco_ios, huawei; NULL: billing does not control it), ``credentials`` names a
    ``[[provisioning.credentials]]`` entry of the config (secrets stay out of the database),
    ``snmp_port`` / ``ssh_port`` are NULL for the standard 161 / 22.
    """

    __tablename__ = "switches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    remote_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    address: Mapped[str | None] = mapped_column(String(64))
    vendor: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(64))
    device_type: Mapped[str | None] = mapped_column(String(32))
    credentials: Mapped[str | None] = mapped_column(String(64))
    snmp_port: Mapped[int | None] = mapped_column(Integer)
    ssh_port: Mapped[int | None] = mapped_column(Integer)


class SwitchPort(Base):
    """A switch port (and VLAN, 0 for none) and the service it is bound to, if any.

    ``port`` is spelled as the switch reports it in the Option 82 circuit-id: the interface name
    for text circuit-ids (``eth 0/1/2``), ``module/port`` for the binary vlan-mod-port format.
    """

    __tablename__ = "switch_ports"
    __table_args__ = (UniqueConstraint("switch_id", "port", "vlan"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id"))
    port: Mapped[str] = mapped_column(String(64))
    vlan: Mapped[int] = mapped_column(Integer, default=0)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), unique=True)
