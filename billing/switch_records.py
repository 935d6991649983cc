"""Switch records: the access switches billing controls, and which service each port serves.

What: :func:`add_switch`, :func:`update_switch`, :func:`list_switches`, :func:`switch_detail`, and
the port bindings (:func:`bind_port`, :func:`unbind_port`) that tell the provisioning worker which
port to block and the AAA server which service an Option 82 request names.
``billing-admin switch`` calls these. Every change is audited in the caller's transaction; the
caller checks :data:`NETWORK_READ` / :data:`NETWORK_MANAGE` first. Refusals raise a
:class:`~billing.provisioning_admin.ProvisioningAdminError` and write nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Final, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.db.customers import Account
from billing.db.network import Switch, SwitchPort
from billing.db.services import Service
from billing.db.types import utcnow
from billing.provisioning_admin import ProvisioningAdminError

__all__ = [
    "KEEP",
    "NETWORK_MANAGE",
    "NETWORK_READ",
    "PortBinding",
    "SwitchDetail",
    "SwitchInfo",
    "UnknownSwitch",
    "add_switch",
    "bind_port",
    "list_switches",
    "switch_detail",
    "unbind_port",
    "update_switch",
]

NETWORK_READ: Final = "network.read"
NETWORK_MANAGE: Final = "network.manage"


class UnknownSwitch(ProvisioningAdminError):
    """No switch has the given name."""


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""``update_switch``'s default for a field: leave it as it is (``None`` clears an optional one)."""
Keep = Literal[_Keep.KEEP]


@dataclass(frozen=True)
class SwitchInfo:
    """A switch record, with how many ports it has on record and how many are bound."""

    name: str
    address: str | None
    device_type: str | None
    credentials: str | None
    vendor: str | None
    model: str | None
    remote_id: str | None
    snmp_port: int | None
    ssh_port: int | None
    ports: int = 0
    bound: int = 0


@dataclass(frozen=True)
class PortBinding:
    """A port (and VLAN, 0 for none) of a switch and the service bound to it, if any.

    ``changed`` is False when a bind or unbind found the port already so (nothing written);
    ``released`` is the service an unbind freed the port from.
    """

    switch: str
    port: str
    vlan: int
    service_id: int | None
    account: str | None
    changed: bool = True
    released: int | None = None


@dataclass(frozen=True)
class SwitchDetail:
    """A switch with its ports, in the order they were recorded."""

    switch: SwitchInfo
    port_rows: tuple[PortBinding, ...]


def supported_device_types() -> tuple[str, ...]:
    """The device types a driver exists for (``nms_adapters.switches``' registry)."""
    from nms_adapters.switches import SUPPORTED_DEVICE_TYPES

    return tuple(SUPPORTED_DEVICE_TYPES)


def _check_device_type(device_type: str) -> str:
    supported = supported_device_types()
    if device_type not in supported:
        raise ProvisioningAdminError(
            f"device_type: unknown device type {device_type!r}; supported: {', '.join(sorted(supported))}"
        )
    return device_type


def _text(field: str, value: str | None, size: int, *, required: bool = False) -> str | None:
    text = None if value is None else value.strip()
    if not text:
        if required:
            raise ProvisioningAdminError(f"{field}: must not be empty")
        return None
    if len(text) > size:
        raise ProvisioningAdminError(f"{field}: at most {size} characters, got {len(text)}")
    return text


def _port_number(field: str, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 65535:
        raise ProvisioningAdminError(f"{field}: expected a TCP/UDP port 1-65535, got {value}")
    return value


def _remote_id(session: Session, value: str | None, switch_id: int | None) -> str | None:
    """``value`` checked for Option 82: a MAC in canonical form (as the AAA server compares it),
    unique among switches however the others spell theirs."""
    from aaa.identification import parse_mac

    text = _text("remote_id", value, 64)
    if text is None:
        return None
    canonical = parse_mac(text) or text
    for other_id, name, other in session.execute(
        select(Switch.id, Switch.name, Switch.remote_id).where(Switch.remote_id.is_not(None))
    ):
        if other_id != switch_id and (parse_mac(other) or other) == canonical:
            raise ProvisioningAdminError(f"remote_id: {canonical!r} is the remote-id of switch {name!r}")
    return canonical


def _switch(session: Session, name: str, *, lock: bool = False) -> Switch:
    query = select(Switch).where(Switch.name == name)
    if lock:
        query = query.with_for_update()
    switch = session.scalar(query)
    if switch is None:
        raise UnknownSwitch(f"switch: no switch {name!r}")
    return switch


def _switch_info(switch: Switch, ports: int = 0, bound: int = 0) -> SwitchInfo:
    return SwitchInfo(
        name=switch.name,
        address=switch.address,
        device_type=switch.device_type,
        credentials=switch.credentials,
        vendor=switch.vendor,
        model=switch.model,
        remote_id=switch.remote_id,
        snmp_port=switch.snmp_port,
        ssh_port=switch.ssh_port,
        ports=ports,
        bound=bound,
    )


def _touch_services(session: Session, service_ids: Collection[int | None], at: datetime) -> None:
    """Bump ``updated_at`` of services whose network identity changed: the AAA snapshot polls it
    on SQLite (PostgreSQL also notifies it by trigger on ``switch_ports`` / ``switches``)."""
    ids = [i for i in service_ids if i is not None]
    if ids:
        session.execute(
            update(Service)
            .where(Service.id.in_(ids))
            .values(updated_at=at)
            .execution_options(synchronize_session=False)
        )


def add_switch(
    session: Session,
    actor: Actor,
    name: str,
    *,
    address: str,
    device_type: str,
    credentials: str | None = None,
    vendor: str | None = None,
    model: str | None = None,
    remote_id: str | None = None,
    snmp_port: int | None = None,
    ssh_port: int | None = None,
) -> SwitchInfo:
    """Record a switch billing controls through the driver of ``device_type``.

    ``credentials`` names a ``[[provisioning.credentials]]`` entry of the config (no secret is
    stored here); ``remote_id`` is what the switch puts in DHCP Option 82 (a MAC is stored in
    canonical form); ``snmp_port`` / ``ssh_port`` None mean the standard 161 / 22.
    """
    switch_name = _text("name", name, 64, required=True)
    assert switch_name is not None
    if session.scalar(select(Switch.id).where(Switch.name == switch_name)) is not None:
        raise ProvisioningAdminError(f"name: switch {switch_name!r} exists already (change it with set)")
    row = Switch(
        name=switch_name,
        address=_text("address", address, 64, required=True),
        device_type=_check_device_type(device_type),
        credentials=_text("credentials", credentials, 64),
        vendor=_text("vendor", vendor, 32),
        model=_text("model", model, 64),
        remote_id=_remote_id(session, remote_id, None),
        snmp_port=_port_number("snmp_port", snmp_port),
        ssh_port=_port_number("ssh_port", ssh_port),
    )
    session.add(row)
    session.flush()
    info = _switch_info(row)
    audit.record(session, actor, "network.switch.add", "switch", row.id, after=info)
    return info


def update_switch(
    session: Session,
    actor: Actor,
    name: str,
    *,
    address: str | Keep = KEEP,
    device_type: str | Keep | None = KEEP,
    credentials: str | Keep | None = KEEP,
    vendor: str | Keep | None = KEEP,
    model: str | Keep | None = KEEP,
    remote_id: str | Keep | None = KEEP,
    snmp_port: int | Keep | None = KEEP,
    ssh_port: int | Keep | None = KEEP,
    now: datetime | None = None,
) -> SwitchInfo:
    """Change the given fields of switch ``name`` (:data:`KEEP` leaves one, None clears one).

    ``device_type`` None means billing no longer controls the switch (its ports are still used to
    identify subscribers). A changed ``remote_id`` bumps the bound services for the AAA snapshot.
    """
    switch = _switch(session, name, lock=True)
    before = _switch_info(switch)
    if address is not KEEP:
        switch.address = _text("address", address, 64, required=True)
    if device_type is not KEEP:
        switch.device_type = None if device_type is None else _check_device_type(device_type)
    if credentials is not KEEP:
        switch.credentials = _text("credentials", credentials, 64)
    if vendor is not KEEP:
        switch.vendor = _text("vendor", vendor, 32)
    if model is not KEEP:
        switch.model = _text("model", model, 64)
    if remote_id is not KEEP:
        switch.remote_id = _remote_id(session, remote_id, switch.id)
    if snmp_port is not KEEP:
        switch.snmp_port = _port_number("snmp_port", snmp_port)
    if ssh_port is not KEEP:
        switch.ssh_port = _port_number("ssh_port", ssh_port)
    session.flush()
    after = _switch_info(switch)
    if after == before:
        return after
    if after.remote_id != before.remote_id:
        bound = session.scalars(
            select(SwitchPort.service_id).where(
                SwitchPort.switch_id == switch.id, SwitchPort.service_id.is_not(None)
            )
        ).all()
        _touch_services(session, bound, now or utcnow())
    changed = {k: v for k, v in asdict(after).items() if getattr(before, k) != v}
    audit.record(
        session,
        actor,
        "network.switch.update",
        "switch",
        switch.id,
        before={k: getattr(before, k) for k in changed},
        after=changed,
    )
    return after


def list_switches(session: Session) -> list[SwitchInfo]:
    """Every switch by name, with its count of ports on record and of bound ones."""
    counts = {
        switch_id: (ports, bound)
        for switch_id, ports, bound in session.execute(
            select(SwitchPort.switch_id, func.count(), func.count(SwitchPort.service_id)).group_by(
                SwitchPort.switch_id
            )
        )
    }
    return [
        _switch_info(row, *counts.get(row.id, (0, 0)))
        for row in session.scalars(select(Switch).order_by(Switch.name))
    ]


def switch_detail(session: Session, name: str) -> SwitchDetail:
    """Switch ``name`` with its ports and the services (and accounts) bound to them."""
    switch = _switch(session, name)
    rows = session.execute(
        select(SwitchPort.port, SwitchPort.vlan, SwitchPort.service_id, Account.number)
        .outerjoin(Service, Service.id == SwitchPort.service_id)
        .outerjoin(Account, Account.id == Service.account_id)
        .where(SwitchPort.switch_id == switch.id)
        .order_by(SwitchPort.id)
    ).all()
    ports = tuple(PortBinding(switch.name, r.port, r.vlan, r.service_id, r.number, False) for r in rows)
    bound = sum(1 for p in ports if p.service_id is not None)
    return SwitchDetail(_switch_info(switch, len(ports), bound), ports)


def _vlan(vlan: int) -> int:
    if not 0 <= vlan <= 4094:
        raise ProvisioningAdminError(f"vlan: expected 0 (none) or a VLAN id 1-4094, got {vlan}")
    return vlan


def _account_of(session: Session, service_id: int) -> str | None:
    return session.scalar(
        select(Account.number).join(Service, Service.account_id == Account.id).where(Service.id == service_id)
    )


def bind_port(
    session: Session,
    actor: Actor,
    switch: str,
    port: str,
    service_id: int,
    vlan: int = 0,
    *,
    now: datetime | None = None,
) -> PortBinding:
    """Bind ``port`` (and ``vlan``) of ``switch`` to ``service_id``; the port is recorded if new.

    Refused when the port is bound to another service (named: unbind it first) or the service is
    bound to another port (a service has one port). Binding a port to the service it already has
    changes nothing (``changed`` False).
    """
    row_switch = _switch(session, switch, lock=True)
    port_name = _text("port", port, 64, required=True)
    assert port_name is not None
    vlan = _vlan(vlan)
    account = _account_of(session, service_id)
    if account is None:
        raise ProvisioningAdminError(f"service_id: no service {service_id}")
    existing = session.scalar(
        select(SwitchPort)
        .where(SwitchPort.switch_id == row_switch.id, SwitchPort.port == port_name, SwitchPort.vlan == vlan)
        .with_for_update()
    )
    where = f"port {port_name!r}" + (f" vlan {vlan}" if vlan else "") + f" of switch {row_switch.name!r}"
    if existing is not None and existing.service_id == service_id:
        return PortBinding(row_switch.name, port_name, vlan, service_id, account, changed=False)
    if existing is not None and existing.service_id is not None:
        holder = _account_of(session, existing.service_id)
        raise ProvisioningAdminError(
            f"port: {where} is bound to service {existing.service_id} (account {holder}); unbind it first"
        )
    elsewhere = session.execute(
        select(Switch.name, SwitchPort.port, SwitchPort.vlan)
        .join(Switch, Switch.id == SwitchPort.switch_id)
        .where(SwitchPort.service_id == service_id)
    ).one_or_none()
    if elsewhere is not None:
        raise ProvisioningAdminError(
            f"service_id: service {service_id} is bound to port {elsewhere.port!r}"
            + (f" vlan {elsewhere.vlan}" if elsewhere.vlan else "")
            + f" of switch {elsewhere.name!r}; unbind it first"
        )
    if existing is None:
        existing = SwitchPort(switch_id=row_switch.id, port=port_name, vlan=vlan, service_id=service_id)
        session.add(existing)
    else:
        existing.service_id = service_id
    session.flush()
    _touch_services(session, [service_id], now or utcnow())
    binding = PortBinding(row_switch.name, port_name, vlan, service_id, account)
    audit.record(
        session,
        actor,
        "network.port.bind",
        "switch_port",
        existing.id,
        after={"switch": binding.switch, "port": port_name, "vlan": vlan, "service_id": service_id},
    )
    return binding


def unbind_port(
    session: Session,
    actor: Actor,
    switch: str,
    port: str,
    vlan: int | None = None,
    *,
    now: datetime | None = None,
) -> PortBinding:
    """Free ``port`` of ``switch`` from its service; the port stays on record, unbound.

    ``vlan`` None: the port's one bound VLAN (refused, naming them, if several are bound). The
    network is not told: the port keeps whatever state it has (block or unblock it first).
    """
    row_switch = _switch(session, switch, lock=True)
    port_name = _text("port", port, 64, required=True)
    query = select(SwitchPort).where(SwitchPort.switch_id == row_switch.id, SwitchPort.port == port_name)
    if vlan is not None:
        query = query.where(SwitchPort.vlan == _vlan(vlan))
    rows = session.scalars(query.order_by(SwitchPort.vlan).with_for_update()).all()
    where = f"port {port_name!r}" + (f" vlan {vlan}" if vlan else "") + f" of switch {row_switch.name!r}"
    if not rows:
        raise ProvisioningAdminError(f"port: no {where} on record")
    bound = [r for r in rows if r.service_id is not None]
    if not bound:
        return PortBinding(row_switch.name, rows[0].port, rows[0].vlan, None, None, changed=False)
    if len(bound) > 1:
        raise ProvisioningAdminError(
            f"vlan: {where} is bound in VLANs {', '.join(str(r.vlan) for r in bound)}; say which with --vlan"
        )
    row = bound[0]
    service_id = row.service_id
    account = None if service_id is None else _account_of(session, service_id)
    row.service_id = None
    session.flush()
    _touch_services(session, [service_id], now or utcnow())
    audit.record(
        session,
        actor,
        "network.port.unbind",
        "switch_port",
        row.id,
        before={"switch": row_switch.name, "port": row.port, "vlan": row.vlan, "service_id": service_id},
        after={"service_id": None},
    )
    return PortBinding(row_switch.name, row.port, row.vlan, None, account, released=service_id)
