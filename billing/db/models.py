"""Imports every model so that ``Base.metadata`` is complete (Alembic and tests use this)."""

from billing.db import (
    audit,
    charges,
    customers,
    dictionaries,
    ledger,
    lifecycle,
    network,
    payment_files,
    payments,
    provisioning,
    quota,
    reconciliation,
    services,
    sessions,
    staff,
    tariffs,
)
from billing.db.base import Base

__all__ = [
    "Base",
    "audit",
    "charges",
    "customers",
    "dictionaries",
    "ledger",
    "lifecycle",
    "network",
    "payment_files",
    "payments",
    "provisioning",
    "quota",
    "reconciliation",
    "services",
    "sessions",
    "staff",
    "tariffs",
]
