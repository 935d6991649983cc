"""``billing-sim switch``: a fake access switch (SNMP agent + SSH CLI over one port state).

Both faces run in this process on one asyncio event loop with Twisted's asyncio reactor on
top (pysnmp needs asyncio, conch needs the reactor), bound to 127.0.0.1 only.  The bound
ports are printed on the first line (``switch: snmp 127.0.0.1:P ssh 127.0.0.1:Q ports N``) so a
test or the demo can start it with port 0.  It stops after ``--duration`` seconds or on
SIGTERM / SIGINT and prints the final port states.
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
        help="an access switch: SNMP agent (IF-MIB) and Cisco IOS-style SSH CLI sharing port state",
        description="Serve a writable IF-MIB subset over SNMP v1/v2c (community 'public' read-only, "
        "'private' read-write) and a Cisco IOS-style CLI over SSH, on 127.0.0.1; both change the same "
        "ports. Prints the bound ports, runs for --duration seconds.",
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
    switch.add_argument("--hostname", default="switch1", help="CLI prompt name (default %(default)s)")
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

    from simulators.switch_snmp import SwitchSnmpAgent
    from simulators.switch_ssh import load_or_create_host_key, make_factory
    from simulators.switch_state import SwitchState

    state = SwitchState(args.ports, hostname=args.hostname)
    agent = SwitchSnmpAgent(state, HOST, args.snmp_port, loop=loop)
    ssh_factory = make_factory(
        state, args.username, args.password, args.secret, load_or_create_host_key(args.host_key)
    )
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
