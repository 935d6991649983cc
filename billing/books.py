"""The operator's own books: revenue, clearing, suspense and adjustment ledger accounts.

They are created on first use, one per (purpose, currency), with codes like ``revenue:internet:EUR``.
Two transactions may both see a book missing (the first payments of a new bank arriving at once):
the code is unique, so one creates it and the other, refused, finds it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.db.ledger import LedgerAccount
from billing.ledger import LedgerError, open_account

BOOKS = {
    # purpose: (ledger account kind, human name)
    "adjustments": ("adjustment", "Manual adjustments and goodwill"),
    "suspense": ("suspense", "Unmatched money received"),
    "cash": ("cash", "Cash desk"),
}


def book_code(purpose: str, currency: str, detail: str = "") -> str:
    """Code of a book account, e.g. ``revenue:internet:EUR`` or ``clearing:bank1:EUR``."""
    return ":".join(p for p in (purpose, detail, currency) if p)


def book_account(session: Session, purpose: str, currency: str, detail: str = "") -> int:
    """Id of the book account for ``purpose`` (``revenue`` and ``clearing`` take a ``detail``)."""
    code = book_code(purpose, currency, detail)
    found = session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code))
    if found is not None:
        return found
    if purpose == "revenue":
        kind, name = "revenue", f"Revenue: {detail or 'general'}"
    elif purpose == "clearing":
        kind, name = "clearing", f"Clearing: {detail or 'general'}"
    elif purpose in BOOKS:
        kind, name = BOOKS[purpose]
    else:
        raise LedgerError(
            f"purpose: expected revenue, clearing or one of {', '.join(BOOKS)}, got {purpose!r}"
        )
    try:
        with session.begin_nested():
            return open_account(session, code=code, name=f"{name} ({currency})", kind=kind, currency=currency)
    except IntegrityError:  # created meanwhile by a concurrent transaction, now committed
        found = session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code))
        if found is None:
            raise
        return found
