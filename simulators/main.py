"""The ``billing-sim`` entry point: run a protocol simulator from the command line.

argparse, not click: the simulators are test and demo tools that should start at once and
depend on as little as possible.  One subcommand per simulator (``bras``, ``bank``, ``switch``); each
parses its options into the simulator's config, runs for a bounded time and prints a
summary.  Exit codes: 0 ran, 1 bad input (subscriber file, spec), 2 usage error, 3 (``bank``)
the server broke a promise (a repeated payment answered another id, a forged one accepted).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

BRAS_EPILOG = """\
subscribers (--subscribers FILE_OR_SPEC):
  FILE      CSV with a header row, or TOML with [[subscriber]] tables; columns/keys:
            login, password, method (pap|chap), kind (pppoe|ipoe), mac, circuit_id, remote_id
            (circuit_id / remote_id are text, or 0x<hex> for binary Option 82 values)
  SPEC      LOGIN_FMT:PASSWORD_FMT:FIRST-LAST[:pap|chap,pppoe|ipoe], e.g. user%05d:pw%05d:1-1000
            (same as --generate)

CoA / Disconnect answers (RFC 5176), for requests that verify and name a session it has:
  ack       act (change the session's attributes / end it with an Admin-Reset Stop), then ACK
  nak       leave the session alone, NAK with --nak-error-cause (default 501
            Administratively-Prohibited; 404 Invalid-Request, 405 Unsupported-Service,
            506 Resources-Unavailable are other common ones)
  silent    no answer at all, to any request of that kind (a NAS down or overloaded)
  A session it does not have is always NAKed with 503 Session-Context-Not-Found.

example:
  billing-sim bras --server 127.0.0.1 --secret testing123 --generate 'user%05d:pw%05d:1-100:chap' \\
      --duration 60 --interim 10 --coa-port 3799 --coa-answer nak --nak-error-cause 405
"""


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be > 0")
        return value

    parse.__name__ = kind.__name__
    return parse


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: not a UDP port")
    return value


def _error_cause(text: str) -> int:
    value = int(text)
    if not 400 <= value <= 599:
        raise argparse.ArgumentTypeError(f"{text}: a NAK's Error-Cause is 400-599 (RFC 5176 §3.6)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing-sim", description="Protocol simulators for tests and demos."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bras = commands.add_parser(
        "bras",
        help="a BRAS: RADIUS auth + accounting client, CoA/Disconnect listener",
        description="Bring subscribers online against a RADIUS server, send accounting, answer CoA and "
        "Disconnect; stop after --duration and print a summary.",
        epilog=BRAS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bras.add_argument("--server", default="127.0.0.1", help="RADIUS server address (default %(default)s)")
    bras.add_argument(
        "--auth-port", type=_port, default=1812, help="authentication port (default %(default)s)"
    )
    bras.add_argument("--acct-port", type=_port, default=1813, help="accounting port (default %(default)s)")
    bras.add_argument("--secret", default="testing123", help="shared secret (default %(default)s)")
    who = bras.add_mutually_exclusive_group(required=True)
    who.add_argument("--subscribers", metavar="FILE_OR_SPEC", help="subscriber file or generate spec")
    who.add_argument(
        "--generate", metavar="SPEC", help="generated subscribers, e.g. user%%05d:pw%%05d:1-1000"
    )
    bras.add_argument("--count", type=_positive(int), help="use the first N subscribers (default: all)")
    bras.add_argument(
        "--duration", type=_positive(float), default=30.0, help="seconds to run (default %(default)s)"
    )
    bras.add_argument(
        "--interim",
        type=_positive(float),
        default=10.0,
        help="seconds between Interim-Updates (default %(default)s)",
    )
    bras.add_argument(
        "--coa-port", type=_port, default=3799, help="our CoA/Disconnect port, 0 = any (default %(default)s)"
    )
    bras.add_argument("--no-coa", action="store_true", help="do not listen for CoA/Disconnect")
    answers = ("ack", "nak", "silent")
    bras.add_argument(
        "--coa-answer",
        choices=answers,
        default="ack",
        help="how CoA-Requests for a known session are answered (default %(default)s; see below)",
    )
    bras.add_argument(
        "--disconnect-answer",
        choices=answers,
        default="ack",
        help="how Disconnect-Requests for a known session are answered (default %(default)s)",
    )
    bras.add_argument(
        "--nak-error-cause",
        type=_error_cause,
        default=501,
        metavar="N",
        help="Error-Cause of a 'nak' answer, 400-599 (default %(default)s Administratively-Prohibited)",
    )
    bras.add_argument(
        "--nas-ip", default="127.0.0.1", help="NAS-IP-Address and bind address (default %(default)s)"
    )
    bras.add_argument("--nas-identifier", default="bras-sim", help="NAS-Identifier (default %(default)s)")
    bras.add_argument(
        "--timeout",
        type=_positive(float),
        default=2.0,
        help="seconds to wait for each reply (default %(default)s)",
    )
    bras.add_argument(
        "--retries", type=_positive(int), default=3, help="sends per request (default %(default)s)"
    )
    bras.add_argument(
        "--workers", type=_positive(int), default=8, help="client threads (default %(default)s)"
    )
    bras.add_argument(
        "--login-rate",
        type=float,
        default=0.0,
        help="logins per second at start, 0 = all at once (default 0)",
    )
    bras.add_argument(
        "--churn",
        type=float,
        default=0.0,
        help="chance per interim that a session ends and comes back (0..1)",
    )
    bras.add_argument(
        "--reboot-after",
        type=_positive(float),
        help="seconds into the run: Accounting-On, then everyone re-logs",
    )
    bras.add_argument(
        "--download-rate",
        type=int,
        default=1_250_000,
        help="octets/s to each subscriber (default %(default)s)",
    )
    bras.add_argument(
        "--upload-rate", type=int, default=125_000, help="octets/s from each subscriber (default %(default)s)"
    )
    bras.add_argument("--no-stop-at-end", action="store_true", help="leave sessions open (no final Stops)")
    bras.add_argument(
        "--dictionary", type=Path, help="RADIUS dictionary (default: conf/dictionaries/dictionary)"
    )
    bras.add_argument("--seed", type=int, help="random seed (CHAP challenges, churn)")
    bras.set_defaults(handler=_run_bras)
    from simulators.bank import add_parser as add_bank_parser  # its heavy imports are lazy

    add_bank_parser(commands, _positive)
    from simulators.switch import add_parser as add_switch_parser  # pysnmp and Twisted load when run

    add_switch_parser(commands, _positive, _port)
    from simulators.nms import add_parser as add_nms_parser  # spyne loads when run

    add_nms_parser(commands, _positive, _port)
    return parser


def _run_bras(args: argparse.Namespace) -> int:
    from simulators import bras  # the pyrad import costs a little: only when running

    spec = args.generate or args.subscribers
    try:
        path = Path(spec)
        if args.subscribers and not path.is_file() and ":" not in spec:
            raise bras.SubscriberSpecError(
                f"{spec}: no such file, and not a LOGIN_FMT:PASSWORD_FMT:FIRST-LAST spec"
            )
        subs = (
            bras.load_subscribers(path)
            if args.subscribers and path.is_file()
            else bras.generate_subscribers(spec)
        )
        subs = bras.take(subs, args.count)
    except (bras.SubscriberSpecError, OSError) as exc:
        print(f"billing-sim bras: {exc}", file=sys.stderr)
        return 1
    extra = {"dictionary": args.dictionary} if args.dictionary else {}
    try:
        config = bras.BrasConfig(
            subscribers=subs,
            secret=args.secret.encode(),
            server=args.server,
            auth_port=args.auth_port,
            acct_port=args.acct_port,
            nas_ip=args.nas_ip,
            nas_identifier=args.nas_identifier,
            coa_port=None if args.no_coa else args.coa_port,
            interim=args.interim,
            timeout=args.timeout,
            retries=args.retries,
            workers=args.workers,
            download_rate=args.download_rate,
            upload_rate=args.upload_rate,
            churn=args.churn,
            reboot_after=args.reboot_after,
            login_rate=args.login_rate,
            stop_at_end=not args.no_stop_at_end,
            coa_answer=args.coa_answer,
            disconnect_answer=args.disconnect_answer,
            nak_error_cause=args.nak_error_cause,
            seed=args.seed,
            **extra,
        )
        simulator = bras.BrasSimulator(config)
    except (ValueError, OSError) as exc:
        print(f"billing-sim bras: {exc}", file=sys.stderr)
        return 1
    coa = simulator.coa_address
    print(
        f"bras: {len(subs)} subscribers -> {args.server} auth {args.auth_port} acct {args.acct_port}; "
        f"CoA on {f'{coa[0]}:{coa[1]}' if coa else 'off'}"
        f"{f' (CoA {args.coa_answer}, Disconnect {args.disconnect_answer})' if coa else ''}; "
        f"{args.duration:g} s",
        flush=True,
    )
    try:
        stats = simulator.run(args.duration)
    except KeyboardInterrupt:
        simulator.close()
        stats = simulator.stats
        print("interrupted", file=sys.stderr)
    print(stats.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
