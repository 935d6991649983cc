"""SSH face of the simulated switch: a Cisco IOS-style CLI over twisted.conch, good enough for netmiko.

Two parts: :class:`IosCli`, a pure interpreter (a line in, output text and the new prompt out,
no I/O) that changes the shared :class:`~simulators.switch_state.SwitchState`; and the conch
wiring (:func:`make_factory`): password authentication, one shell channel per session, the
characters echoed back as a terminal would, lines ended by CR, LF or CRLF.

Modes and commands (words may be abbreviated, as on IOS: ``conf t``, ``int gi0/1``, ``no shut``):

- user ``switch1>``: ``enable`` (asks for the secret), ``terminal length|width N``, ``show …``, ``exit``
- privileged ``switch1#``: also ``configure terminal``, ``write memory``, ``disable``
- ``switch1(config)#``: ``interface GigabitEthernet0/N``, ``end``, ``exit``
- ``switch1(config-if)#``: ``shutdown``, ``no shutdown``, ``description TEXT``, ``no description``,
  ``rate-limit input|output BPS NORMAL-BURST MAX-BURST conform-action transmit exceed-action drop``
  (IOS committed access rate; 8000..10000000000 bit/s), ``no rate-limit input|output …``,
  ``rate-limit KBPS`` (simulator-only), ``end``, ``exit``

The simulated port has one rate limit: either direction's ``rate-limit`` sets it, either ``no
rate-limit`` clears it, and the running configuration shows both directions while it is set.

Anything else answers ``% Invalid input detected at '^' marker.`` and leaves the mode as it was.

``billing-sim switch --cli huawei`` serves :class:`~simulators.switch_huawei.HuaweiCli` (Huawei
VRP style) on the same wiring instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.conch import avatar
from twisted.conch.error import ConchError
from twisted.conch.interfaces import ISession
from twisted.conch.ssh import factory, keys, session
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol
from zope.interface import implementer

from simulators.switch_huawei import HuaweiCli
from simulators.switch_state import AdminStatus, SwitchState, UnknownPort

__all__ = ["CLI_FLAVOURS", "CliInterpreter", "IosCli", "Mode", "load_or_create_host_key", "make_factory"]

INVALID = "% Invalid input detected at '^' marker."
CLI_FLAVOURS = ("cisco_ios", "huawei")
CAR_MIN_BPS, CAR_MAX_BPS = 8000, 10_000_000_000
_CAR_ACTIONS = ("conform-action", "transmit", "exceed-action", "drop")


class CliInterpreter(Protocol):
    """What the SSH wiring needs of a vendor's interpreter (:class:`IosCli`, :class:`HuaweiCli`)."""

    @property
    def prompt(self) -> str: ...

    awaiting_secret: bool  # the next line is a secret: do not echo it
    closed: bool  # the session ended (``exit`` / ``quit``)

    def execute(self, line: str) -> str: ...

    def ctrl_z(self) -> None: ...


class Mode(Enum):
    """CLI modes, each with its prompt suffix."""

    USER = ">"
    ENABLE = "#"
    CONFIG = "(config)#"
    CONFIG_IF = "(config-if)#"


def _matches(tokens: list[str], words: tuple[str, ...]) -> bool:
    """Each token abbreviates the word at its place (IOS style: ``conf t`` = ``configure terminal``)."""
    return len(tokens) == len(words) and all(
        w.startswith(t.lower()) for t, w in zip(tokens, words, strict=True)
    )


@dataclass
class IosCli:
    """The command interpreter of one session; :meth:`execute` runs one line."""

    state: SwitchState
    secret: str = ""
    mode: Mode = Mode.USER
    interface: int | None = None
    awaiting_secret: bool = False
    closed: bool = False

    @property
    def prompt(self) -> str:
        """What the device shows before the next command."""
        return "Password: " if self.awaiting_secret else f"{self.state.hostname}{self.mode.value}"

    def ctrl_z(self) -> None:
        """Ctrl-Z: ``end``."""
        self.execute("end")

    def execute(self, line: str) -> str:
        """Run one input line; return its output (no trailing newline, may be empty)."""
        if self.awaiting_secret:
            self.awaiting_secret = False
            if hmac.compare_digest(line.encode(), self.secret.encode()):
                self.mode = Mode.ENABLE
                return ""
            return "% Access denied"
        tokens = line.split()
        if not tokens:
            return ""
        handler = self._find(tokens)
        if handler is None:
            return f"{' ' * (len(self.prompt) + len(line) - len(line.lstrip()))}^\n{INVALID}"
        return handler(tokens)

    def _find(self, tokens: list[str]) -> Callable[[list[str]], str] | None:
        first = tokens[0].lower()
        if first == "do" and self.mode in (Mode.CONFIG, Mode.CONFIG_IF) and len(tokens) > 1:
            return self._show if "show".startswith(tokens[1].lower()) else None
        if _matches(tokens, ("end",)) and self.mode in (Mode.CONFIG, Mode.CONFIG_IF):
            return self._end
        if _matches(tokens, ("exit",)):
            return self._exit
        if self.mode in (Mode.USER, Mode.ENABLE):
            return self._find_exec(tokens)
        if self.mode is Mode.CONFIG:
            return self._find_config(tokens)
        return self._find_config_if(tokens)

    def _find_exec(self, tokens: list[str]) -> Callable[[list[str]], str] | None:
        if len(tokens) == 3 and _matches(tokens[:2], ("terminal", "length")) and tokens[2].isdigit():
            return lambda _: ""
        if len(tokens) == 3 and _matches(tokens[:2], ("terminal", "width")) and tokens[2].isdigit():
            return lambda _: ""
        if len(tokens) >= 2 and len(tokens[0]) >= 2 and "show".startswith(tokens[0].lower()):
            return self._show
        if _matches(tokens, ("enable",)):
            return self._enable
        if self.mode is Mode.ENABLE:
            if _matches(tokens, ("disable",)):
                return self._disable
            if _matches(tokens, ("configure", "terminal")) and len(tokens[0]) >= 4:
                return self._configure
            if _matches(tokens, ("write", "memory")) or _matches(tokens, ("write",)):
                return self._write
        return None

    def _find_config(self, tokens: list[str]) -> Callable[[list[str]], str] | None:
        if len(tokens) >= 2 and _matches(tokens[:1], ("interface",)):
            return self._interface
        return None

    def _find_config_if(self, tokens: list[str]) -> Callable[[list[str]], str] | None:
        if _matches(tokens, ("shutdown",)) and len(tokens[0]) >= 4:
            return lambda _: self._admin(AdminStatus.DOWN)
        if _matches(tokens, ("no", "shutdown")) and len(tokens[1]) >= 4:
            return lambda _: self._admin(AdminStatus.UP)
        if len(tokens) >= 2 and _matches(tokens[:1], ("description",)) and len(tokens[0]) >= 4:
            return self._description
        if _matches(tokens, ("no", "description")) and len(tokens[1]) >= 4:
            return lambda _: self._set_alias("")
        if len(tokens) == 2 and _matches(tokens[:1], ("rate-limit",)) and tokens[1].isdigit():
            return lambda t: self._rate_limit(int(t[1]))
        if _car(tokens):
            return lambda t: self._rate_limit(int(t[2]) // 1000)
        if len(tokens) >= 3 and _matches(tokens[:3], ("no", "rate-limit", "input")):
            return lambda _: self._rate_limit(0)
        if len(tokens) >= 3 and _matches(tokens[:3], ("no", "rate-limit", "output")):
            return lambda _: self._rate_limit(0)
        if len(tokens) >= 2 and _matches(tokens[:1], ("interface",)):
            return self._interface
        return None

    # ------------------------------------------------------------------ actions

    def _enable(self, _: list[str]) -> str:
        if self.mode is Mode.USER:
            if self.secret:
                self.awaiting_secret = True
            else:
                self.mode = Mode.ENABLE
        return ""

    def _disable(self, _: list[str]) -> str:
        self.mode = Mode.USER
        return ""

    def _configure(self, _: list[str]) -> str:
        self.mode = Mode.CONFIG
        return "Enter configuration commands, one per line.  End with CNTL/Z."

    def _end(self, _: list[str]) -> str:
        self.mode, self.interface = Mode.ENABLE, None
        return ""

    def _exit(self, _: list[str]) -> str:
        if self.mode is Mode.CONFIG_IF:
            self.mode, self.interface = Mode.CONFIG, None
        elif self.mode is Mode.CONFIG:
            self.mode = Mode.ENABLE
        else:
            self.closed = True
        return ""

    def _write(self, _: list[str]) -> str:
        self.state.mark_saved()
        return "Building configuration...\n[OK]"

    def _interface(self, tokens: list[str]) -> str:
        try:
            self.interface = self.state.index_of("".join(tokens[1:]))
        except UnknownPort:
            return f"{' ' * len(self.prompt)}^\n{INVALID}"
        self.mode = Mode.CONFIG_IF
        return ""

    def _admin(self, admin: AdminStatus) -> str:
        assert self.interface is not None
        self.state.set_admin(self.interface, admin)
        return ""

    def _description(self, tokens: list[str]) -> str:
        return self._set_alias(" ".join(tokens[1:])[:64])

    def _set_alias(self, text: str) -> str:
        assert self.interface is not None
        self.state.set_alias(self.interface, text)
        return ""

    def _rate_limit(self, kbps: int) -> str:
        assert self.interface is not None
        self.state.set_rate_limit(self.interface, kbps)
        return ""

    def _show(self, tokens: list[str]) -> str:
        words = tokens[1:] if tokens[0].lower() == "do" else tokens
        args = words[1:]
        if len(args) == 2 and _matches(args, ("interfaces", "status")):
            return self._show_status()
        if len(args) >= 3 and _matches(args[:2], ("running-config", "interface")):
            try:
                return self._show_running_interface(self.state.index_of("".join(args[2:])))
            except UnknownPort:
                pass
        elif len(args) == 1 and _matches(args, ("running-config",)):
            return "\n".join(self._show_running_interface(p.if_index) for p in self.state.ports())
        return f"{' ' * len(self.prompt)}^\n{INVALID}"

    def _show_status(self) -> str:
        lines = [f"{'Port':<10}{'Name':<19}{'Status':<13}{'Vlan':<11}{'Duplex':<7}{'Speed':<7}Type"]
        for port in self.state.ports():
            short = port.name.replace("GigabitEthernet", "Gi")
            status = "connected" if port.oper is AdminStatus.UP else "disabled"
            row = f"{short:<10}{port.alias[:18]:<19}{status:<13}{'1':<11}{'a-full':<7}{'a-1000':<7}"
            lines.append(row + "10/100/1000BaseTX")
        return "\n".join(lines)

    def _show_running_interface(self, if_index: int) -> str:
        port = self.state.port(if_index)
        lines = ["Building configuration...", "", "Current configuration : 96 bytes", "!"]
        lines.append(f"interface {port.name}")
        if port.alias:
            lines.append(f" description {port.alias}")
        if port.rate_limit_kbps:
            bps = port.rate_limit_kbps * 1000
            normal = min(max(bps * 3 // 16, 1000), 512_000_000)  # 1.5 s of traffic, in bytes
            for direction in ("input", "output"):
                lines.append(f" rate-limit {direction} {bps} {normal} {normal * 2} {' '.join(_CAR_ACTIONS)}")
        if port.admin is AdminStatus.DOWN:
            lines.append(" shutdown")
        lines += ["end"]
        return "\n".join(lines)


def _car(tokens: list[str]) -> bool:
    """``rate-limit input|output BPS NORMAL MAX conform-action transmit exceed-action drop``."""
    if len(tokens) != 9 or not _matches(tokens[:1], ("rate-limit",)):
        return False
    if not (_matches(tokens[1:2], ("input",)) or _matches(tokens[1:2], ("output",))):
        return False
    if not all(t.isdigit() for t in tokens[2:5]) or not CAR_MIN_BPS <= int(tokens[2]) <= CAR_MAX_BPS:
        return False
    return _matches(tokens[5:], _CAR_ACTIONS)


# ---------------------------------------------------------------------- conch wiring


class _CliProtocol(protocol.Protocol):
    """Moves characters between the SSH channel and a CLI interpreter: echo, line assembly, prompts."""

    def __init__(self, cli: CliInterpreter) -> None:
        self.cli = cli
        self._line = bytearray()
        self._last_cr = False

    def connectionMade(self) -> None:
        self.transport.write(f"\r\n{self.cli.prompt}".encode())

    def dataReceived(self, data: bytes) -> None:
        for byte in data:
            char = bytes([byte])
            if char == b"\n" and self._last_cr:
                self._last_cr = False
                continue
            self._last_cr = char == b"\r"
            if char in (b"\r", b"\n"):
                self._run_line()
                if self.cli.closed:
                    self.transport.loseConnection()
                    return
            elif char == b"\x00":  # a keepalive NUL (netmiko's is_alive): ignored, as by IOS and VRP
                continue
            elif char in (b"\x7f", b"\x08"):
                if self._line:
                    self._line.pop()
                    self.transport.write(b"\x08 \x08")
            elif char == b"\x1a":  # Ctrl-Z: end
                self._line.clear()
                self.cli.ctrl_z()
                self.transport.write(f"\r\n{self.cli.prompt}".encode())
            else:
                self._line += char
                if not self.cli.awaiting_secret:
                    self.transport.write(char)

    def _run_line(self) -> None:
        line = self._line.decode("utf-8", "replace")
        self._line.clear()
        output = self.cli.execute(line)
        text = "\r\n" + (output.replace("\n", "\r\n") + "\r\n" if output else "") + self.cli.prompt
        if not self.cli.closed:
            self.transport.write(text.encode())


@implementer(ISession)
class _SwitchUser(avatar.ConchUser):
    """A logged-in user: one interactive shell per session channel; no exec, no subsystems."""

    def __init__(self, state: SwitchState, secret: str, flavour: str = "cisco_ios") -> None:
        super().__init__()
        self._state, self._secret, self._flavour = state, secret, flavour
        self.channelLookup[b"session"] = session.SSHSession

    def getPty(self, term: bytes, windowSize: Any, modes: Any) -> None:
        """Accept any terminal."""

    def windowChanged(self, newWindowSize: Any) -> None:
        """Ignore window size changes."""

    def openShell(self, transport: Any) -> None:
        """Start the CLI on the channel."""
        cli: CliInterpreter = (
            HuaweiCli(self._state) if self._flavour == "huawei" else IosCli(self._state, self._secret)
        )
        cli_protocol = _CliProtocol(cli)
        cli_protocol.makeConnection(transport)
        transport.makeConnection(session.wrapProtocol(cli_protocol))

    def execCommand(self, proto: Any, command: bytes) -> None:
        """Refused, as by switches that offer an interactive CLI only: conch fails the request."""
        raise ConchError("exec requests are refused: interactive CLI only")

    def eofReceived(self) -> None:
        """Nothing to flush."""

    def closed(self) -> None:
        """Nothing to release."""


@implementer(checkers.ICredentialsChecker)
class _PasswordChecker:
    """One user name and password, compared in constant time."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, username: str, password: str) -> None:
        self._username, self._password = username.encode(), password.encode()

    def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes]:
        ok_user = hmac.compare_digest(creds.username, self._username)
        ok_password = hmac.compare_digest(creds.password, self._password)
        if ok_user and ok_password:
            return defer.succeed(creds.username)
        return defer.fail(error.UnauthorizedLogin("bad user name or password"))


@implementer(portal.IRealm)
class _Realm:
    def __init__(self, state: SwitchState, secret: str, flavour: str) -> None:
        self._state, self._secret, self._flavour = state, secret, flavour

    def requestAvatar(self, avatar_id: bytes, mind: Any, *interfaces: Any) -> tuple[Any, Any, Any]:
        return interfaces[0], _SwitchUser(self._state, self._secret, self._flavour), lambda: None


def load_or_create_host_key(path: Path | None = None) -> keys.Key:
    """The RSA host key at ``path`` (created there if missing), or a fresh one when ``path`` is None."""
    if path is not None and path.is_file():
        return keys.Key.fromFile(str(path))
    key = keys.Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if path is not None:
        path.write_bytes(key.toString("OPENSSH"))
        path.chmod(0o600)
    return key


def make_factory(
    state: SwitchState,
    username: str,
    password: str,
    secret: str,
    host_key: keys.Key,
    flavour: str = "cisco_ios",
) -> factory.SSHFactory:
    """An SSH server factory for the switch CLI of ``flavour`` (one of :data:`CLI_FLAVOURS`)."""
    if flavour not in CLI_FLAVOURS:
        raise ValueError(f"unknown CLI flavour {flavour!r}; known: {', '.join(CLI_FLAVOURS)}")
    ssh_factory = factory.SSHFactory()
    realm = _Realm(state, secret, flavour)
    ssh_factory.portal = portal.Portal(realm, [_PasswordChecker(username, password)])
    ssh_factory.publicKeys = {b"ssh-rsa": host_key.public()}
    ssh_factory.privateKeys = {b"ssh-rsa": host_key}
    ssh_factory.primes = None  # no moduli file here: group-exchange key exchange is off
    return ssh_factory
