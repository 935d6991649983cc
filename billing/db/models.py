"""Imports every model so that ``Base.metadata`` is complete (Alembic and tests use this)."""

from billing.db import audit, customers, dictionaries, ledger, lifecycle, network, services, sessions, staff
from billing.db.base import Base

__all__ = [
    "Base",
    "audit",
    "customers",
    "dictionaries",
    "ledger",
    "lifecycle",
    "network",
    "services",
    "sessions",
    "staff",
]
