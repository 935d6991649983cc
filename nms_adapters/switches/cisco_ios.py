"""Cisco IOS: the commands that block, unblock and rate-limit a port, and parsers of what IOS shows.

Pure functions (no I/O), used by :class:`~nms_adapters.switches.cli.CliDriver` over netmiko's
``cisco_ios`` and tested on recorded transcripts.

Rate limits use committed access rate on the interface, both directions::

    rate-limit input 20480000 3840000 7680000 conform-action transmit exceed-action drop
    rate-limit output 20480000 3840000 7680000 conform-action transmit exceed-action drop

(rate in bit/s in steps of 8 kbit/s; normal burst = 1.5 s of traffic in bytes, max burst twice
that, as Cisco's CAR guidance suggests).  CAR statements cascade, so a change first removes the
statements there are (``no`` + the line as shown) and then adds the new ones.
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
    "car_lines",
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

NETMIKO_DEVICE_TYPE = "cisco_ios"
SHOW_CONFIG = "show running-config"
SHOW_STATUS = "show interfaces status"
CONFIG_ENTER = "configure terminal"
CONFIG_EXIT = "end"
CAR_STEP_KBPS = 8
_NORMAL_BURST = (1000, 512_000_000)  # bytes, IOS limits
_RATE_LINE = re.compile(r"^rate-limit\s+(input|output)\s+(\d+)\b")
_ERROR = re.compile(r"^% .*$", re.MULTILINE)  # "% Invalid input …", "% Incomplete command." (not %SYS-5-…)
# show interfaces status → link up?  (others, e.g. "monitoring" of a SPAN port, are not known)
_OPER = {
    "connected": True,
    "monitoring": True,
    "notconnect": False,
    "notconnec": False,
    "disabled": False,
    "err-disabled": False,
    "inactive": False,
    "suspended": False,
    "sfpabsent": False,
    "xcvrabsen": False,
    "noxcvr": False,
}


def config_prompt(hostname: str) -> str:
    """A regular expression matching the prompt right after ``configure terminal``."""
    return rf"{re.escape(hostname)}\(config\)#"


def exec_prompt(hostname: str) -> str:
    """A regular expression matching the privileged prompt (after ``end``)."""
    return rf"{re.escape(hostname)}#"


def block_commands(interface: str) -> list[str]:
    """Configuration commands that shut the port down."""
    return [f"interface {interface}", "shutdown"]


def unblock_commands(interface: str) -> list[str]:
    """Configuration commands that enable the port."""
    return [f"interface {interface}", "no shutdown"]


def car_lines(kbps: int) -> list[str]:
    """The two CAR statements limiting both directions to ``kbps``; ValueError if IOS cannot."""
    if kbps < CAR_STEP_KBPS or kbps % CAR_STEP_KBPS:
        raise ValueError(f"Cisco CAR rates go in steps of {CAR_STEP_KBPS} kbit/s: {kbps} kbit/s is not one")
    bps = kbps * 1000
    normal = min(max(bps * 3 // 16, _NORMAL_BURST[0]), _NORMAL_BURST[1])  # 1.5 s of traffic, in bytes
    actions = "conform-action transmit exceed-action drop"
    return [f"rate-limit {way} {bps} {normal} {normal * 2} {actions}" for way in ("input", "output")]


def rate_commands(interface: str, current: InterfaceConfig, kbps: int | None) -> list[str]:
    """Commands that bring the port's limit from ``current`` to ``kbps`` (None: none); [] if it is there."""
    wanted = car_lines(kbps) if kbps is not None else []
    if sorted(current.rate_lines) == sorted(wanted):
        return []
    removals = [f"no {line}" for line in current.rate_lines]
    return [f"interface {interface}", *removals, *wanted]


def show_interface_config(interface: str) -> str:
    """The command showing one interface's configuration."""
    return f"show running-config interface {interface}"


def parse_configs(text: str) -> dict[str, InterfaceConfig]:
    """Interface configurations from ``show running-config [interface X]``, by canonical name."""
    configs = {}
    for name, lines in interface_sections(text).items():
        alias = next((line[len("description ") :] for line in lines if line.startswith("description ")), "")
        rate_lines = tuple(line for line in lines if _RATE_LINE.match(line))
        rates = [int(_RATE_LINE.match(line).group(2)) // 1000 for line in rate_lines]  # type: ignore[union-attr]
        configs[name] = InterfaceConfig(
            name=name,
            admin_up="shutdown" not in lines,
            alias=alias,
            rate_kbps=min(rates) if rates else None,
            rate_lines=rate_lines,
        )
    return configs


def parse_status(text: str) -> dict[str, bool | None]:
    """Link state per canonical interface name from ``show interfaces status`` (columns by the header)."""
    lines = text.replace("\r", "").split("\n")
    header = next((line for line in lines if line.startswith("Port") and " Status " in line), None)
    if header is None:
        return {}
    status_column = header.index(" Status ") + 1
    oper: dict[str, bool | None] = {}
    for line in lines[lines.index(header) + 1 :]:
        name = canonical_port_name(line[:status_column].split()[0]) if line.strip() else None
        rest = line[status_column:].split()
        if name is None or not rest:
            continue
        oper[name] = _OPER.get(rest[0].lower())
    return oper


def error_line(output: str) -> str | None:
    """The first error IOS printed in ``output`` (a line starting ``% ``), None if there is none."""
    match = _ERROR.search(output.replace("\r", ""))
    return match.group(0).strip() if match else None
