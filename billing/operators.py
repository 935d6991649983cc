"""Operators (billing staff) and their roles: create, grant, revoke, disable, list, bootstrap.

An operator's ``login`` is the OS login the CLI maps to it. Operators are never deleted (the
audit log and ledger refer to them): they are disabled. :func:`bootstrap` creates the very
first operator, as admin, and only while there is none, so a fresh database can be taken into
use without a back door staying open afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.db.staff import Operator, OperatorRole, Role, RolePermission
from billing.permissions import PermissionDenied, permissions_of

_LOGIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")


class OperatorError(ValueError):
    """An operator request that is refused; nothing is written."""


@dataclass(frozen=True)
class OperatorInfo:
    """An operator with the roles and permissions it holds."""

    id: int
    login: str
    full_name: str
    active: bool
    created_at: datetime
    roles: tuple[str, ...]
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class RoleInfo:
    """A role and the permissions it grants."""

    name: str
    description: str
    permissions: tuple[str, ...]


def _info(session: Session, operator: Operator) -> OperatorInfo:
    roles = session.scalars(
        select(Role.name)
        .join(OperatorRole, OperatorRole.role_id == Role.id)
        .where(OperatorRole.operator_id == operator.id)
        .order_by(Role.name)
    )
    return OperatorInfo(
        id=operator.id,
        login=operator.login,
        full_name=operator.full_name,
        active=operator.active,
        created_at=operator.created_at,
        roles=tuple(roles),
        permissions=tuple(sorted(permissions_of(session, operator.id))),
    )


def _operator(session: Session, login: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None:
        raise OperatorError(f"login: no operator {login!r}")
    return operator


def _role(session: Session, name: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        known = ", ".join(session.scalars(select(Role.name).order_by(Role.name)))
        raise OperatorError(f"role: unknown role {name!r}; roles: {known}")
    return role


def _check_login(login: str) -> str:
    if not _LOGIN.match(login):
        raise OperatorError(f"login: expected 1 to 64 letters, digits, '_', '.', '@', '-', got {login!r}")
    return login


def _check_name(full_name: str) -> str:
    full_name = full_name.strip()
    if not full_name or len(full_name) > 200:
        raise OperatorError(f"name: expected 1 to 200 characters, got {len(full_name)}")
    return full_name


def create(
    session: Session, actor: Actor, login: str, full_name: str, roles: tuple[str, ...]
) -> OperatorInfo:
    """Create an active operator holding ``roles`` (at least one)."""
    _check_login(login)
    if not roles:
        raise OperatorError("role: give at least one role")
    if session.scalar(select(Operator.id).where(Operator.login == login)) is not None:
        raise OperatorError(f"login: operator {login!r} already exists")
    resolved = [_role(session, name) for name in dict.fromkeys(roles)]
    operator = Operator(login=login, full_name=_check_name(full_name), active=True)
    session.add(operator)
    session.flush()
    session.add_all(OperatorRole(operator_id=operator.id, role_id=role.id) for role in resolved)
    session.flush()
    created = _info(session, operator)
    audit.record(session, actor, "operator.create", "operator", login, after=created)
    return created


def bootstrap(session: Session, actor: Actor, login: str, full_name: str) -> OperatorInfo:
    """Create the first operator, with the admin role; refused once any operator exists."""
    count = session.scalar(select(func.count()).select_from(Operator)) or 0
    if count:
        raise PermissionDenied(
            f"permission denied: bootstrap only works on a database without operators, and there are "
            f"{count}; ask an admin to run 'billing-admin operators create {login} --name NAME --role ROLE'",
            actor=actor,
            permission="bootstrap (database without operators)",
            command="db bootstrap",
        )
    _check_login(login)
    operator = Operator(login=login, full_name=_check_name(full_name), active=True)
    session.add(operator)
    session.flush()
    session.add(OperatorRole(operator_id=operator.id, role_id=_role(session, "admin").id))
    session.flush()
    created = _info(session, operator)
    audit.record(session, actor, "operator.bootstrap", "operator", login, after=created)
    return created


def show(session: Session, login: str) -> OperatorInfo:
    """One operator by login."""
    return _info(session, _operator(session, login))


def list_all(session: Session) -> list[OperatorInfo]:
    """Every operator, by login."""
    return [_info(session, o) for o in session.scalars(select(Operator).order_by(Operator.login))]


def grant(session: Session, actor: Actor, login: str, role: str) -> OperatorInfo:
    """Give ``role`` to the operator (refused if it holds it already)."""
    operator = _operator(session, login)
    granted = _role(session, role)
    before = _info(session, operator)
    if role in before.roles:
        raise OperatorError(f"role: {login} already holds role {role}")
    session.add(OperatorRole(operator_id=operator.id, role_id=granted.id))
    session.flush()
    after = _info(session, operator)
    audit.record(session, actor, "operator.grant", "operator", login, before=before, after=after)
    return after


def revoke(session: Session, actor: Actor, login: str, role: str) -> OperatorInfo:
    """Take ``role`` from the operator (refused if it does not hold it)."""
    operator = _operator(session, login)
    revoked = _role(session, role)
    before = _info(session, operator)
    if role not in before.roles:
        raise OperatorError(f"role: {login} does not hold role {role}")
    session.execute(
        delete(OperatorRole).where(
            OperatorRole.operator_id == operator.id, OperatorRole.role_id == revoked.id
        )
    )
    session.flush()
    after = _info(session, operator)
    audit.record(session, actor, "operator.revoke", "operator", login, before=before, after=after)
    return after


def disable(session: Session, actor: Actor, login: str) -> OperatorInfo:
    """Stop the operator from acting; its history stays."""
    operator = _operator(session, login)
    if not operator.active:
        raise OperatorError(f"login: operator {login} is already disabled")
    before = _info(session, operator)
    operator.active = False
    session.flush()
    after = _info(session, operator)
    audit.record(session, actor, "operator.disable", "operator", login, before=before, after=after)
    return after


def list_roles(session: Session) -> list[RoleInfo]:
    """Every role with its permissions."""
    grants: dict[int, list[str]] = {}
    for role_id, permission in session.execute(
        select(RolePermission.role_id, RolePermission.permission).order_by(RolePermission.permission)
    ):
        grants.setdefault(role_id, []).append(permission)
    return [
        RoleInfo(role.name, role.description, tuple(grants.get(role.id, ())))
        for role in session.scalars(select(Role).order_by(Role.id))
    ]
