"""Huawei VRP (S-series access switches): port commands and parsers of ``display`` output.

Pure functions (no I/O), used by :class:`~nms_adapters.switches.cli.CliDriver` over netmiko's
``huawei`` and tested on recorded transcripts.  Configuration happens in the system view
(``system-view`` … ``return``, which netmiko's huawei driver sends).

Rate limits use interface line-rate limiting, both directions, in kbit/s (VRP: 64 and up)::

    qos lr inbound cir 20480
    qos lr outbound cir 20480

A new ``qos lr`` replaces the old one of that direction; ``undo qos lr inbound|outbound``
removes it.  VRP prints the committed burst it chose (``… cir 20480 cbs 2560000``).
"""

from __future__ import annotations

import re

from nms_adapters.switches.config_text import InterfaceConfig, interface_sections
from nms_adapters.switches.port_names import canonical_port_name, interface_name

__all__ = [
    "NETMIKO_DEVICE_TYPE",
    "SHOW_CONFIG",
    "SHOW_STATUS",
    "block_commands",
    "config_prompt",
    "error_line",
    "exec_prompt",
    "interface_name",
    "parse_configs",
    "parse_status",
    "rate_commands",
    "show_interface_config",
    "unblock_commands",
]

NETMIKO_DEVICE_TYPE = "huawei"
SHOW_CONFIG = "display current-configuration"
SHOW_STATUS = "display interface brief"
CONFIG_ENTER = "system-view"
CONFIG_EXIT = "return"
CIR_MIN_KBPS = 64
_DIRECTIONS = ("inbound", "outbound")
_RATE_LINE = re.compile(r"^qos lr (inbound|outbound) cir (\d+)\b")
_ERROR = re.compile(r"^Error:.*$", re.MULTILINE)  # "Error: Unrecognized command found at '^' position."


def config_prompt(hostname: str) -> str:
    """A regular expression matching the system-view prompt (``[HUAWEI]``)."""
    return rf"\[{re.escape(hostname)}\]"


def exec_prompt(hostname: str) -> str:
    """A regular expression matching the user-view prompt (``<HUAWEI>``)."""
    return rf"<{re.escape(hostname)}>"


def block_commands(interface: str) -> list[str]:
    """System-view commands that shut the port down."""
    return [f"interface {interface}", "shutdown"]


def unblock_commands(interface: str) -> list[str]:
    """System-view commands that enable the port."""
    return [f"interface {interface}", "undo shutdown"]


def rate_commands(interface: str, current: InterfaceConfig, kbps: int | None) -> list[str]:
    """Commands that bring the port's limit from ``current`` to ``kbps`` (None: none); [] if it is there."""
    if kbps is not None and kbps < CIR_MIN_KBPS:
        raise ValueError(f"VRP line-rate limits start at {CIR_MIN_KBPS} kbit/s: {kbps} kbit/s is below")
    have = {m.group(1): int(m.group(2)) for m in map(_RATE_LINE.match, current.rate_lines) if m}
    if kbps is None:
        changes = [f"undo qos lr {direction}" for direction in _DIRECTIONS if direction in have]
    else:
        changes = [f"qos lr {d} cir {kbps}" for d in _DIRECTIONS if have.get(d) != kbps]
    return [f"interface {interface}", *changes] if changes else []


def show_interface_config(interface: str) -> str:
    """The command showing one interface's configuration."""
    return f"display current-configuration interface {interface}"


def parse_configs(text: str) -> dict[str, InterfaceConfig]:
    """Interface configurations from ``display current-configuration [interface X]``, by canonical name."""
    configs = {}
    for name, lines in interface_sections(text).items():
        alias = next((line[len("description ") :] for line in lines if line.startswith("description ")), "")
        rate_lines = tuple(line for line in lines if _RATE_LINE.match(line))
        rates = [int(_RATE_LINE.match(line).group(2)) for line in rate_lines]  # type: ignore[union-attr]
        configs[name] = InterfaceConfig(
            name=name,
            admin_up="shutdown" not in lines,
            alias=alias,
            rate_kbps=min(rates) if rates else None,
            rate_lines=rate_lines,
        )
    return configs


def parse_status(text: str) -> dict[str, bool | None]:
    """Link state (the PHY column) per canonical interface name from ``display interface brief``.

    PHY ``up`` is up; ``down``, ``*down`` (administratively down), ``^down`` (standby) and the
    like are down.
    """
    oper: dict[str, bool | None] = {}
    in_table = False
    for line in text.replace("\r", "").split("\n"):
        words = line.split()
        if words[:2] == ["Interface", "PHY"]:
            in_table = True
            continue
        if not in_table or len(words) < 2:
            continue
        name = canonical_port_name(words[0])
        if name is not None:
            oper[name] = True if words[1] == "up" else False if words[1].endswith("down") else None
    return oper


def error_line(output: str) -> str | None:
    """The first error VRP printed in ``output`` (a line starting ``Error:``), None if there is none."""
    match = _ERROR.search(output.replace("\r", ""))
    return match.group(0).strip() if match else None
