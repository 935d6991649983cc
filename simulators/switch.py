"""``billing-sim switch``: a fake access switch (SNMP agent + SSH CLI over one port state).

Both faces run in this process on one asyncio event loop with Twisted's asyncio reactor on
top (pysnmp needs asyncio, conch needs the reactor), bound to 127.0.0.1 only.  The bound
ports are printed on the first line (``switch: snmp 127.0.0.1:P ssh 127.0.0.1:Q ports N``) so a
test or the demo can start it with port 0.  ``--cli huawei`` makes the SSH face Huawei VRP-style
instead of Cisco IOS-style (same port state, port n = GigabitEthernet0/0/n).  It stops after
``--duration`` seconds or on SIGTERM / SIGINT and prints the final port states.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

HOST = "127.0.0.1"


def add_parser(commands: Any, positive: Callable[[type], Any], port: Callable[[str], int]) -> None:
    """Register the ``switch`` subcommand (``simulators.main``)."""
    switch = commands.add_parser(
        "switch",
        help="an access switch: SNMP agent (IF-MIB) and a Cisco IOS- or Huawei-style SSH CLI, one port state",
        description="Serve a writable IF-MIB subset over SNMP v1/v2c (community 'public' read-only, "
        "'private' read-write) and v3 (one read-write USM user, SHA/AES-128), and a Cisco IOS-style or "
        "Huawei VRP-style CLI over SSH, on 127.0.0.1; both change the same ports. Prints the bound "
        "ports, runs for --duration seconds.",
    )
    switch.add_argument(
        "--ports", type=positive(int), default=8, help="number of ports (default %(default)s)"
    )
    switch.add_argument(
        "--snmp-port", type=port, default=1161, help="UDP port, 0 = any (default %(default)s)"
    )
    switch.add_argument("--ssh-port", type=port, default=2222, help="TCP port, 0 = any (default %(default)s)")
    switch.add_argument("--username", default="admin", help="SSH user (default %(default)s)")
    switch.add_argument("--password", default="admin", help="SSH password (default %(default)s)")
    switch.add_argument("--secret", default="enable", help="enable secret (default %(default)s)")
    switch.add_argument(
        "--cli", choices=("cisco_ios", "huawei"), default="cisco_ios", help="CLI style (default %(default)s)"
    )
    switch.add_argument("--hostname", help="CLI prompt name (default switch1, or HUAWEI with --cli huawei)")
    switch.add_argument("--v3-user", default="netops", help="SNMPv3 user, authPriv (default %(default)s)")
    switch.add_argument(
        "--v3-auth-key", default="auth-pass-1", help="its HMAC-SHA passphrase (default %(default)s)"
    )
    switch.add_argument(
        "--v3-priv-key", default="priv-pass-1", help="its AES-128 passphrase (default %(default)s)"
    )
    switch.add_argument(
        "--host-key", type=Path, help="RSA host key file (created if missing; default: fresh)"
    )
    switch.add_argument(
        "--duration", type=positive(float), default=300.0, help="seconds to run (default %(default)s)"
    )
    switch.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until ``args.duration`` passes or a signal arrives; print the port states at the end."""
    import asyncio  # here, not at the top: ``billing-sim --help`` should not pay for it

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    from simulators.switch_huawei import HUAWEI_PORT_PREFIX
    from simulators.switch_snmp import SwitchSnmpAgent
    from simulators.switch_ssh import load_or_create_host_key, make_factory
    from simulators.switch_state import PORT_PREFIX, SwitchState

    hostname = args.hostname or ("HUAWEI" if args.cli == "huawei" else "switch1")
    prefix = HUAWEI_PORT_PREFIX if args.cli == "huawei" else PORT_PREFIX  # what SNMP ifName/ifDescr say
    state = SwitchState(args.ports, hostname=hostname, port_prefix=prefix)
    v3_user = (args.v3_user, args.v3_auth_key, args.v3_priv_key)
    agent = SwitchSnmpAgent(state, HOST, args.snmp_port, loop=loop, v3_user=v3_user)
    host_key = load_or_create_host_key(args.host_key)
    ssh_factory = make_factory(state, args.username, args.password, args.secret, host_key, args.cli)
    listener = reactor.listenTCP(args.ssh_port, ssh_factory, interface=HOST)  # type: ignore[attr-defined]
    print(
        f"switch: snmp {HOST}:{agent.port} ssh {HOST}:{listener.getHost().port} ports {args.ports}",
        flush=True,
    )
    reactor.callLater(args.duration, reactor.stop)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", listener.stopListening)  # type: ignore[attr-defined]
    try:
        reactor.run()  # type: ignore[attr-defined]
    finally:
        agent.close()  # cancels pysnmp's timer task: let it and any other task finish before closing
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
    for port in state.ports():
        print(f"{port.name} admin {port.admin.name.lower()} alias {port.alias!r} rate {port.rate_limit_kbps}")
    return 0
