"""Huawei VRP-style CLI face of the simulated switch: a pure interpreter, good enough for netmiko.

Like :class:`~simulators.switch_ssh.IosCli` it takes a line and returns output and the next
prompt, with no I/O, changing the shared :class:`~simulators.switch_state.SwitchState`; the SSH
wiring in :mod:`simulators.switch_ssh` picks it with ``billing-sim switch --cli huawei``.  Port
``n`` of the state is ``GigabitEthernet0/0/n`` here (``GE0/0/n`` for short).

Views and commands (keywords may be abbreviated to any unique prefix, as on VRP:
``sys``, ``int g0/0/1``, ``undo shut``, ``dis int br``):

- user view ``<HUAWEI>``: ``screen-length 0 temporary``, ``screen-width N``, ``display …``,
  ``system-view``, ``save`` (asks ``[Y/N]``), ``quit`` (logs out)
- system view ``[HUAWEI]``: ``interface GigabitEthernet0/0/N``, ``display …``, ``quit``, ``return``
- interface view ``[HUAWEI-GigabitEthernet0/0/N]``: ``shutdown``, ``undo shutdown``,
  ``description TEXT``, ``undo description``, ``qos lr inbound|outbound cir KBPS [cbs BYTES]``
  (64..10000000 kbit/s), ``undo qos lr inbound|outbound``, ``interface …``, ``display this``,
  ``quit``, ``return``
- ``display interface brief``, ``display interface description``,
  ``display current-configuration [interface GigabitEthernet0/0/N]``

The simulated port has one rate limit: either direction's ``qos lr`` sets it, either ``undo``
clears it, and both directions are shown while it is set.  Anything not understood answers as
VRP does, a caret under the offending word and ``Error: … found at '^' position.``; the view is
kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from simulators.switch_state import AdminStatus, Port, SwitchState, UnknownPort

__all__ = ["HUAWEI_PORT_PREFIX", "HuaweiCli", "View", "huawei_port_index"]

UNRECOGNIZED = "Error: Unrecognized command found at '^' position."
WRONG_PARAMETER = "Error: Wrong parameter found at '^' position."
INCOMPLETE = "Error: Incomplete command found at '^' position."
SAVED = "Info: Save the configuration successfully."
HUAWEI_PORT_PREFIX = "GigabitEthernet0/0/"
CIR_MIN_KBPS, CIR_MAX_KBPS = 64, 10_000_000
_PORT = re.compile(r"^([a-z]+)\s*0/0/(\d+)$", re.IGNORECASE)
_LEGEND = (
    "PHY: Physical\n*down: administratively down\n(l): loopback\n(s): spoofing\n(b): BFD down\n"
    "(e): ETHOAM down\n(dl): DLDP down\n(d): Dampening Suppressed"
)


class View(Enum):
    """VRP command views."""

    USER = "user"
    SYSTEM = "system"
    INTERFACE = "interface"


def huawei_port_index(text: str) -> int | None:
    """``GigabitEthernet0/0/3``, ``GE0/0/3``, ``g 0/0/3`` → 3; None if not a port name."""
    match = _PORT.match(text.strip())
    if not match:
        return None
    word = match.group(1).lower()
    if word != "ge" and not "gigabitethernet".startswith(word):
        return None
    return int(match.group(2))


def _phy(port: Port) -> tuple[str, str]:
    """The PHY and Protocol columns of ``display interface brief``: ``*down`` = administratively down."""
    if port.oper is AdminStatus.UP:
        return "up", "up"
    return ("*down" if port.admin is AdminStatus.DOWN else "down"), "down"


class _Refused(Exception):
    """A command is not accepted: ``message`` with the caret under token ``token``."""

    def __init__(self, message: str, token: int) -> None:
        super().__init__(message)
        self.message, self.token = message, token


def _keyword(tokens: list[str], index: int, *words: str) -> str:
    """The keyword among ``words`` that token ``index`` abbreviates (unique prefix), else refuse."""
    if index >= len(tokens):
        raise _Refused(INCOMPLETE, index)
    token = tokens[index].lower()
    found = [word for word in words if word.startswith(token)]
    if token in words:
        return token
    if len(found) != 1:
        raise _Refused(UNRECOGNIZED if index == 0 else WRONG_PARAMETER, index)
    return found[0]


def _end(tokens: list[str], index: int) -> None:
    """No tokens may follow ``index``."""
    if len(tokens) > index:
        raise _Refused(WRONG_PARAMETER, index)


@dataclass
class HuaweiCli:
    """The command interpreter of one session; :meth:`execute` runs one line."""

    state: SwitchState
    view: View = View.USER
    interface: int | None = None
    awaiting_confirm: bool = False
    closed: bool = False
    awaiting_secret: bool = False  # VRP has no enable step; kept for the SSH wiring (echo control)

    @property
    def prompt(self) -> str:
        """What the device shows before the next command."""
        if self.awaiting_confirm:
            return ""
        name = self.state.hostname
        if self.view is View.USER:
            return f"<{name}>"
        if self.view is View.SYSTEM:
            return f"[{name}]"
        return f"[{name}-{HUAWEI_PORT_PREFIX}{self.interface}]"

    def ctrl_z(self) -> None:
        """Ctrl+Z: back to the user view."""
        self.execute("return")

    def execute(self, line: str) -> str:
        """Run one input line; return its output (no trailing newline, may be empty)."""
        if self.awaiting_confirm:
            self.awaiting_confirm = False
            if line.strip().lower() in ("y", "yes"):
                self.state.mark_saved()
                return f"Now saving the current configuration to the slot 0.\n{SAVED}"
            return "Info: Operation canceled."
        tokens = line.split()
        if not tokens:
            return ""
        prompt = self.prompt
        try:
            return self._run(tokens)
        except _Refused as refused:
            starts = [m.start() for m in re.finditer(r"\S+", line)]
            column = starts[refused.token] if refused.token < len(starts) else len(line.rstrip()) + 1
            return f"{' ' * (len(prompt) + column)}^\n{refused.message}"

    def _run(self, tokens: list[str]) -> str:
        commands: dict[str, Callable[[list[str]], str]] = {
            "display": self._display,
            "quit": self._quit,
            "return": self._return,
        }
        if self.view is View.USER:
            commands |= {
                "screen-length": self._screen_length,
                "screen-width": self._screen_width,
                "system-view": self._system_view,
                "save": self._save,
            }
        else:
            commands["interface"] = self._interface
        if self.view is View.INTERFACE:
            commands |= {
                "shutdown": lambda t: self._admin(t, AdminStatus.DOWN),
                "undo": self._undo,
                "description": self._description,
                "qos": self._qos,
            }
        keyword = _keyword(tokens, 0, *commands)
        return commands[keyword](tokens)

    # ------------------------------------------------------------------ views

    def _system_view(self, tokens: list[str]) -> str:
        _end(tokens, 1)
        self.view = View.SYSTEM
        return "Enter system view, return user view with Ctrl+Z."

    def _quit(self, tokens: list[str]) -> str:
        _end(tokens, 1)
        if self.view is View.INTERFACE:
            self.view, self.interface = View.SYSTEM, None
        elif self.view is View.SYSTEM:
            self.view = View.USER
        else:
            self.closed = True
        return ""

    def _return(self, tokens: list[str]) -> str:
        _end(tokens, 1)
        if self.view is View.USER:
            raise _Refused(UNRECOGNIZED, 0)
        self.view, self.interface = View.USER, None
        return ""

    def _interface(self, tokens: list[str]) -> str:
        if len(tokens) < 2:
            raise _Refused(INCOMPLETE, 1)
        index = self._port(tokens, 1)
        self.view, self.interface = View.INTERFACE, index
        return ""

    def _port(self, tokens: list[str], start: int) -> int:
        """The state's port index named by ``tokens[start:]`` (``GigabitEthernet 0/0/1`` may be split)."""
        index = huawei_port_index("".join(tokens[start:]))
        if index is None:
            raise _Refused(WRONG_PARAMETER, start)
        try:
            self.state.port(index)
        except UnknownPort:
            raise _Refused(WRONG_PARAMETER, start) from None
        return index

    # ------------------------------------------------------------------ user view

    def _screen_length(self, tokens: list[str]) -> str:
        if len(tokens) < 2 or not tokens[1].isdigit():
            raise _Refused(INCOMPLETE if len(tokens) < 2 else WRONG_PARAMETER, 1)
        if len(tokens) > 2:
            _keyword(tokens, 2, "temporary")
            _end(tokens, 3)
            return ""
        return "Info: The configuration takes effect on the current user terminal interface only."

    def _screen_width(self, tokens: list[str]) -> str:
        if len(tokens) < 2 or not tokens[1].isdigit():
            raise _Refused(INCOMPLETE if len(tokens) < 2 else WRONG_PARAMETER, 1)
        _end(tokens, 2)
        return ""

    def _save(self, tokens: list[str]) -> str:
        _end(tokens, 1)
        self.awaiting_confirm = True
        return "Warning: The current configuration will be written to the device. Continue? [Y/N]:"

    # ------------------------------------------------------------------ interface view

    def _admin(self, tokens: list[str], admin: AdminStatus) -> str:
        assert self.interface is not None
        self.state.set_admin(self.interface, admin)
        return ""

    def _undo(self, tokens: list[str]) -> str:
        assert self.interface is not None
        what = _keyword(tokens, 1, "shutdown", "description", "qos")
        if what == "shutdown":
            _end(tokens, 2)
            return self._admin(tokens, AdminStatus.UP)
        if what == "description":
            _end(tokens, 2)
            self.state.set_alias(self.interface, "")
            return ""
        _keyword(tokens, 2, "lr")
        _keyword(tokens, 3, "inbound", "outbound")
        _end(tokens, 4)
        self.state.set_rate_limit(self.interface, 0)
        return ""

    def _description(self, tokens: list[str]) -> str:
        assert self.interface is not None
        if len(tokens) < 2:
            raise _Refused(INCOMPLETE, 1)
        self.state.set_alias(self.interface, " ".join(tokens[1:])[:64])
        return ""

    def _qos(self, tokens: list[str]) -> str:
        assert self.interface is not None
        _keyword(tokens, 1, "lr")
        _keyword(tokens, 2, "inbound", "outbound")
        _keyword(tokens, 3, "cir")
        kbps = self._number(tokens, 4, CIR_MIN_KBPS, CIR_MAX_KBPS)
        if len(tokens) > 5:
            _keyword(tokens, 5, "cbs")
            self._number(tokens, 6, 10_000, 4_294_967_295)
            _end(tokens, 7)
        self.state.set_rate_limit(self.interface, kbps)
        return ""

    @staticmethod
    def _number(tokens: list[str], index: int, low: int, high: int) -> int:
        if index >= len(tokens):
            raise _Refused(INCOMPLETE, index)
        if not tokens[index].isdigit() or not low <= int(tokens[index]) <= high:
            raise _Refused(WRONG_PARAMETER, index)
        return int(tokens[index])

    # ------------------------------------------------------------------ display

    def _display(self, tokens: list[str]) -> str:
        what = _keyword(tokens, 1, "interface", "current-configuration", "this")
        if what == "this":
            _end(tokens, 2)
            if self.interface is None:
                return "#\nreturn"
            return "#\n" + self._interface_config(self.interface) + "\n#\nreturn"
        if what == "current-configuration":
            if len(tokens) > 2:
                _keyword(tokens, 2, "interface")
                index = self._port(tokens, 3)
                return "#\n" + self._interface_config(index) + "\n#\nreturn"
            blocks = [f"#\n sysname {self.state.hostname}"]
            blocks += ["#\n" + self._interface_config(port.if_index) for port in self.state.ports()]
            return "!Software Version V200R011C10SPC500\n" + "\n".join(blocks) + "\n#\nreturn"
        kind = _keyword(tokens, 2, "brief", "description")
        _end(tokens, 3)
        return self._brief() if kind == "brief" else self._descriptions()

    def _interface_config(self, index: int) -> str:
        port = self.state.port(index)
        lines = [f"interface {HUAWEI_PORT_PREFIX}{index}"]
        if port.alias:
            lines.append(f" description {port.alias}")
        if port.admin is AdminStatus.DOWN:
            lines.append(" shutdown")
        if port.rate_limit_kbps:
            cbs = min(port.rate_limit_kbps * 125, 4_294_967_295)
            lines += [
                f" qos lr inbound cir {port.rate_limit_kbps} cbs {cbs}",
                f" qos lr outbound cir {port.rate_limit_kbps} cbs {cbs}",
            ]
        return "\n".join(lines)

    def _brief(self) -> str:
        lines = [_LEGEND, "InUti/OutUti: input utility/output utility"]
        lines.append(f"{'Interface':<28}{'PHY':<6}{'Protocol':<9}InUti OutUti   inErrors  outErrors")
        for port in self.state.ports():
            phy, protocol = _phy(port)
            name = f"{HUAWEI_PORT_PREFIX}{port.if_index}"
            lines.append(f"{name:<28}{phy:<6}{protocol:<9}   0%     0%          0          0")
        return "\n".join(lines)

    def _descriptions(self) -> str:
        lines = [_LEGEND, f"{'Interface':<30}{'PHY':<8}{'Protocol':<9}Description"]
        for port in self.state.ports():
            phy, protocol = _phy(port)
            lines.append(f"{'GE0/0/' + str(port.if_index):<30}{phy:<8}{protocol:<9}{port.alias}".rstrip())
        return "\n".join(lines)
