"""Reading interface sections out of a switch's configuration text (IOS ``!`` and VRP ``#`` style).

Both families print an interface as ``interface NAME`` followed by its settings, each indented
by one space, and end the section with a line that is not indented.  Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nms_adapters.switches.port_names import canonical_port_name

__all__ = ["InterfaceConfig", "interface_sections"]

_INTERFACE = re.compile(r"^interface\s+(\S+(?:\s+\S+)?)\s*$")


@dataclass(frozen=True)
class InterfaceConfig:
    """What a vendor parser read from one interface section.

    ``rate_lines``: the section's rate-limit lines as the switch printed them (what a change has
    to undo); ``rate_kbps``: the lowest of those limits, None when there is none.
    """

    name: str
    admin_up: bool
    alias: str
    rate_kbps: int | None
    rate_lines: tuple[str, ...] = ()


def interface_sections(text: str) -> dict[str, list[str]]:
    """Canonical interface name → its setting lines (stripped), in the order of the text."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.replace("\r", "").split("\n"):
        match = _INTERFACE.match(raw)
        if match:
            name = canonical_port_name(match.group(1)) or match.group(1)
            current = sections.setdefault(name, [])
        elif current is not None and raw.startswith(" ") and raw.strip():
            current.append(raw.strip())
        else:
            current = None
    return sections
