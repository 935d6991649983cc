"""The in-memory authorization snapshot: every Internet service the RADIUS server may authorize.

What: ``load_snapshot`` reads, with three streaming set-based queries merged by service id
(services with their account, balance and category; CPE MACs; switch ports), one immutable
``Snapshot`` of ``Subscriber`` values indexed by login, MAC, switch port and service id.
``refresh`` returns a new ``Snapshot`` in which only the services named by a ``Changes`` (built
from PostgreSQL NOTIFY payloads or from ``poll_changes`` on SQLite) are re-read; every other
``Subscriber`` object is shared with the old snapshot, and a re-read one that did not change
is the old object too.  ``SnapshotListener`` LISTENs on ``aaa.schema.SNAPSHOT_CHANNEL`` with a
dedicated autocommit psycopg connection in a thread and hands batches of changes to a callback.

Why: an Access-Request must be answered without waiting for the database (DESIGN.md, "The
RADIUS hot path"), so authorization reads this snapshot on the reactor thread.  A snapshot is
never changed once built: a reader holding one sees a consistent state, and the daemon swaps
in the next one with a single reference assignment (on the reactor thread, e.g. through
``reactor.callFromThread``).  Loading and refreshing block on the database and are plain
functions meant to run in a thread; nothing here needs Twisted.

Wiring (PostgreSQL): start the listener first; on every (re)connection it delivers
``Changes(full=True)`` *after* its LISTEN is in place, so the callback's
``refresh(engine, current, changes)`` loads everything and no change committed in between can
be missed.  Later batches patch the current snapshot.  A failed callback is retried with the
next batch (its changes are kept).  ``listener.connected`` is the degraded-mode flag and
``listener.last_refresh`` the time of the last successful callback (the "snapshot age" metric).

Wiring (SQLite, the small embedded case, no LISTEN): call ``poll_changes(engine, since,
known=current)`` every few seconds and ``refresh`` with the result; the next ``since`` is the
result's ``as_of``.  Services are found through ``services.updated_at`` (with an overlap margin
for transactions that committed late); accounts (balance, credit limit, mode, number) and
speed profiles are compared in full with the snapshot on every poll, which is cheap at SQLite's
scale.  Changes that bump nothing there (a MAC or port added with plain SQL, a switch's
remote-id, a customer's category) are seen at the next full reload: the daemon should also
reload in full periodically (``Changes(full=True)``), on SQLite every few minutes, on
PostgreSQL as a safety net (customers have no NOTIFY trigger: a category change waits for it).

Logins: ``by_login`` is exact (case-sensitive).  ``by_folded_login`` takes a key already passed
through ``aaa.identification.fold_login`` and finds the one subscriber whose folded login it
is (None if two logins fold to the same key: ambiguous, never guessed).  The choice is the
NAS's (``IdentificationPlan.login_case_sensitive``): ``snapshot.directory(login_case_sensitive=
...)`` gives the lookup object ``aaa.authorize`` expects.  Only logins whose folded form
differs are stored a second time, so lower-case logins cost one index entry.

A stored password that ``Credential.parse`` refuses does not stop the load: it is logged
(service id and reason, never the value) and that subscriber gets ``credential=None`` and
``bad_credential=True``, which password methods reject.  Invalid addresses and speed profiles
are treated the same way (logged, None).  Money: ``available`` is the subscriber's funds (the
ledger balance is debit-positive, so funds are ``-balance``) plus the account's credit limit.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from itertools import groupby
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select

from aaa import schema as t
from aaa.auth_methods import Credential, CredentialError
from aaa.identification import PortKey, fold_login, parse_mac
from aaa.vendor_profiles import InvalidProfile, SpeedProfile

_log = logging.getLogger(__name__)

STATUSES = ("pending", "active", "suspended_voluntary", "suspended_involuntary", "blocked", "churned")

YIELD_PER = 5000
"""Rows fetched per round trip while streaming (a server-side cursor on PostgreSQL)."""

MAX_PATCH_KEYS = 20_000
"""A ``Changes`` naming more ids than this is applied as a full reload (one plain scan beats
huge IN lists)."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What authorization needs to know about one Internet service, as of the snapshot.

    ``available`` = funds (``-`` ledger balance) + credit limit.  ``credential`` is None when no
    password is stored or when the stored one is unusable (then ``bad_credential`` is True).
    ``macs`` and ``ports`` are the keys the service is indexed by.  ``account_id`` is for
    the prepaid quota and for polling.  (Fields cost ~40 bytes per million subscribers each:
    ids that nothing reads from the snapshot, such as the ledger account's, stay out.)
    """

    service_id: int
    account_id: int
    account_number: str
    status: str
    category: str | None
    billing_mode: str
    available: Decimal
    credential: Credential | None
    login: str | None
    profile: SpeedProfile | None
    framed_ip: IPv4Address | IPv6Address | None = None
    framed_pool: str | None = None
    ipv6_prefix: IPv6Network | IPv4Network | None = None
    delegated_prefix: IPv6Network | IPv4Network | None = None
    simultaneous_use: int | None = None
    bad_credential: bool = False
    macs: tuple[str, ...] = ()
    ports: tuple[PortKey, ...] = ()


# A key shared by several subscribers (two logins folding alike, a port key of two switches
# without remote-id) is stored as a tuple of them and looked up as "ambiguous": not found.
_Entry = Subscriber | tuple[Subscriber, ...]


def _only(entry: _Entry | None) -> Subscriber | None:
    return entry if isinstance(entry, Subscriber) else None


def _add(index: dict[Any, _Entry], key: object, sub: Subscriber) -> None:
    present = index.get(key)
    if present is None:
        index[key] = sub
    else:
        index[key] = (*(present if isinstance(present, tuple) else (present,)), sub)


def _remove(index: dict[Any, _Entry], key: object, service_id: int) -> None:
    present = index.get(key)
    if present is None:
        return
    rest = tuple(
        s for s in (present if isinstance(present, tuple) else (present,)) if s.service_id != service_id
    )
    if not rest:
        del index[key]
    else:
        index[key] = rest[0] if len(rest) == 1 else rest


class Directory(Protocol):
    """The lookups ``aaa.authorize`` makes (see ``Snapshot.directory``)."""

    def by_login(self, login: str) -> Subscriber | None: ...
    def by_mac(self, mac: str) -> Subscriber | None: ...
    def by_port(self, port: PortKey) -> Subscriber | None: ...


class Snapshot:
    """Immutable indexes over the subscribers; build new ones with ``load_snapshot``/``refresh``."""

    __slots__ = ("_by_folded", "_by_id", "_by_login", "_by_mac", "_by_port", "_profiles", "loaded_at")

    def __init__(
        self,
        subscribers: Iterable[Subscriber] = (),
        *,
        loaded_at: datetime,
        profiles: Mapping[int, SpeedProfile] | None = None,
    ) -> None:
        self.loaded_at = loaded_at
        """When the data was read (start of the reading transaction), aware UTC."""
        self._by_id: dict[int, Subscriber] = {}
        self._by_login: dict[str, Subscriber] = {}
        self._by_folded: dict[str, _Entry] = {}
        self._by_mac: dict[str, _Entry] = {}
        self._by_port: dict[PortKey, _Entry] = {}
        self._profiles: dict[int, SpeedProfile] = dict(profiles or {})
        for sub in subscribers:
            self._insert(sub)

    # -- lookups (reactor thread) ------------------------------------------------------------

    def by_login(self, login: str) -> Subscriber | None:
        """The subscriber whose login is exactly ``login`` (case-sensitive)."""
        return self._by_login.get(login)

    def by_folded_login(self, folded: str) -> Subscriber | None:
        """The one subscriber with ``fold_login(login) == folded``; None if none or several."""
        exact = self._by_login.get(folded)  # a login already in folded form
        other = self._by_folded.get(folded)
        if other is None:
            return exact
        return None if exact is not None else _only(other)

    def by_mac(self, mac: str) -> Subscriber | None:
        """By canonical MAC (``aaa.identification.parse_mac``)."""
        return _only(self._by_mac.get(mac))

    def by_port(self, port: PortKey) -> Subscriber | None:
        """By switch port; ``vlan=None`` is the database's VLAN 0."""
        return _only(self._by_port.get(port))

    def get(self, service_id: int) -> Subscriber | None:
        return self._by_id.get(service_id)

    def directory(self, *, login_case_sensitive: bool) -> Directory:
        """The lookups of this snapshot with logins compared as one NAS's plan says."""
        return self if login_case_sensitive else _FoldedLogins(self)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(self._by_id.values())

    def __repr__(self) -> str:
        return f"<Snapshot {len(self)} subscribers as of {self.loaded_at.isoformat()}>"

    # -- building (never on a snapshot someone else already holds) ---------------------------

    def _insert(self, sub: Subscriber) -> None:
        self._by_id[sub.service_id] = sub
        if sub.login is not None:
            self._by_login[sub.login] = sub
            folded = fold_login(sub.login)
            if folded != sub.login:
                _add(self._by_folded, folded, sub)
        for mac in sub.macs:
            _add(self._by_mac, mac, sub)
        for port in sub.ports:
            _add(self._by_port, port, sub)

    def _delete(self, sub: Subscriber) -> None:
        del self._by_id[sub.service_id]
        if sub.login is not None:
            if self._by_login.get(sub.login) is sub:
                del self._by_login[sub.login]
            folded = fold_login(sub.login)
            if folded != sub.login:
                _remove(self._by_folded, folded, sub.service_id)
        for mac in sub.macs:
            _remove(self._by_mac, mac, sub.service_id)
        for port in sub.ports:
            _remove(self._by_port, port, sub.service_id)

    def _patched(
        self,
        fresh: Iterable[Subscriber],
        gone: Iterable[int],
        *,
        loaded_at: datetime,
        profiles: Mapping[int, SpeedProfile],
    ) -> Snapshot:
        """A copy with ``fresh`` put in and ``gone`` taken out; equal subscribers stay shared."""
        new = Snapshot.__new__(Snapshot)
        new.loaded_at = loaded_at
        new._by_id = self._by_id.copy()
        new._by_login = self._by_login.copy()
        new._by_folded = self._by_folded.copy()
        new._by_mac = self._by_mac.copy()
        new._by_port = self._by_port.copy()
        new._profiles = dict(profiles)
        for service_id in gone:
            old = new._by_id.get(service_id)
            if old is not None:
                new._delete(old)
        for sub in fresh:
            old = new._by_id.get(sub.service_id)
            if old is not None:
                if old == sub:
                    continue
                new._delete(old)
            new._insert(sub)
        return new


@dataclass(frozen=True, slots=True)
class _FoldedLogins:
    snapshot: Snapshot

    def by_login(self, login: str) -> Subscriber | None:
        return self.snapshot.by_folded_login(login)

    def by_mac(self, mac: str) -> Subscriber | None:
        return self.snapshot.by_mac(mac)

    def by_port(self, port: PortKey) -> Subscriber | None:
        return self.snapshot.by_port(port)


# --------------------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class Changes:
    """What to re-read: ids named by NOTIFY payloads or by a poll; ``full`` means everything.

    ``as_of`` (polls only) is the watermark to pass as the next ``since``.
    """

    services: frozenset[int] = frozenset()
    accounts: frozenset[int] = frozenset()
    profiles: frozenset[int] = frozenset()
    switches: frozenset[int] = frozenset()
    ledgers: frozenset[int] = frozenset()
    full: bool = False
    as_of: datetime | None = field(default=None, compare=False)

    @classmethod
    def from_payloads(cls, payloads: Iterable[str]) -> Changes:
        """Parse ``service:<id>``, ``account:<id>``, ``profile:<id>``, ``switch:<id>``,
        ``ledger:<id>``; empty payloads mean nothing, anything else is logged and ignored."""
        found: dict[str, set[int]] = {
            "service": set(),
            "account": set(),
            "profile": set(),
            "switch": set(),
            "ledger": set(),
        }
        for payload in payloads:
            if not payload:
                continue
            kind, _, number = payload.partition(":")
            ids = found.get(kind)
            if ids is None or not number.isdigit():
                _log.warning("snapshot: ignoring notification payload %r", payload)
                continue
            ids.add(int(number))
        return cls(
            services=frozenset(found["service"]),
            accounts=frozenset(found["account"]),
            profiles=frozenset(found["profile"]),
            switches=frozenset(found["switch"]),
            ledgers=frozenset(found["ledger"]),
        )

    def __or__(self, other: Changes) -> Changes:
        as_of = max((a for a in (self.as_of, other.as_of) if a is not None), default=None)
        return Changes(
            self.services | other.services,
            self.accounts | other.accounts,
            self.profiles | other.profiles,
            self.switches | other.switches,
            self.ledgers | other.ledgers,
            self.full or other.full,
            as_of,
        )

    def __bool__(self) -> bool:
        return self.full or self.size > 0

    @property
    def size(self) -> int:
        return sum(map(len, (self.services, self.accounts, self.profiles, self.switches, self.ledgers)))


# --------------------------------------------------------------------------- loading


def load_snapshot(engine: Engine) -> Snapshot:
    """Read every Internet service into a new ``Snapshot`` (blocking: run it in a thread).

    The cyclic garbage collector is paused while the objects are built: with millions of new
    container objects it would otherwise run hundreds of full passes for nothing (a quarter
    of the load time).  The daemon may ``gc.freeze()`` after swapping a snapshot in, so later
    collections skip it too.
    """
    with _reading(engine) as conn, _collector_paused():
        loaded_at = datetime.now(UTC)
        profiles = _load_profiles(conn, {})
        return Snapshot(_subscribers(conn, None, profiles), loaded_at=loaded_at, profiles=profiles)


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def refresh(engine: Engine, snapshot: Snapshot, changes: Changes) -> Snapshot:
    """A new snapshot with the services ``changes`` names re-read; the rest is shared.

    Services named that are gone (deleted, no longer Internet) leave the snapshot.  A full or
    very large ``Changes`` is a plain ``load_snapshot`` (nothing shared).  Blocking: run it in
    a thread.
    """
    if changes.full or changes.size > MAX_PATCH_KEYS:
        return load_snapshot(engine)
    if not changes:
        return snapshot
    with _reading(engine) as conn:
        loaded_at = datetime.now(UTC)
        profiles = _load_profiles(conn, snapshot._profiles)
        s, a = t.services, t.accounts
        wanted: list[ColumnElement[bool]] = []
        if changes.services:
            wanted.append(s.c.id.in_(changes.services))
        if changes.accounts:
            wanted.append(s.c.account_id.in_(changes.accounts))
        if changes.ledgers:
            wanted.append(a.c.ledger_account_id.in_(changes.ledgers))
        if changes.profiles:
            wanted.append(s.c.speed_profile_id.in_(changes.profiles))
        if changes.switches:
            on_switch = select(t.switch_ports.c.service_id).where(
                t.switch_ports.c.switch_id.in_(changes.switches)
            )
            wanted.append(s.c.id.in_(on_switch))
        fresh = list(_subscribers(conn, or_(*wanted), profiles))
    gone = changes.services - {sub.service_id for sub in fresh}
    return snapshot._patched(fresh, gone, loaded_at=loaded_at, profiles=profiles)


class _reading:
    """One read transaction; REPEATABLE READ on PostgreSQL so the queries agree."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Connection:
        conn = self.engine.connect()
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.begin()
        self.conn = conn
        return conn

    def __exit__(self, *exc: object) -> None:
        try:
            self.conn.rollback()  # read only
        finally:
            self.conn.close()


def _load_profiles(conn: Connection, previous: Mapping[int, SpeedProfile]) -> dict[int, SpeedProfile]:
    """All speed profiles (a small table), reusing equal objects from ``previous``."""
    p = t.speed_profiles
    out: dict[int, SpeedProfile] = {}
    for row in conn.execute(select(p)):
        try:
            profile = SpeedProfile.from_record(row)
        except InvalidProfile as exc:
            _log.error("snapshot: speed profile %s unusable: %s", row.id, exc)
            continue
        old = previous.get(row.id)
        out[row.id] = old if old == profile else profile
    return out


def _internet(where: ColumnElement[bool] | None) -> ColumnElement[bool]:
    kind = t.services.c.kind == "internet"
    return kind if where is None else and_(kind, where)


def _service_join() -> Any:
    return t.services.join(t.accounts, t.accounts.c.id == t.services.c.account_id)


def _grouped(rows: Iterable[Any]) -> Iterator[tuple[int, list[Any]]]:
    for service_id, group in groupby(rows, key=lambda r: r[0]):
        yield service_id, list(group)


def _subscribers(
    conn: Connection, where: ColumnElement[bool] | None, profiles: Mapping[int, SpeedProfile]
) -> Iterator[Subscriber]:
    """Stream the subscribers matching ``where``, ordered by service id (three cursors, merged)."""
    s, a, la, c, d = t.services, t.accounts, t.ledger_accounts, t.customers, t.dictionary_entries
    m, sp, sw = t.service_macs, t.switch_ports, t.switches
    cond = _internet(where)
    streaming = conn.execution_options(yield_per=YIELD_PER)
    main = streaming.execute(
        select(
            s.c.id,
            s.c.account_id,
            a.c.number,
            s.c.status,
            d.c.code,
            a.c.billing_mode,
            la.c.balance,
            a.c.credit_limit,
            s.c.password,
            s.c.login,
            s.c.speed_profile_id,
            s.c.framed_ip,
            s.c.framed_pool,
            s.c.ipv6_prefix,
            s.c.delegated_prefix,
            s.c.simultaneous_use,
        )
        .select_from(
            _service_join()
            .join(la, la.c.id == a.c.ledger_account_id)
            .join(c, c.c.id == a.c.customer_id)
            .outerjoin(d, d.c.id == c.c.category_id)
        )
        .where(cond)
        .order_by(s.c.id)
    )
    macs = _grouped(
        streaming.execute(
            select(m.c.service_id, m.c.mac)
            .select_from(m.join(_service_join(), s.c.id == m.c.service_id))
            .where(cond)
            .order_by(m.c.service_id)
        )
    )
    ports = _grouped(
        streaming.execute(
            select(sp.c.service_id, sw.c.remote_id, sp.c.port, sp.c.vlan)
            .select_from(
                sp.join(sw, sw.c.id == sp.c.switch_id).join(_service_join(), s.c.id == sp.c.service_id)
            )
            .where(cond)
            .order_by(sp.c.service_id)
        )
    )
    next_macs = next(macs, None)
    next_ports = next(ports, None)
    intern = sys.intern
    zero = Decimal(0)
    for row in main:
        service_id = row[0]
        mac_keys: tuple[str, ...] = ()
        while next_macs is not None and next_macs[0] <= service_id:
            if next_macs[0] == service_id:
                mac_keys = _mac_keys(service_id, next_macs[1])
            next_macs = next(macs, None)
        port_keys: tuple[PortKey, ...] = ()
        while next_ports is not None and next_ports[0] <= service_id:
            if next_ports[0] == service_id:
                port_keys = _port_keys(next_ports[1])
            next_ports = next(ports, None)
        (
            _,
            account_id,
            number,
            status,
            category,
            mode,
            balance,
            limit,
            password,
            login,
            profile_id,
            framed_ip,
            framed_pool,
            ipv6_prefix,
            delegated_prefix,
            simultaneous_use,
        ) = row
        credential = None
        bad = False
        if password is not None:
            try:
                credential = Credential.parse(password)
            except CredentialError as exc:
                _log.error("snapshot: service %s has an unusable stored password: %s", service_id, exc)
                bad = True
        profile = None
        if profile_id is not None:
            profile = profiles.get(profile_id)
            if profile is None:
                _log.warning("snapshot: service %s has unusable speed profile %s", service_id, profile_id)
        yield Subscriber(
            service_id=service_id,
            account_id=account_id,
            account_number=number,
            status=intern(status),
            category=intern(category) if category is not None else None,
            billing_mode=intern(mode),
            available=(limit or zero) - (balance or zero),
            credential=credential,
            login=login,
            profile=profile,
            framed_ip=_address(service_id, "framed_ip", framed_ip, ipaddress.ip_address),
            framed_pool=intern(framed_pool) if framed_pool is not None else None,
            ipv6_prefix=_address(service_id, "ipv6_prefix", ipv6_prefix, ipaddress.ip_network),
            delegated_prefix=_address(service_id, "delegated_prefix", delegated_prefix, ipaddress.ip_network),
            simultaneous_use=simultaneous_use,
            bad_credential=bad,
            macs=mac_keys,
            ports=port_keys,
        )


def _address(service_id: int, name: str, value: str | None, parse: Callable[[str], Any]) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        _log.error("snapshot: service %s has an invalid %s %r", service_id, name, value)
        return None


def _mac_keys(service_id: int, rows: list[Any]) -> tuple[str, ...]:
    out = []
    for _, stored in rows:
        mac = parse_mac(stored)
        if mac is None:
            _log.error("snapshot: service %s has an invalid MAC %r", service_id, stored)
        else:
            out.append(mac)
    return tuple(out)


def _port_keys(rows: list[Any]) -> tuple[PortKey, ...]:
    """Switch ports as ``aaa.identification`` names them: the switch is its remote-id (a
    canonical MAC when it is one, ``""`` for a switch without one), VLAN 0 is None."""
    out = []
    for _, remote_id, port, vlan in rows:
        switch = "" if remote_id is None else sys.intern(parse_mac(remote_id) or remote_id)
        out.append(PortKey(switch, port, vlan or None))
    return tuple(out)


# --------------------------------------------------------------------------- SQLite polling


def poll_changes(
    engine: Engine,
    since: datetime,
    *,
    known: Snapshot | None = None,
    overlap: timedelta = timedelta(seconds=5),
) -> Changes:
    """What changed since ``since``, for databases without LISTEN (SQLite). Blocking.

    Services: ``updated_at > since - overlap`` (the margin catches writers whose transaction
    committed after it stamped the row; re-reading an unchanged service is harmless).
    Accounts and profiles: every account's balance, credit limit, mode and number, and every
    profile, are compared with ``known``; without ``known`` every account with an Internet
    service is reported (``refresh`` then re-reads them all).  ``as_of`` is the next ``since``.
    """
    s, a, la = t.services, t.accounts, t.ledger_accounts
    with _reading(engine) as conn:
        as_of = datetime.now(UTC)
        services = frozenset(
            conn.execute(select(s.c.id).where(s.c.updated_at > since - overlap)).scalars().all()
        )
        rows = conn.execute(
            select(a.c.id, a.c.number, a.c.billing_mode, la.c.balance, a.c.credit_limit)
            .select_from(a.join(la, la.c.id == a.c.ledger_account_id))
            .where(a.c.id.in_(select(s.c.account_id).where(s.c.kind == "internet")))
        ).all()
        profiles: frozenset[int] = frozenset()
        if known is not None:
            seen: dict[int, tuple[str, str, Decimal]] = {}
            for sub in known:
                seen[sub.account_id] = (sub.account_number, sub.billing_mode, sub.available)
            accounts = frozenset(
                account_id
                for account_id, number, mode, balance, limit in rows
                if seen.get(account_id, (number, mode, limit - balance)) != (number, mode, limit - balance)
            )
            current = _load_profiles(conn, known._profiles)
            old = known._profiles
            profiles = frozenset(
                pid for pid in current.keys() | old.keys() if current.get(pid) is not old.get(pid)
            )
        else:
            accounts = frozenset(row[0] for row in rows)
    return Changes(services=services, accounts=accounts, profiles=profiles, as_of=as_of)


# --------------------------------------------------------------------------- PostgreSQL LISTEN


class SnapshotListener:
    """LISTEN on ``SNAPSHOT_CHANNEL`` in a thread; hand each batch of changes to ``on_changes``.

    ``on_changes`` runs in the listener's thread (it may block, e.g. call ``refresh``); if it
    raises, the batch is kept and offered again with the next one.  After every (re)connection
    the first batch is ``Changes(full=True)``: notifications sent while not listening are lost,
    so the caller reloads everything.  A dropped connection is retried with exponential
    backoff (``backoff_min`` .. ``backoff_max`` seconds); meanwhile ``connected`` is False.
    ``poll_s`` bounds how long ``stop`` waits; an idle connection is checked with ``SELECT 1``
    every ``keepalive_s``.  ``batch_window_s`` gathers notifications that arrive together
    (one transaction's, one burst of payments) into one refresh.
    """

    def __init__(
        self,
        conninfo: str,
        on_changes: Callable[[Changes], None],
        *,
        channel: str = t.SNAPSHOT_CHANNEL,
        poll_s: float = 0.2,
        batch_window_s: float = 0.02,
        keepalive_s: float = 10.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout_s: int = 5,
    ) -> None:
        self.conninfo = conninfo
        self.on_changes = on_changes
        self.channel = channel
        self.poll_s = poll_s
        self.batch_window_s = batch_window_s
        self.keepalive_s = keepalive_s
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.connect_timeout_s = connect_timeout_s
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_refresh: datetime | None = None
        """When ``on_changes`` last returned normally (aware UTC); None before the first time."""
        self.failures = 0
        """Connection attempts and callbacks that failed so far (for a metric)."""

    @classmethod
    def for_engine(
        cls, engine: Engine, on_changes: Callable[[Changes], None], **kwargs: Any
    ) -> SnapshotListener:
        """A listener on the database of a ``postgresql+psycopg`` engine."""
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(conninfo, on_changes, **kwargs)

    @property
    def connected(self) -> bool:
        """LISTEN is in place; False means degraded (the snapshot may be going stale)."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Run ``run`` in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("listener already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="aaa-snapshot-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait (at most ``timeout``) for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.error("snapshot listener did not stop within %.1f s", timeout)
            else:
                self._thread = None

    def run(self) -> None:
        """The blocking loop: until ``stop``, listen, reconnecting with backoff on errors."""
        import psycopg  # only the PostgreSQL deployment needs it
        from psycopg import sql

        delay = self.backoff_min
        pending = Changes()
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, connect_timeout=self.connect_timeout_s
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._connected.set()
                    delay = self.backoff_min
                    pending = pending | Changes(full=True)
                    pending = self._listen(conn, pending)
            except Exception as exc:  # a dropped connection, or a bug: never end the thread
                self.failures += 1
                if self._stop.is_set():
                    break
                _log.warning("snapshot listener: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self._connected.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _listen(self, conn: Any, pending: Changes) -> Changes:
        quiet_since = time.monotonic()
        retry_at = 0.0
        retry_delay = self.backoff_min
        while not self._stop.is_set():
            if pending and time.monotonic() >= retry_at:
                pending = self._deliver(pending)
                if pending:  # the callback failed: back off before offering it again
                    retry_at = time.monotonic() + retry_delay
                    retry_delay = min(retry_delay * 2, self.backoff_max)
                else:
                    retry_delay = self.backoff_min
            payloads = [n.payload for n in conn.notifies(timeout=self.poll_s, stop_after=1)]
            if payloads:
                payloads += [n.payload for n in conn.notifies(timeout=self.batch_window_s)]
                pending = pending | Changes.from_payloads(payloads)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.keepalive_s:
                conn.execute("SELECT 1")  # a dead peer raises here
                quiet_since = time.monotonic()
        return pending

    def _deliver(self, changes: Changes) -> Changes:
        """Call back; what is returned is still pending (all of it if the callback failed)."""
        try:
            self.on_changes(changes)
        except Exception:
            self.failures += 1
            _log.exception("snapshot listener: applying %s failed; retrying with the next batch", changes)
            return changes
        self.last_refresh = datetime.now(UTC)
        return Changes()
