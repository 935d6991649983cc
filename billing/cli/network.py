"""``billing-admin switch``: the access switches billing controls, and which service each port serves.

``add`` / ``set`` record a switch (address, device type picking the driver, a credentials name
from ``[[provisioning.credentials]]``, vendor, model, Option 82 remote-id, SNMP/SSH ports);
``bind`` / ``unbind`` tie a port (and VLAN) to a service. These need ``network.manage`` and
are audited; ``list`` and ``show`` need ``network.read``. The work is
:mod:`billing.switch_records`; this module only parses options and renders results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import click

from billing.cli import output
from billing.cli.context import AppState

if TYPE_CHECKING:
    pass

T = TypeVar("T")

PORT = click.IntRange(1, 65535)


@click.group(
    "switch",
    epilog="\b\nExamples:\n"
    "  billing-admin switch add sw-7 --address 10.0.7.2 --device-type snmp --credentials access \\\n"
    "      --vendor Cisco --model 'Catalyst 2960' --remote-id 00:1a:2b:3c:4d:5e\n"
    "  billing-admin switch set sw-7 --device-type cisco_ios --ssh-port 2222\n"
    "  billing-admin switch bind sw-7 Gi0/3 --service 42\n"
    "  billing-admin switch unbind sw-7 Gi0/3\n"
    "  billing-admin switch show sw-7",
)
def group() -> None:
    """Access switches: how billing reaches them, and the service bound to each port."""


def _warn_unknown_credentials(state: AppState, name: str | None) -> None:
    """Secrets live in the config, so a name it lacks is allowed (another host's config) but told."""
    if name and state.config().provisioning.credentials_named(name) is None:
        click.echo(
            f"warning: credentials {name!r} is not in this config's [[provisioning.credentials]]; "
            "the worker cannot log in to the switch until it is",
            err=True,
        )


def _render_switch(info: Any) -> None:
    output.fields(
        f"switch {info.name}",
        [
            ("address", info.address),
            ("device type", info.device_type or "(not controlled by billing)"),
            ("credentials", info.credentials),
            ("vendor", info.vendor),
            ("model", info.model),
            ("Option 82 remote-id", info.remote_id),
            ("SNMP port", info.snmp_port or "161 (standard)"),
            ("SSH port", info.ssh_port or "22 (standard)"),
            ("ports on record", info.ports),
            ("ports bound", info.bound),
        ],
    )


@group.command("add")
@click.argument("name")
@click.option("--address", required=True, help="Management address (IP or host name).")
@click.option("--device-type", required=True, help="Driver: one of nms_adapters.switches' device types.")
@click.option(
    "--credentials", default=None, help="Name of a [[provisioning.credentials]] entry of the config."
)
@click.option("--vendor", default=None)
@click.option("--model", default=None)
@click.option("--remote-id", default=None, help="What the switch sends as DHCP Option 82 remote-id.")
@click.option("--snmp-port", type=PORT, default=None, help="SNMP port if not 161.")
@click.option("--ssh-port", type=PORT, default=None, help="SSH port if not 22.")
@output.json_option
@click.pass_obj
def add(
    state: AppState,
    name: str,
    address: str,
    device_type: str,
    credentials: str | None,
    vendor: str | None,
    model: str | None,
    remote_id: str | None,
    snmp_port: int | None,
    ssh_port: int | None,
    as_json: bool,
) -> None:
    """Record a switch billing controls (an unknown device type is refused, listing the known)."""
    from billing.switch_records import NETWORK_MANAGE, add_switch

    _warn_unknown_credentials(state, credentials)
    info = state.run(
        NETWORK_MANAGE,
        "switch add",
        lambda session, actor: add_switch(
            session,
            actor,
            name,
            address=address,
            device_type=device_type,
            credentials=credentials,
            vendor=vendor,
            model=model,
            remote_id=remote_id,
            snmp_port=snmp_port,
            ssh_port=ssh_port,
        ),
    )
    output.emit(info, as_json, _render_switch)


def _text_change(value: str | None) -> Any:
    """An option of ``set``: not given keeps the field, ``""`` clears it."""
    from billing.switch_records import KEEP

    if value is None:
        return KEEP
    return value or None


def _port_change(value: int | None) -> Any:
    """``--snmp-port`` / ``--ssh-port`` of ``set``: not given keeps it, 0 goes back to the standard."""
    from billing.switch_records import KEEP

    if value is None:
        return KEEP
    return value or None


@group.command("set")
@click.argument("name")
@click.option("--address", default=None, help="Management address (IP or host name).")
@click.option("--device-type", default=None, help="Driver device type; '' means billing does not control it.")
@click.option("--credentials", default=None, help="[[provisioning.credentials]] name; '' clears it.")
@click.option("--vendor", default=None, help="'' clears it.")
@click.option("--model", default=None, help="'' clears it.")
@click.option("--remote-id", default=None, help="Option 82 remote-id; '' clears it.")
@click.option("--snmp-port", type=click.IntRange(0, 65535), default=None, help="0: the standard 161.")
@click.option("--ssh-port", type=click.IntRange(0, 65535), default=None, help="0: the standard 22.")
@output.json_option
@click.pass_obj
def set_(
    state: AppState,
    name: str,
    address: str | None,
    device_type: str | None,
    credentials: str | None,
    vendor: str | None,
    model: str | None,
    remote_id: str | None,
    snmp_port: int | None,
    ssh_port: int | None,
    as_json: bool,
) -> None:
    """Change the given fields of a switch; the others stay as they are."""
    from billing.switch_records import KEEP, NETWORK_MANAGE, update_switch

    _warn_unknown_credentials(state, credentials)
    info = state.run(
        NETWORK_MANAGE,
        "switch set",
        lambda session, actor: update_switch(
            session,
            actor,
            name,
            address=KEEP if address is None else address,
            device_type=_text_change(device_type),
            credentials=_text_change(credentials),
            vendor=_text_change(vendor),
            model=_text_change(model),
            remote_id=_text_change(remote_id),
            snmp_port=_port_change(snmp_port),
            ssh_port=_port_change(ssh_port),
        ),
    )
    output.emit(info, as_json, _render_switch)


@group.command("list")
@output.json_option
@click.pass_obj
def list_(state: AppState, as_json: bool) -> None:
    """Every switch by name, with its driver and how many ports are on record and bound."""
    from billing.switch_records import NETWORK_READ, list_switches

    rows = state.run(NETWORK_READ, "switch list", lambda session, _: list_switches(session))

    def render(found: list[Any]) -> None:
        output.table(
            f"switches ({len(found)})",
            [
                "name",
                "address",
                "device type",
                "credentials",
                "vendor",
                "model",
                "remote-id",
                "ports",
                "bound",
            ],
            [
                (
                    s.name,
                    s.address,
                    s.device_type,
                    s.credentials,
                    s.vendor,
                    s.model,
                    s.remote_id,
                    s.ports,
                    s.bound,
                )
                for s in found
            ],
            numeric=("ports", "bound"),
        )

    output.emit(rows, as_json, render)


@group.command("show")
@click.argument("name")
@output.json_option
@click.pass_obj
def show(state: AppState, name: str, as_json: bool) -> None:
    """A switch and its ports, with the service and account bound to each."""
    from billing.switch_records import NETWORK_READ, switch_detail

    found = state.run(NETWORK_READ, "switch show", lambda session, _: switch_detail(session, name))

    def render(detail: Any) -> None:
        _render_switch(detail.switch)
        output.table(
            f"ports of {detail.switch.name}",
            ["port", "vlan", "service", "account"],
            [(p.port, p.vlan or None, p.service_id, p.account) for p in detail.port_rows],
            numeric=("vlan", "service"),
        )

    output.emit(found, as_json, render)


def _where(b: Any) -> str:
    return f"switch {b.switch} port {b.port}" + (f" vlan {b.vlan}" if b.vlan else "")


@group.command("bind")
@click.argument("name")
@click.argument("port")
@click.option("--service", "service_id", type=int, required=True, metavar="ID", help="The service to bind.")
@click.option("--vlan", type=click.IntRange(0, 4094), default=0, show_default=True, help="0: no VLAN.")
@output.json_option
@click.pass_obj
def bind(state: AppState, name: str, port: str, service_id: int, vlan: int, as_json: bool) -> None:
    """Bind PORT of switch NAME to a service (refused if another service has it).

    PORT is spelled as the switch names it in the Option 82 circuit-id.
    """
    from billing.switch_records import NETWORK_MANAGE, bind_port

    found = state.run(
        NETWORK_MANAGE,
        "switch bind",
        lambda session, actor: bind_port(session, actor, name, port, service_id, vlan),
    )

    def render(b: Any) -> None:
        already = "" if b.changed else " (already)"
        output.done(f"{_where(b)} bound to service {b.service_id} (account {b.account}){already}")

    output.emit(found, as_json, render)


@group.command("unbind")
@click.argument("name")
@click.argument("port")
@click.option("--vlan", type=click.IntRange(0, 4094), default=None, help="The VLAN, if the port has several.")
@output.json_option
@click.pass_obj
def unbind(state: AppState, name: str, port: str, vlan: int | None, as_json: bool) -> None:
    """Free PORT of switch NAME from its service (the port stays on record; the switch is not told)."""
    from billing.switch_records import NETWORK_MANAGE, unbind_port

    found = state.run(
        NETWORK_MANAGE,
        "switch unbind",
        lambda session, actor: unbind_port(session, actor, name, port, vlan),
    )

    def render(b: Any) -> None:
        if b.changed:
            output.done(f"{_where(b)} unbound from service {b.released} (account {b.account})")
        else:
            output.done(f"{_where(b)} was not bound")

    output.emit(found, as_json, render)
