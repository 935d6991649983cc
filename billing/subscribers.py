"""Subscribers: customers, their contacts and their billing accounts.

Creating a subscriber makes the customer, its contacts, one billing account and that account's
ledger account (kind ``subscriber``, code ``acct:<number>``) in the caller's transaction. The
account number identifies a subscriber everywhere an operator types one. The money on an
account is :mod:`billing.accounts`' business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from billing import accounts, audit, dictionaries, ledger
from billing.accounts import AccountInfo
from billing.audit import Actor
from billing.config import CURRENCY_MINOR_UNITS
from billing.db.customers import Account, Contact, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.ledger import LedgerAccount
from billing.db.types import utcnow
from rating.money import MoneyError, parse_amount

CUSTOMER_KINDS = ("person", "company")
BILLING_MODES = ("prepaid", "postpaid")
STATUSES = ("active", "closed")
CONTACT_KINDS = ("email", "phone", "address")
FIRST_ACCOUNT_NUMBER = 100001
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{3,30}$")


class SubscriberError(ValueError):
    """A subscriber or account request that is refused; nothing is written."""


@dataclass(frozen=True)
class ContactInfo:
    """A way to reach the customer."""

    kind: str
    value: str


@dataclass(frozen=True)
class SubscriberInfo:
    """A customer with its contacts and accounts."""

    customer_id: int
    kind: str
    name: str
    tax_id: str | None
    category: str
    region: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    contacts: tuple[ContactInfo, ...]
    accounts: tuple[AccountInfo, ...]


@dataclass(frozen=True)
class SubscriberRow:
    """One line of a subscriber list: an account and its customer."""

    account_number: str
    name: str
    kind: str
    category: str
    region: str
    status: str
    currency: str
    balance: Decimal


# --------------------------------------------------------------------------- reading


def _code(session: Session, entry_id: int) -> str:
    return session.scalar(select(DictionaryEntry.code).where(DictionaryEntry.id == entry_id)) or ""


def _subscriber_info(session: Session, customer: Customer) -> SubscriberInfo:
    contacts = session.scalars(select(Contact).where(Contact.customer_id == customer.id).order_by(Contact.id))
    rows = session.scalars(select(Account).where(Account.customer_id == customer.id).order_by(Account.id))
    return SubscriberInfo(
        customer_id=customer.id,
        kind=customer.kind,
        name=customer.name,
        tax_id=customer.tax_id,
        category=_code(session, customer.category_id),
        region=_code(session, customer.region_id),
        status=customer.status,
        created_at=customer.created_at,
        closed_at=customer.closed_at,
        contacts=tuple(ContactInfo(c.kind, c.value) for c in contacts),
        accounts=tuple(accounts.info(session, a) for a in rows),
    )


def show(session: Session, number: str) -> SubscriberInfo:
    """The subscriber owning account ``number``: customer, contacts and every account."""
    account = accounts.find(session, number)
    customer = session.get(Customer, account.customer_id)
    assert customer is not None  # the foreign key guarantees it
    return _subscriber_info(session, customer)


def search(
    session: Session,
    *,
    category: str | None = None,
    region: str | None = None,
    status: str | None = None,
    name: str | None = None,
    limit: int = 50,
) -> list[SubscriberRow]:
    """Accounts with their customers, filtered by category/region code, account status and a
    case-insensitive name substring; ordered by account number."""
    if status is not None and status not in STATUSES:
        raise SubscriberError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    if limit < 1:
        raise SubscriberError(f"limit: expected a positive number, got {limit}")
    cat, reg = aliased(DictionaryEntry), aliased(DictionaryEntry)
    query = (
        select(Account.number, Customer.name, Customer.kind, cat.code, reg.code, Account.status)
        .add_columns(Account.currency, LedgerAccount.kind, LedgerAccount.balance)
        .join(Customer, Customer.id == Account.customer_id)
        .join(cat, cat.id == Customer.category_id)
        .join(reg, reg.id == Customer.region_id)
        .join(LedgerAccount, LedgerAccount.id == Account.ledger_account_id)
    )
    if category:
        query = query.where(cat.code == category)
    if region:
        query = query.where(reg.code == region)
    if status:
        query = query.where(Account.status == status)
    if name:
        query = query.where(Customer.name.icontains(name, autoescape=True))
    rows = session.execute(query.order_by(Account.number).limit(limit))
    return [
        SubscriberRow(number, cname, ckind, ccode, rcode, st, cur, ledger.natural_balance(lkind, raw))
        for number, cname, ckind, ccode, rcode, st, cur, lkind, raw in rows
    ]


# --------------------------------------------------------------------------- changing


def _credit_limit(text: str | Decimal) -> Decimal:
    try:
        value = parse_amount(text, field="credit_limit")
    except MoneyError as exc:
        raise SubscriberError(str(exc)) from None
    if value < 0:
        raise SubscriberError(f"credit_limit: must be zero or positive, got {value}")
    return value


def _choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SubscriberError(f"{field}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _name(field: str, value: str, longest: int = 200) -> str:
    value = value.strip()
    if not value or len(value) > longest:
        raise SubscriberError(f"{field}: expected 1 to {longest} characters, got {len(value)}")
    return value


def _contacts(
    emails: tuple[str, ...], phones: tuple[str, ...], addresses: tuple[str, ...]
) -> list[ContactInfo]:
    for email in emails:
        if not _EMAIL.match(email):
            raise SubscriberError(f"email: expected an address like name@example.net, got {email!r}")
    for phone in phones:
        if not _PHONE.match(phone):
            raise SubscriberError(f"phone: expected digits with an optional leading +, got {phone!r}")
    return [
        *(ContactInfo("email", e) for e in emails),
        *(ContactInfo("phone", p) for p in phones),
        *(ContactInfo("address", _name("address", a, 300)) for a in addresses),
    ]


def _next_account_number(session: Session) -> str:
    """One above the highest all-digit account number, starting at :data:`FIRST_ACCOUNT_NUMBER`."""
    candidates = session.scalars(
        select(Account.number)
        .where(func.length(Account.number) >= len(str(FIRST_ACCOUNT_NUMBER)))
        .order_by(func.length(Account.number).desc(), Account.number.desc())
        .limit(100)
    )
    highest = next((int(n) for n in candidates if n.isdigit()), FIRST_ACCOUNT_NUMBER - 1)
    return str(max(highest + 1, FIRST_ACCOUNT_NUMBER)).zfill(len(str(FIRST_ACCOUNT_NUMBER)))


def create(
    session: Session,
    actor: Actor,
    *,
    kind: str,
    name: str,
    category: str,
    region: str,
    currency: str,
    tax_id: str | None = None,
    emails: tuple[str, ...] = (),
    phones: tuple[str, ...] = (),
    addresses: tuple[str, ...] = (),
    account_number: str | None = None,
    credit_limit: str | Decimal = "0",
    billing_mode: str = "prepaid",
) -> SubscriberInfo:
    """Create a customer, its contacts, an account and the account's ledger account."""
    _choice("kind", kind, CUSTOMER_KINDS)
    _choice("billing_mode", billing_mode, BILLING_MODES)
    name = _name("name", name)
    limit = _credit_limit(credit_limit)
    if currency not in CURRENCY_MINOR_UNITS:
        raise SubscriberError(
            f"currency: expected one of {', '.join(sorted(CURRENCY_MINOR_UNITS))}, got {currency!r}"
        )
    contacts = _contacts(emails, phones, addresses)
    category_id = dictionaries.resolve(session, "subscriber_category", category, field="category")
    region_id = dictionaries.resolve(session, "region", region, field="region")
    if account_number is None:
        account_number = _next_account_number(session)
    elif not _NUMBER.match(account_number):
        raise SubscriberError(
            f"account_number: expected 1 to 32 letters, digits, '_' or '-', got {account_number!r}"
        )
    if session.scalar(select(Account.id).where(Account.number == account_number)) is not None:
        raise SubscriberError(f"account_number: account {account_number!r} already exists")
    code = f"acct:{account_number}"
    if session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code)) is not None:
        raise SubscriberError(f"account_number: ledger account {code!r} already exists")

    customer = Customer(
        kind=kind,
        name=name,
        tax_id=(tax_id or "").strip() or None,
        category_id=category_id,
        region_id=region_id,
        status="active",
    )
    session.add(customer)
    session.flush()
    session.add_all(Contact(customer_id=customer.id, kind=c.kind, value=c.value) for c in contacts)
    ledger_account_id = ledger.open_account(
        session, code=code, name=name, kind="subscriber", currency=currency
    )
    account = Account(
        number=account_number,
        customer_id=customer.id,
        currency=currency,
        billing_mode=billing_mode,
        credit_limit=limit,
        status="active",
        ledger_account_id=ledger_account_id,
    )
    session.add(account)
    session.flush()
    created = _subscriber_info(session, customer)
    audit.record(session, actor, "subscriber.create", "account", account_number, after=created)
    return created


def update(
    session: Session,
    actor: Actor,
    number: str,
    *,
    name: str | None = None,
    tax_id: str | None = None,
    category: str | None = None,
    region: str | None = None,
    credit_limit: str | Decimal | None = None,
    billing_mode: str | None = None,
    add_emails: tuple[str, ...] = (),
    add_phones: tuple[str, ...] = (),
    add_addresses: tuple[str, ...] = (),
    remove_contacts: tuple[str, ...] = (),
) -> SubscriberInfo:
    """Change the given fields of account ``number`` and its customer, add or remove contacts
    (others stay); removing a contact the customer does not have is refused."""
    account = accounts.find(session, number)
    customer = session.get(Customer, account.customer_id)
    assert customer is not None
    if account.status == "closed":
        raise SubscriberError(f"account_number: account {number} is closed")
    before = _subscriber_info(session, customer)
    if name is not None:
        customer.name = _name("name", name)
    if tax_id is not None:
        customer.tax_id = tax_id.strip() or None
    if category is not None:
        customer.category_id = dictionaries.resolve(
            session, "subscriber_category", category, field="category"
        )
    if region is not None:
        customer.region_id = dictionaries.resolve(session, "region", region, field="region")
    if credit_limit is not None:
        account.credit_limit = _credit_limit(credit_limit)
    if billing_mode is not None:
        account.billing_mode = _choice("billing_mode", billing_mode, BILLING_MODES)
    for value in remove_contacts:
        contact = session.scalar(
            select(Contact).where(Contact.customer_id == customer.id, Contact.value == value.strip())
        )
        if contact is None:
            raise SubscriberError(f"remove_contact: the customer has no contact {value!r}")
        session.delete(contact)
    for added in _contacts(add_emails, add_phones, add_addresses):
        session.add(Contact(customer_id=customer.id, kind=added.kind, value=added.value))
    session.flush()
    after = _subscriber_info(session, customer)
    if after == before:
        raise SubscriberError("nothing to change: give at least one field with a new value")
    audit.record(session, actor, "subscriber.update", "account", number, before=before, after=after)
    return after


def close(
    session: Session, actor: Actor, number: str, *, force: bool = False, reason: str | None = None
) -> SubscriberInfo:
    """Close account ``number`` (and its customer once no account is open).

    Refused while the balance is not zero, unless ``force`` with a ``reason``.
    """
    account = accounts.find(session, number)
    customer = session.get(Customer, account.customer_id)
    assert customer is not None
    if account.status == "closed":
        raise SubscriberError(f"account_number: account {number} is already closed")
    if force and not (reason or "").strip():
        raise SubscriberError("reason: --force needs a reason")
    info = accounts.info(session, account)
    if info.balance != 0 and not force:
        raise SubscriberError(
            f"balance: account {number} has a balance of {info.balance} {info.currency}, not zero; "
            "settle it first, or close with --force --reason TEXT"
        )
    before = _subscriber_info(session, customer)
    now = utcnow()
    account.status, account.closed_at = "closed", now
    session.flush()
    still_open = session.scalar(
        select(func.count())
        .select_from(Account)
        .where(Account.customer_id == customer.id, Account.status == "active")
    )
    if not still_open:
        customer.status, customer.closed_at = "closed", now
    session.flush()
    after = _subscriber_info(session, customer)
    audit.record(
        session,
        actor,
        "subscriber.close",
        "account",
        number,
        before=before,
        after={"subscriber": after, "forced": force, "reason": reason, "balance": info.balance},
    )
    return after
