"""Why a switch operation failed, as a small typed tree (as netmiko's ``exceptions.py``).

Every failure is a :class:`SwitchError`, so a caller that only records "failed" catches one
class; one that retries or alerts differently tells the cases apart by subclass:
unreachable (no answer — for a change, the outcome is unknown), credentials refused, the
switch answered and refused the operation, or this device type cannot do it at all.
"""

from __future__ import annotations

__all__ = [
    "NotSupported",
    "SwitchAuthFailed",
    "SwitchError",
    "SwitchRefused",
    "SwitchUnreachable",
    "UnknownDeviceType",
]


class SwitchError(Exception):
    """A switch operation failed; the message names the switch and says why."""


class SwitchUnreachable(SwitchError):
    """No (timely) answer or no connection: a change sent may or may not have been applied."""


class SwitchAuthFailed(SwitchError):
    """The switch refused the credentials (SSH login, SNMPv3 user or keys)."""


class SwitchRefused(SwitchError):
    """The switch answered and refused: an SNMP error status, a CLI error line, an unknown port."""


class NotSupported(SwitchError):
    """This device type cannot do the operation at all (e.g. a rate limit over plain IF-MIB)."""


class UnknownDeviceType(SwitchError, LookupError):
    """No driver is registered for the device type; the message lists the supported ones."""
