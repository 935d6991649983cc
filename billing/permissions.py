"""Who may do what: map a login to an operator, check impersonation, check a permission.

Permissions are held through roles (seeded by the first migration; see ``BUILTIN_ROLES``).
Every entry point resolves its caller with :func:`resolve_actor` and checks the permission a
use case needs with :func:`require` before calling the service. A refusal is a
:class:`PermissionDenied` carrying who, which permission and which command, so the entry
point can record it with :func:`record_denial` in a transaction of its own (the denial must
be kept even though the refused work is rolled back).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.db.staff import Operator, OperatorRole, RolePermission

IMPERSONATE = "operators.impersonate"


class PermissionDenied(Exception):
    """The actor may not do this; ``actor`` is who tried (the real operator when impersonating)."""

    def __init__(self, message: str, *, actor: Actor, permission: str, command: str) -> None:
        super().__init__(message)
        self.actor = actor
        self.permission = permission
        self.command = command


class NotAnOperator(PermissionDenied):
    """The login has no active operator row, so it may do nothing that needs one."""


def permissions_of(session: Session, operator_id: int) -> frozenset[str]:
    """Every permission the operator holds through its roles."""
    rows = session.scalars(
        select(RolePermission.permission)
        .join(OperatorRole, OperatorRole.role_id == RolePermission.role_id)
        .where(OperatorRole.operator_id == operator_id)
    )
    return frozenset(rows)


def _active_operator(session: Session, login: str) -> Operator | None:
    operator = session.scalar(select(Operator).where(Operator.login == login))
    return operator if operator is not None and operator.active else None


def resolve_actor(
    session: Session, os_login: str, as_login: str | None = None, *, source: str = "cli", command: str = ""
) -> Actor:
    """The actor for a caller logged in as ``os_login``, acting as ``as_login`` if given.

    Raises :class:`NotAnOperator` when a login maps to no active operator, and
    :class:`PermissionDenied` when the caller may not impersonate.
    """
    real = _active_operator(session, os_login)
    if real is None:
        raise NotAnOperator(
            f"OS login {os_login!r} is not an active operator; on a new database run "
            f"'billing-admin db bootstrap {os_login}', otherwise ask an admin to run "
            f"'billing-admin operators create {os_login} --name NAME --role ROLE'",
            actor=Actor(None, os_login, None, source),
            permission="operator account",
            command=command,
        )
    actor = Actor(real.id, real.login, None, source)
    if as_login is None or as_login == real.login:
        return actor
    if IMPERSONATE not in permissions_of(session, real.id):
        raise PermissionDenied(
            f"permission denied: {real.login} lacks {IMPERSONATE}, needed for --as {as_login}"
            + (f" (command: {command})" if command else ""),
            actor=actor,
            permission=IMPERSONATE,
            command=f"{command} --as {as_login}".strip(),
        )
    target = _active_operator(session, as_login)
    if target is None:
        raise PermissionDenied(
            f"permission denied: --as {as_login}: no active operator with that login",
            actor=actor,
            permission=IMPERSONATE,
            command=f"{command} --as {as_login}".strip(),
        )
    return Actor(target.id, target.login, real.login, source)


def require(session: Session, actor: Actor, permission: str, command: str) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` holds ``permission`` through a role."""
    held = permissions_of(session, actor.operator_id) if actor.operator_id is not None else frozenset()
    if permission not in held:
        who = actor.login + (f" (impersonated by {actor.impersonated_by})" if actor.impersonated_by else "")
        raise PermissionDenied(
            f"permission denied: {who} lacks {permission}, needed for '{command}'",
            actor=actor,
            permission=permission,
            command=command,
        )


def record_denial(session: Session, denied: PermissionDenied) -> None:
    """Write the audit row of a refusal (outcome ``denied``); the caller commits it on its own."""
    audit.record(
        session,
        denied.actor,
        "permission.denied",
        "command",
        denied.command or None,
        after={"permission": denied.permission, "command": denied.command, "message": str(denied)},
        outcome="denied",
    )
