"""What the provisioning worker and the network reconciler are configured with, as frozen values.

``billing.config`` reads ``[provisioning]``, ``[[provisioning.credentials]]`` and
``[[provisioning.nms]]`` and builds these; secrets arrive resolved. Switch records in the
database name their credentials by ``name`` so passwords and communities stay out of the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProvisioningSettings", "SwitchCredentials"]


def _secret() -> Any:
    """A secret field: never in ``repr()``, masked in the config's public dump."""
    return field(default=None, repr=False, metadata={"secret": True})


@dataclass(frozen=True)
class SwitchCredentials:
    """How to log in to a group of switches: SNMP (v2c communities or a v3 user) and SSH."""

    name: str
    snmp_version: str = "v2c"
    read_community: str | None = _secret()
    write_community: str | None = _secret()
    v3_user: str | None = None
    v3_auth_key: str | None = _secret()
    v3_priv_key: str | None = _secret()
    v3_auth_protocol: str = "sha"
    v3_priv_protocol: str = "aes"
    username: str | None = None
    password: str | None = _secret()
    enable_secret: str | None = _secret()


@dataclass(frozen=True)
class ProvisioningSettings:
    """The outbox worker's pace and patience, the CoA client's, the reconciler's, and exporters.

    ``worker``: run the worker inside ``billingd`` (``billingd --role provisioning`` runs it
    alone; several may run). A task is tried ``max_attempts`` times, ``backoff_s`` doubling
    between tries up to ``backoff_max_s``; a claim is held ``lease_s`` at most (longer than
    any one try can take), after which another worker may take the task over.
    """

    worker: bool = False
    concurrency: int = 256
    batch: int = 500
    poll_s: float = 0.5
    lease_s: float = 120.0
    max_attempts: int = 5
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    coa_timeout_s: float = 1.0
    coa_retries: int = 2
    coa_source: str = "127.0.0.1"
    switch_timeout_s: float = 20.0
    reconcile_interval_s: float = 0.0
    reconcile_repair: bool = False
    export_interval_s: float = 2.0
    credentials: tuple[SwitchCredentials, ...] = ()
    nms: tuple[Any, ...] = ()
    """``nms_adapters.settings`` values, one per configured exporter."""

    def credentials_named(self, name: str | None) -> SwitchCredentials | None:
        return next((c for c in self.credentials if c.name == name), None)
