"""Interface names as operators type them (``Gi0/3``, ``GE0/0/3``) → the switch's full names.

The DB keeps a port as staff entered it; switches answer with full names (CLI configuration,
IF-MIB ifDescr) or short ones (Cisco ``show interfaces status``, IF-MIB ifName).  Drivers
compare names only after :func:`canonical_port_name`.  Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["canonical_port_name", "interface_name", "same_port"]

# Full interface type names of Cisco IOS and Huawei VRP; an abbreviation is a unique prefix of one
_FULL_NAMES = (
    "GigabitEthernet",
    "FastEthernet",
    "TenGigabitEthernet",
    "TwoGigabitEthernet",
    "TwentyFiveGigE",
    "FortyGigabitEthernet",
    "HundredGigE",
    "XGigabitEthernet",
    "Ethernet",
    "Eth-Trunk",
    "Port-channel",
    "Vlanif",
    "Vlan",
)
# Abbreviations that are not unique prefixes (or not prefixes at all)
_ALIASES = {
    "ge": "GigabitEthernet",
    "xge": "XGigabitEthernet",
    "10ge": "XGigabitEthernet",
    "25ge": "TwentyFiveGigE",
    "40ge": "FortyGigabitEthernet",
    "100ge": "HundredGigE",
    "eth": "Ethernet",
    "et": "Ethernet",
    "po": "Port-channel",
    "tw": "TwoGigabitEthernet",
    "vlan": "Vlan",
}
_NAME = re.compile(r"^\s*((?:\d+)?[a-z][a-z-]*?)\s*(\d+(?:/\d+)*(?:\.\d+)?)\s*$", re.IGNORECASE)


def canonical_port_name(name: str) -> str | None:
    """``Gi0/3`` → ``GigabitEthernet0/3``, ``GE 0/0/3`` → ``GigabitEthernet0/0/3``; None if not a name."""
    match = _NAME.match(name)
    if not match:
        return None
    kind, number = match.group(1).lower(), match.group(2)
    if kind in _ALIASES:
        return _ALIASES[kind] + number
    exact = [full for full in _FULL_NAMES if full.lower() == kind]
    candidates = exact or [full for full in _FULL_NAMES if full.lower().startswith(kind)]
    return candidates[0] + number if len(candidates) == 1 else None


def interface_name(port: str) -> str:
    """The full interface name for a DB port name (``Gi0/3`` → ``GigabitEthernet0/3``); ValueError if none."""
    name = canonical_port_name(port)
    if name is None:
        raise ValueError(f"{port!r} is not an interface name")
    return name


def same_port(a: str, b: str) -> bool:
    """Whether two names denote the same interface (``Gi0/3`` and ``GigabitEthernet0/3`` do)."""
    return (canonical_port_name(a) or a.strip()) == (canonical_port_name(b) or b.strip())
