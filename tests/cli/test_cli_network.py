"""``billing-admin switch``: add / set / list / show switch records, bind and unbind ports.

Also checks that what staff record is what the AAA server identifies a subscriber by (Option 82:
the switch's remote-id and the port), and what the provisioning worker loads to reach the port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from aaa.identification import PortKey
from aaa.snapshot import load_snapshot
from billing import accounts
from billing.db.lifecycle import ProvisioningTask
from billing.db.services import Service
from billing.provisioning_outbox import claim
from nms_adapters.switches import SUPPORTED_DEVICE_TYPES

if TYPE_CHECKING:
    from conftest import Cli

SW7 = ("switch", "add", "sw-7", "--address", "10.0.7.2", "--device-type", "snmp")


@dataclass
class Network:
    """The CLI and two Internet services: Ann's (100001) and Bo's (100002)."""

    cli: Cli
    ann: int
    bo: int


@pytest.fixture
def network(populated: Cli) -> Network:
    cli = populated
    cli.ok("subscribers", "create", "--name", "Bo Chan", "--category", "residential", "--region", "north")
    ids = []
    with Session(cli.engine) as s, s.begin():
        for number in ("100001", "100002"):
            service = Service(account_id=accounts.find(s, number).id, kind="internet", status="active")
            s.add(service)
            s.flush()
            ids.append(service.id)
    return Network(cli, *ids)


def test_add_with_an_unknown_device_type_is_refused_listing_the_supported_ones(network: Network) -> None:
    cli = network.cli
    result = cli("switch", "add", "sw-7", "--address", "10.0.7.2", "--device-type", "junos")
    assert result.exit_code == 1 and "unknown device type 'junos'" in result.stderr
    assert all(t in result.stderr for t in SUPPORTED_DEVICE_TYPES), result.stderr
    assert cli.count("switches") == 0 and cli.count("audit_log", "WHERE action LIKE 'network.%'") == 0


def test_add_set_list_and_show_keep_the_record_and_audit_each_change(network: Network) -> None:
    cli = network.cli
    added = cli.json(
        *SW7, "--credentials", "access", "--vendor", "Cisco", "--model", "Catalyst 2960",
        "--remote-id", "001A.2B3C.4D5E", "--snmp-port", "1161",
    )  # fmt: skip
    assert (added["name"], added["device_type"], added["credentials"], added["snmp_port"]) == (
        "sw-7",
        "snmp",
        "access",
        1161,
    )
    assert added["remote_id"] == "00:1a:2b:3c:4d:5e"  # canonical, as the AAA server compares it
    changed = cli.json(
        "switch", "set", "sw-7", "--device-type", "cisco_ios", "--ssh-port", "2222", "--vendor", ""
    )
    assert (changed["device_type"], changed["ssh_port"], changed["vendor"]) == ("cisco_ios", 2222, None)
    assert (changed["model"], changed["snmp_port"]) == ("Catalyst 2960", 1161)  # not given: kept
    [update] = cli.json("audit", "search", "--action", "network.switch.update")
    assert update["before"] == {"device_type": "snmp", "vendor": "Cisco", "ssh_port": None}
    assert update["after"] == {"device_type": "cisco_ios", "vendor": None, "ssh_port": 2222}
    assert cli.count("audit_log", "WHERE action = 'network.switch.add'") == 1
    cli.ok("switch", "add", "sw-1", "--address", "sw-1.example.net", "--device-type", "huawei")
    assert [s["name"] for s in cli.json("switch", "list", user="helpdesk")] == ["sw-1", "sw-7"]
    shown = cli.ok("switch", "show", "sw-7", user="helpdesk").stdout
    assert "cisco_ios" in shown and "00:1a:2b:3c:4d:5e" in shown and "2222" in shown
    for args, message in [
        (("switch", "add", "sw-7", "--address", "x", "--device-type", "snmp"), "'sw-7' exists already"),
        (("switch", "add", "sw-8", "--address", "x", "--device-type", "snmp",
          "--remote-id", "00-1a-2b-3c-4d-5e"), "'00:1a:2b:3c:4d:5e' is the remote-id of switch 'sw-7'"),
        (("switch", "set", "sw-9", "--vendor", "x"), "no switch 'sw-9'"),
        (("switch", "set", "sw-1", "--device-type", "ios"), "supported: cisco_ios, huawei, snmp"),
        (("switch", "set", "sw-1", "--address", ""), "address: must not be empty"),
    ]:  # fmt: skip
        result = cli(*args)
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
    assert cli.count("switches") == 2


def test_an_unknown_credentials_name_is_recorded_with_a_warning(network: Network) -> None:
    result = network.cli(*SW7, "--credentials", "nowhere")
    assert result.exit_code == 0
    assert "credentials 'nowhere' is not in this config's [[provisioning.credentials]]" in result.stderr


def test_bind_and_unbind_a_port_as_aaa_and_the_worker_see_it(network: Network) -> None:
    cli = network.cli
    cli.ok(*SW7, "--remote-id", "00:1a:2b:3c:4d:5e")
    bound = cli.json("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.ann), "--vlan", "100")
    assert (bound["service_id"], bound["account"], bound["vlan"], bound["changed"]) == (
        network.ann,
        "100001",
        100,
        True,
    )
    snapshot = load_snapshot(cli.engine)
    found = snapshot.by_port(PortKey("00:1a:2b:3c:4d:5e", "Gi0/3", 100))
    assert found is not None and found.service_id == network.ann
    with Session(cli.engine) as s, s.begin():  # the worker loads the port with the switch to reach it
        s.add(ProvisioningTask(idempotency_key="test:1", service_id=network.ann, network="deny"))
        s.flush()
        [work] = claim(s, "test-worker", datetime.now(UTC), 60.0, 10)
    [port] = work.ports
    assert (port.switch, port.address, port.device_type, port.port) == ("sw-7", "10.0.7.2", "snmp", "Gi0/3")
    again = cli.ok("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.ann), "--vlan", "100").stdout
    assert "(already)" in again
    shown = cli.json("switch", "show", "sw-7")
    assert [(p["port"], p["vlan"], p["service_id"], p["account"]) for p in shown["port_rows"]] == [
        ("Gi0/3", 100, network.ann, "100001")
    ]
    unbound = cli.json("switch", "unbind", "sw-7", "Gi0/3")
    assert (unbound["service_id"], unbound["released"], unbound["changed"]) == (None, network.ann, True)
    assert load_snapshot(cli.engine).by_port(PortKey("00:1a:2b:3c:4d:5e", "Gi0/3", 100)) is None
    assert "was not bound" in cli.ok("switch", "unbind", "sw-7", "Gi0/3").stdout
    listed = cli.json("switch", "list")
    assert (listed[0]["ports"], listed[0]["bound"]) == (1, 0)  # the port stays on record, free
    assert cli.count("audit_log", "WHERE action IN ('network.port.bind', 'network.port.unbind')") == 2
    cli.ok("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.bo), "--vlan", "100")


def test_binding_a_port_bound_to_another_service_is_refused_naming_it(network: Network) -> None:
    cli = network.cli
    cli.ok(*SW7)
    cli.ok("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.ann))
    taken = cli("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.bo))
    assert taken.exit_code == 1
    assert f"port 'Gi0/3' of switch 'sw-7' is bound to service {network.ann} (account 100001)" in taken.stderr
    twice = cli("switch", "bind", "sw-7", "Gi0/4", "--service", str(network.ann))
    assert twice.exit_code == 1 and f"service {network.ann} is bound to port 'Gi0/3'" in twice.stderr
    for args, message in [
        (("bind", "sw-7", "Gi0/5", "--service", "999999"), "no service 999999"),
        (("bind", "sw-9", "Gi0/5", "--service", str(network.bo)), "no switch 'sw-9'"),
        (("unbind", "sw-7", "Gi0/9"), "no port 'Gi0/9' of switch 'sw-7' on record"),
    ]:
        result = cli("switch", *args)
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
    assert cli.json("switch", "list")[0]["ports"] == 1


def test_support_may_look_but_not_change_switches(network: Network) -> None:
    cli = network.cli
    cli.ok(*SW7)
    denied = cli("switch", "bind", "sw-7", "Gi0/3", "--service", str(network.ann), user="helpdesk")
    assert denied.exit_code == 3 and "network.manage" in denied.stderr and "switch bind" in denied.stderr
    assert cli(*SW7[:2], "sw-8", *SW7[3:], user="helpdesk").exit_code == 3
    assert cli.count("audit_log", "WHERE action = 'permission.denied' AND operator_login = 'helpdesk'") == 2
    assert cli.json("switch", "show", "sw-7", user="helpdesk")["port_rows"] == []


def test_a_changed_remote_id_marks_the_bound_service_changed_for_the_aaa_snapshot(network: Network) -> None:
    """SQLite has no LISTEN: the AAA snapshot polls services.updated_at, so a binding bumps it."""
    cli = network.cli
    cli.ok(*SW7, "--remote-id", "sw-7.example")
    cli.ok("switch", "bind", "sw-7", "1/3", "--service", str(network.bo))
    since = datetime.now(UTC)
    cli.ok("switch", "set", "sw-7", "--remote-id", "sw-7b.example")
    with Session(cli.engine) as s:
        bumped = s.get(Service, network.bo)
        other = s.get(Service, network.ann)
        assert bumped is not None and other is not None
        assert bumped.updated_at >= since and other.updated_at < since
