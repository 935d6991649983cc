"""The hook through which prepaid quota sees accounting: ``QuotaGate.on_group``.

Why a protocol here: quota is money, and money is ``billing``'s (the ledger, the tariffs), but
the moment usage becomes durable is the accounting store's, and ``aaa`` never imports
``billing`` (DESIGN.md, "Layers"). So ``aaa`` says what it will tell, and when; ``billing``
implements it (``billing.quota.PrepaidQuotaGate``) and the composition root (``billingd``)
hands it to :class:`aaa.accounting_store.AccountingStore`.

When: once per accounting group, inside the group's database transaction, after the group's
sessions and usage rows are written and while those sessions are still locked. What: one
:class:`SessionChange` per session the group started, moved or stopped, in ``acct_unique_id``
order. The gate's writes commit or roll back with the accounting they are about, so usage is
never charged without being recorded, nor recorded as charged without being charged. An
exception from ``on_group`` fails the group like any database error (the store retries a
deadlock, journals when the database is unreachable, and otherwise does not answer the NAS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from aaa.accounting import Usage

__all__ = ["QuotaGate", "SessionChange"]


@dataclass(frozen=True, slots=True)
class SessionChange:
    """What one accounting group did to one session.

    ``usage`` is the group's usage delta (the sum of the ``session_usage`` rows it appended);
    ``totals`` the session's counters after the group (the high-water mark: they only grow).
    ``started``: the session began in this group (its first record arrived); ``stopped``: it was
    closed in this group (by a Stop). ``event_time`` is the group's last event time for it.
    """

    acct_unique_id: str
    session_id: int
    service_id: int | None
    started_at: datetime
    event_time: datetime
    usage: Usage
    totals: Usage
    started: bool
    stopped: bool


class QuotaGate(Protocol):
    """Receives each accounting group's session changes inside its transaction."""

    def wants_changes(self, conn: Connection) -> bool:
        """Whether this group's changes could matter (False: the store skips working them out).

        Cheap and without side effects; e.g. False while no tariff is metered prepaid.
        """
        ...

    def on_group(self, conn: Connection, changes: Sequence[SessionChange]) -> None:
        """Act on ``changes`` (reserve, commit, release) on ``conn``; never commit or roll back."""
        ...
