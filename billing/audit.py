"""The audit log as a service: who acts (:class:`Actor`), recording an action, searching the log.

Every mutation in the service layer calls :func:`record` in the caller's database transaction,
so the change and its audit row commit or roll back together. There is deliberately no update
or delete here: audit rows are append-only, and the database's triggers refuse changes too.
:func:`json_safe` is the one place that turns domain values into JSON-ready data (Decimals as
strings, times as ISO 8601 UTC); the audit log and the CLI's ``--json`` output both use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.db.audit import AuditEntry
from billing.db.types import utcnow

OUTCOMES = ("ok", "denied")
"""``ok``: the action was done; ``denied``: an operator tried it without the permission."""


@dataclass(frozen=True)
class Actor:
    """Who performs an action: the operator acted as, the real operator if impersonating, and how."""

    operator_id: int | None
    login: str
    impersonated_by: str | None = None
    source: str = "cli"


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit log, as read back."""

    id: int
    at: datetime
    operator_login: str
    impersonated_by: str | None
    action: str
    object_type: str
    object_id: str | None
    outcome: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: str


def json_safe(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses and mappings as dicts, Decimal as str, times in UTC."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [json_safe(v) for v in items]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be rendered as UTC")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return json_safe(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int | None,
    *,
    before: Any = None,
    after: Any = None,
    outcome: str = "ok",
) -> None:
    """Append one audit row in the caller's transaction (``before``/``after`` made JSON-safe)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
    session.add(
        AuditEntry(
            at=utcnow(),
            operator_id=actor.operator_id,
            operator_login=actor.login,
            impersonated_by=actor.impersonated_by,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            outcome=outcome,
            before=json_safe(before),
            after=json_safe(after),
            source=actor.source,
        )
    )
    session.flush()


def search(
    session: Session,
    *,
    operator: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Newest first. ``operator`` matches the acting or the impersonating login; ``action``
    ending in ``*`` matches a prefix (``subscriber.*``); the period is half-open ``[since, until)``.
    """
    query = select(AuditEntry)
    if operator:
        query = query.where(
            (AuditEntry.operator_login == operator) | (AuditEntry.impersonated_by == operator)
        )
    if action:
        if action.endswith("*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))
    return [
        AuditRecord(
            id=row.id,
            at=row.at,
            operator_login=row.operator_login,
            impersonated_by=row.impersonated_by,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            outcome=row.outcome,
            before=row.before,
            after=row.after,
            source=row.source,
        )
        for row in rows
    ]
