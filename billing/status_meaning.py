"""What a service status means: what it costs (charging) and what the network enforces.

Kept apart from the table of transitions because charging (:mod:`billing.charge_plan`) and
provisioning read it without moving any service. :func:`meaning` fills in the values the
service's rules choose (the reduced fee, the network of a debt suspension).

What a status means (:func:`meaning`)::

  status                 charging          network
  pending                none              deny
  active                 full              allow (the tariff's profile)
  suspended_voluntary    reduced (rules)   deny
  suspended_involuntary  none              rules.debt_network: walled_garden or deny
  blocked                none              deny
  churned                none              deny, and the network may release the service
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from billing.lifecycle import ServiceStatus
from billing.lifecycle_rules import Charging, NetworkAccess, ReducedFee, ServiceRules

S = ServiceStatus  # short name for the table below


@dataclass(frozen=True)
class StatusMeaning:
    """What a status costs and what the network enforces (``network_from_rules``: the rules' debt_network)."""

    charging: Charging
    network: NetworkAccess
    network_from_rules: bool = False
    reduced_fee: ReducedFee | None = None


STATUS_MEANING: Mapping[ServiceStatus, StatusMeaning] = MappingProxyType(
    {
        S.PENDING: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
        S.ACTIVE: StatusMeaning(Charging.FULL, NetworkAccess.ALLOW),
        S.SUSPENDED_VOLUNTARY: StatusMeaning(Charging.REDUCED, NetworkAccess.DENY),
        S.SUSPENDED_INVOLUNTARY: StatusMeaning(Charging.NONE, NetworkAccess.DENY, network_from_rules=True),
        S.BLOCKED: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
        S.CHURNED: StatusMeaning(Charging.NONE, NetworkAccess.DENY),
    }
)


def meaning(status: ServiceStatus, rules: ServiceRules) -> StatusMeaning:
    """The charging and network meaning of ``status`` under ``rules``, with the rules' values filled in."""
    base = STATUS_MEANING[ServiceStatus(status)]
    network = rules.debt_network if base.network_from_rules else base.network
    fee = rules.voluntary_fee if base.charging is Charging.REDUCED else None
    return StatusMeaning(base.charging, network, reduced_fee=fee)
