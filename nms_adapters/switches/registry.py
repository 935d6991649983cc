"""Which driver serves which device type: ``driver_for(access)`` and the list of supported types.

The switch record's ``device_type`` is the key.  Drivers are imported when first asked for, so
importing this module (e.g. for ``billing-admin``) does not pay for netmiko or pysnmp.  An
unknown type fails with :class:`~nms_adapters.switches.errors.UnknownDeviceType` listing the
supported ones, as netmiko's ``ssh_dispatcher`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

from nms_adapters.switches.errors import UnknownDeviceType
from nms_adapters.switches.model import SwitchAccess, SwitchDriver

__all__ = ["RATE_CAPABLE_DEVICE_TYPES", "SUPPORTED_DEVICE_TYPES", "driver_for"]


def _snmp(access: SwitchAccess, executor: Executor | None) -> SwitchDriver:
    from nms_adapters.switches.snmp import SnmpDriver

    return SnmpDriver(access)  # pysnmp is asyncio-native: no executor needed


def _cisco_ios(access: SwitchAccess, executor: Executor | None) -> SwitchDriver:
    from nms_adapters.switches import cisco_ios
    from nms_adapters.switches.cli import CliDriver

    return CliDriver(access, cisco_ios, executor=executor)


def _huawei(access: SwitchAccess, executor: Executor | None) -> SwitchDriver:
    from nms_adapters.switches import huawei
    from nms_adapters.switches.cli import CliDriver

    return CliDriver(access, huawei, executor=executor)


_DRIVERS: dict[str, Callable[[SwitchAccess, Executor | None], SwitchDriver]] = {
    "snmp": _snmp,
    "cisco_ios": _cisco_ios,
    "huawei": _huawei,
}
SUPPORTED_DEVICE_TYPES: tuple[str, ...] = tuple(_DRIVERS)
RATE_CAPABLE_DEVICE_TYPES: frozenset[str] = frozenset({"cisco_ios", "huawei"})
"""Device types whose driver can set a port rate limit (IF-MIB over SNMP has none: NotSupported)."""


def driver_for(access: SwitchAccess, *, executor: Executor | None = None) -> SwitchDriver:
    """A driver for ``access.device_type``; CLI drivers run netmiko in ``executor`` (None: loop default)."""
    try:
        make = _DRIVERS[access.device_type]
    except KeyError:
        raise UnknownDeviceType(
            f"switch {access.name}: unknown device type {access.device_type!r}; "
            f"supported: {', '.join(SUPPORTED_DEVICE_TYPES)}"
        ) from None
    return make(access, executor)
