"""How billing reaches a switch: the switch record from the database plus credentials from the config.

Used by the provisioning worker (to change ports) and the network reconciler (to read them).
Secrets never live in the database: a record names a ``[[provisioning.credentials]]`` entry.
"""

from __future__ import annotations

from typing import Any

from billing.provisioning_outbox import PortRef
from billing.provisioning_settings import ProvisioningSettings
from nms_adapters.switches import SwitchAccess

__all__ = ["switch_access"]


def switch_access(port: PortRef, settings: ProvisioningSettings) -> SwitchAccess:
    """How to reach ``port``'s switch: its record plus the named credentials of the config."""
    if not port.address:
        raise ValueError(f"switch {port.switch} has no address")
    if port.device_type is None:
        raise ValueError(f"switch {port.switch} has no device type")
    creds = settings.credentials_named(port.credentials)
    if port.credentials is not None and creds is None:
        raise ValueError(
            f"switch {port.switch} names credentials {port.credentials!r}, "
            "which no [[provisioning.credentials]] defines"
        )
    values: dict[str, Any] = {}
    if creds is not None:
        values = {
            "snmp_version": creds.snmp_version,
            "read_community": creds.read_community,
            "write_community": creds.write_community,
            "v3_user": creds.v3_user,
            "v3_auth_key": creds.v3_auth_key,
            "v3_priv_key": creds.v3_priv_key,
            "v3_auth_protocol": creds.v3_auth_protocol,
            "v3_priv_protocol": creds.v3_priv_protocol,
            "username": creds.username,
            "password": creds.password,
            "enable_secret": creds.enable_secret,
        }
    return SwitchAccess(
        name=port.switch,
        address=port.address,
        device_type=port.device_type,
        snmp_port=port.snmp_port or 161,
        ssh_port=port.ssh_port or 22,
        **values,
    )
