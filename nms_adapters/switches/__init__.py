"""Access-switch control for port-based (IPoE) subscribers: block, unblock, rate-limit, read a port.

``driver_for(SwitchAccess(...))`` returns a :class:`SwitchDriver` for the record's device type
(:data:`SUPPORTED_DEVICE_TYPES`): ``snmp`` (IF-MIB over pysnmp, asyncio), ``cisco_ios`` and
``huawei`` (netmiko in a thread pool).  Every failure is a :class:`SwitchError`.  Vendor
commands and parsers are pure functions in :mod:`.cisco_ios` and :mod:`.huawei`.
"""

from nms_adapters.switches.errors import (
    NotSupported,
    SwitchAuthFailed,
    SwitchError,
    SwitchRefused,
    SwitchUnreachable,
    UnknownDeviceType,
)
from nms_adapters.switches.model import PortState, SwitchAccess, SwitchDriver
from nms_adapters.switches.port_names import canonical_port_name, same_port
from nms_adapters.switches.registry import RATE_CAPABLE_DEVICE_TYPES, SUPPORTED_DEVICE_TYPES, driver_for

__all__ = [
    "RATE_CAPABLE_DEVICE_TYPES",
    "SUPPORTED_DEVICE_TYPES",
    "NotSupported",
    "PortState",
    "SwitchAccess",
    "SwitchAuthFailed",
    "SwitchDriver",
    "SwitchError",
    "SwitchRefused",
    "SwitchUnreachable",
    "UnknownDeviceType",
    "canonical_port_name",
    "driver_for",
    "same_port",
]
