"""System dictionaries as a service: list, add, rename and deactivate values, resolve a code.

Other records refer to dictionary values by code (a subscriber's category and region, an
adjustment's reason). :func:`resolve` is how a service turns an operator-typed code into the
entry's id; an unknown or inactive code is refused naming the dictionary and some valid codes.
Entries are never deleted (old records still point at them): they are deactivated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.db.dictionaries import DICTIONARY_KINDS, DictionaryEntry

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SHOWN_CODES = 8


class DictionaryError(ValueError):
    """A dictionary request that is refused; nothing is written."""


class UnknownDictionaryValue(DictionaryError):
    """A code that is not an active value of its dictionary."""


@dataclass(frozen=True)
class DictionaryValue:
    """One value of one dictionary."""

    kind: str
    code: str
    name: str
    active: bool
    sort_order: int


def _value(entry: DictionaryEntry) -> DictionaryValue:
    return DictionaryValue(entry.kind, entry.code, entry.name, entry.active, entry.sort_order)


def check_kind(kind: str) -> str:
    """``kind`` if it is a known dictionary, else :class:`DictionaryError` listing the known ones."""
    if kind not in DICTIONARY_KINDS:
        raise DictionaryError(f"kind: unknown dictionary {kind!r}; known: {', '.join(DICTIONARY_KINDS)}")
    return kind


def list_values(
    session: Session, kind: str | None = None, *, active_only: bool = False
) -> list[DictionaryValue]:
    """Values of one dictionary (or of all), ordered by kind, sort order and code."""
    query = select(DictionaryEntry)
    if kind is not None:
        query = query.where(DictionaryEntry.kind == check_kind(kind))
    if active_only:
        query = query.where(DictionaryEntry.active.is_(True))
    query = query.order_by(DictionaryEntry.kind, DictionaryEntry.sort_order, DictionaryEntry.code)
    return [_value(e) for e in session.scalars(query)]


def resolve(session: Session, kind: str, code: str, *, field: str | None = None) -> int:
    """Id of the active value ``code`` of dictionary ``kind``; refuses naming a few valid codes."""
    check_kind(kind)
    entry = session.scalar(
        select(DictionaryEntry).where(DictionaryEntry.kind == kind, DictionaryEntry.code == code)
    )
    if entry is not None and entry.active:
        return entry.id
    valid = [v.code for v in list_values(session, kind, active_only=True)]
    if not valid:
        hint = f"the dictionary is empty; add values with 'billing-admin dict add {kind} CODE NAME'"
    else:
        more = ", ..." if len(valid) > _SHOWN_CODES else ""
        hint = "valid codes: " + ", ".join(valid[:_SHOWN_CODES]) + more
    state = "is deactivated" if entry is not None else "is not a value"
    raise UnknownDictionaryValue(f"{field or kind}: {code!r} {state} in dictionary {kind}; {hint}")


def _entry(session: Session, kind: str, code: str) -> DictionaryEntry:
    check_kind(kind)
    entry = session.scalar(
        select(DictionaryEntry).where(DictionaryEntry.kind == kind, DictionaryEntry.code == code)
    )
    if entry is None:
        raise UnknownDictionaryValue(f"code: {code!r} is not a value in dictionary {kind}")
    return entry


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise DictionaryError(f"name: expected 1 to 200 characters, got {len(name)}")
    return name


def add(
    session: Session, actor: Actor, kind: str, code: str, name: str, *, sort_order: int = 0
) -> DictionaryValue:
    """Add a value; the code is lower case (letters, digits, ``_ . -``) and unique in its dictionary."""
    check_kind(kind)
    if not _CODE.match(code):
        raise DictionaryError(
            f"code: expected lower-case letters, digits, '_', '.', '-' (at most 64), got {code!r}"
        )
    existing = session.scalar(
        select(DictionaryEntry.id).where(DictionaryEntry.kind == kind, DictionaryEntry.code == code)
    )
    if existing is not None:
        raise DictionaryError(f"code: {code!r} already exists in dictionary {kind}")
    entry = DictionaryEntry(kind=kind, code=code, name=_check_name(name), active=True, sort_order=sort_order)
    session.add(entry)
    session.flush()
    created = _value(entry)
    audit.record(session, actor, "dictionary.add", "dictionary_entry", f"{kind}:{code}", after=created)
    return created


def rename(session: Session, actor: Actor, kind: str, code: str, name: str) -> DictionaryValue:
    """Change the display name of a value (its code, which records refer to, stays)."""
    entry = _entry(session, kind, code)
    before = _value(entry)
    entry.name = _check_name(name)
    session.flush()
    after = _value(entry)
    audit.record(
        session, actor, "dictionary.rename", "dictionary_entry", f"{kind}:{code}", before=before, after=after
    )
    return after


def deactivate(session: Session, actor: Actor, kind: str, code: str) -> DictionaryValue:
    """Stop offering a value for new records; records that use it keep it."""
    entry = _entry(session, kind, code)
    if not entry.active:
        raise DictionaryError(f"code: {code!r} in dictionary {kind} is already deactivated")
    before = _value(entry)
    entry.active = False
    session.flush()
    after = _value(entry)
    audit.record(
        session,
        actor,
        "dictionary.deactivate",
        "dictionary_entry",
        f"{kind}:{code}",
        before=before,
        after=after,
    )
    return after
