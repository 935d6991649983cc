"""Permissions: roles grant permissions, impersonation needs its own, refusals say who and what."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing import operators
from billing.audit import Actor
from billing.db.audit import AuditEntry
from billing.permissions import (
    NotAnOperator,
    PermissionDenied,
    permissions_of,
    record_denial,
    require,
    resolve_actor,
)

SYSTEM = Actor(None, "root")


@pytest.fixture
def staff(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as session:
        operators.bootstrap(session, SYSTEM, "boss", "The Boss")
        operators.create(session, SYSTEM, "clerk", "Clerk", ("billing",))
        operators.create(session, SYSTEM, "help", "Help", ("support",))
    return sessions


def test_roles_grant_permissions(staff: sessionmaker[Session]) -> None:
    with staff() as session:
        clerk = resolve_actor(session, "clerk")
        assert clerk.login == "clerk" and clerk.impersonated_by is None
        assert "ledger.write" in permissions_of(session, clerk.operator_id or 0)
        require(session, clerk, "ledger.write", "ledger adjust")
        with pytest.raises(
            PermissionDenied, match=r"clerk lacks operators\.write, needed for 'operators create'"
        ):
            require(session, clerk, "operators.write", "operators create")


def test_impersonation(staff: sessionmaker[Session]) -> None:
    with staff() as session:
        acting = resolve_actor(session, "boss", "help")
        assert (acting.login, acting.impersonated_by) == ("help", "boss")
        with pytest.raises(PermissionDenied, match="impersonated by boss"):
            require(session, acting, "ledger.write", "ledger adjust")
        with pytest.raises(PermissionDenied, match=r"operators\.impersonate") as refused:
            resolve_actor(session, "clerk", "help", command="subscribers list")
        assert refused.value.actor.login == "clerk"
        assert resolve_actor(session, "clerk", "clerk").impersonated_by is None  # acting as oneself


def test_unknown_and_disabled_logins(staff: sessionmaker[Session]) -> None:
    with staff.begin() as session:
        with pytest.raises(NotAnOperator, match="db bootstrap"):
            resolve_actor(session, "stranger")
        operators.disable(session, SYSTEM, "clerk")
        with pytest.raises(NotAnOperator):
            resolve_actor(session, "clerk")


def test_denial_is_recorded(staff: sessionmaker[Session]) -> None:
    with staff() as session:
        clerk = resolve_actor(session, "clerk")
        with pytest.raises(PermissionDenied) as refused:
            require(session, clerk, "audit.read", "audit search")
    with staff.begin() as session:
        record_denial(session, refused.value)
    with staff() as session:
        row = session.scalars(select(AuditEntry).where(AuditEntry.outcome == "denied")).one()
        assert (row.operator_login, row.object_id) == ("clerk", "audit search")
        assert row.after is not None and row.after["permission"] == "audit.read"


def test_bootstrap_only_on_an_empty_table(staff: sessionmaker[Session]) -> None:
    with staff() as session, pytest.raises(PermissionDenied, match="without operators"):
        operators.bootstrap(session, SYSTEM, "second", "Second")
