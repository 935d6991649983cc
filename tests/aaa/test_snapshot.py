"""The authorization snapshot: loading, lookups, money, refresh, SQLite polling, PostgreSQL LISTEN."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from aaa.auth_methods import CredentialScheme
from aaa.identification import PortKey, fold_login
from aaa.snapshot import Changes, Snapshot, SnapshotListener, load_snapshot, poll_changes, refresh
from aaa.vendor_profiles import SpeedProfile
from billing import accounts, dictionaries, subscribers
from billing.audit import Actor
from billing.db.customers import Account, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.ledger import LedgerAccount
from billing.db.network import Switch, SwitchPort
from billing.db.services import Service, ServiceMac
from billing.db.services import SpeedProfile as ProfileRow

ACTOR = Actor(None, "tester", None, "test")
SWITCH_MAC = "00:11:22:33:44:55"


def _now() -> datetime:
    return datetime.now(UTC)


def _account(session: Session, name: str, category: str, credit_limit: str = "0") -> Account:
    info = subscribers.create(
        session,
        ACTOR,
        kind="person",
        name=name,
        category=category,
        region="north",
        currency="EUR",
        credit_limit=credit_limit,
    )
    return accounts.find(session, info.accounts[0].number)


def _service(session: Session, account: Account, **fields: Any) -> int:
    service = Service(account_id=account.id, kind=fields.pop("kind", "internet"), **fields)
    session.add(service)
    session.flush()
    return service.id


class World:
    """Ids of the rows ``seeded`` made."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.numbers: dict[str, str] = {}


@pytest.fixture
def world(engine: Engine) -> World:
    return _seed(engine)


def _seed(engine: Engine) -> World:
    w = World()
    with Session(engine) as session, session.begin():
        for kind, code in [
            ("subscriber_category", "residential"),
            ("subscriber_category", "business"),
            ("region", "north"),
            ("adjustment_reason", "goodwill"),
        ]:
            dictionaries.add(session, ACTOR, kind, code, code.title())
        home = ProfileRow(name="home-100", down_kbps=100_000, up_kbps=20_000)
        session.add(home)
        session.flush()
        w.ids["profile"] = home.id
        ann = _account(session, "Ann", "residential", credit_limit="10")
        bo = _account(session, "Bo", "business")
        w.numbers["ann"], w.numbers["bo"] = ann.number, bo.number
        w.ids["ann_account"], w.ids["ann_ledger"] = ann.id, ann.ledger_account_id
        w.ids["ann"] = _service(
            session,
            ann,
            status="active",
            login="Alice",
            password="secret",
            speed_profile_id=home.id,
            framed_ip="10.0.0.5",
            ipv6_prefix="2001:db8:1::/64",
            delegated_prefix="2001:db8:100::/56",
            simultaneous_use=1,
        )
        w.ids["ann_tv"] = _service(session, ann, kind="tv", status="active", login="ann-tv")
        w.ids["bo"] = _service(
            session, bo, status="suspended_involuntary", login="bob", password="{NT}not-hex"
        )
        w.ids["blocked"] = _service(session, bo, status="blocked", login="Carol", password="{SSHA256}!!")
        w.ids["carol2"] = _service(session, bo, status="active", login="CAROL", framed_pool="main")
        session.add(ServiceMac(mac="aa:bb:cc:00:00:01", service_id=w.ids["ann"]))
        session.add(ServiceMac(mac="aa:bb:cc:00:00:02", service_id=w.ids["bo"]))
        switch = Switch(name="sw1", remote_id=SWITCH_MAC)
        session.add(switch)
        session.flush()
        w.ids["switch"] = switch.id
        session.add(SwitchPort(switch_id=switch.id, port="1/3", vlan=0, service_id=w.ids["ann"]))
        session.add(SwitchPort(switch_id=switch.id, port="eth 0/1/2", vlan=100, service_id=w.ids["bo"]))
    with Session(engine) as session, session.begin():
        accounts.adjust(session, ACTOR, w.numbers["ann"], "25", "goodwill")
    return w


# --------------------------------------------------------------------------- loading


def test_load_indexes_every_internet_service(engine: Engine, world: World) -> None:
    snap = load_snapshot(engine)
    assert len(snap) == 4  # the TV service is not there
    assert snap.get(world.ids["ann_tv"]) is None and snap.by_login("ann-tv") is None
    ann = snap.get(world.ids["ann"])
    assert ann is not None
    assert snap.by_login("Alice") is ann
    assert snap.by_mac("aa:bb:cc:00:00:01") is ann
    assert snap.by_port(PortKey(SWITCH_MAC, "1/3", None)) is ann
    assert snap.by_port(PortKey(SWITCH_MAC, "1/3", 0)) is None
    assert snap.by_port(PortKey(SWITCH_MAC, "eth 0/1/2", 100)) is snap.get(world.ids["bo"])
    assert ann.macs == ("aa:bb:cc:00:00:01",) and ann.ports == (PortKey(SWITCH_MAC, "1/3", None),)
    assert (ann.status, ann.category, ann.billing_mode, ann.account_number) == (
        "active",
        "residential",
        "prepaid",
        world.numbers["ann"],
    )
    assert ann.available == Decimal("35")  # 25 paid in + 10 credit limit
    assert ann.profile == SpeedProfile("home-100", 100_000, 20_000)
    assert ann.framed_ip == ip_address("10.0.0.5")
    assert ann.ipv6_prefix == ip_network("2001:db8:1::/64")
    assert ann.delegated_prefix == ip_network("2001:db8:100::/56")
    assert ann.simultaneous_use == 1 and ann.framed_pool is None
    assert ann.credential is not None and ann.credential.scheme is CredentialScheme.CLEARTEXT
    assert ann.credential.matches(b"secret") and not ann.bad_credential
    assert snap.loaded_at.tzinfo is not None and len(list(snap)) == 4


def test_statuses_missing_profile_and_bad_credentials_are_loaded(
    engine: Engine, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    snap = load_snapshot(engine)
    bo = snap.by_login("bob")
    blocked = snap.get(world.ids["blocked"])
    assert bo is not None and blocked is not None
    assert (bo.status, bo.category, bo.profile, bo.available) == (
        "suspended_involuntary",
        "business",
        None,
        Decimal(0),
    )
    assert blocked.status == "blocked"
    for sub in (bo, blocked):
        assert sub.credential is None and sub.bad_credential
    carol2 = snap.get(world.ids["carol2"])
    assert carol2 is not None and carol2.credential is None and not carol2.bad_credential
    logged = caplog.text
    assert f"service {world.ids['bo']} has an unusable stored password" in logged
    assert "not-hex" not in logged


def test_login_case_is_the_callers_choice(engine: Engine, world: World) -> None:
    snap = load_snapshot(engine)
    ann = snap.get(world.ids["ann"])
    assert snap.by_login("alice") is None
    assert snap.by_folded_login(fold_login("ALICE")) is ann
    assert snap.by_folded_login("bob") is snap.get(world.ids["bo"])  # stored already folded
    assert snap.by_folded_login("carol") is None  # "Carol" and "CAROL": ambiguous, never guessed
    assert snap.by_login("Carol") is snap.get(world.ids["blocked"])
    insensitive = snap.directory(login_case_sensitive=False)
    assert insensitive.by_login("alice") is ann and insensitive.by_mac("aa:bb:cc:00:00:01") is ann
    assert snap.directory(login_case_sensitive=True).by_login("alice") is None


# --------------------------------------------------------------------------- refresh


def test_refresh_reads_only_what_changed_and_shares_the_rest(engine: Engine, world: World) -> None:
    old = load_snapshot(engine)
    ann, bo, carol2 = (old.get(world.ids[k]) for k in ("ann", "bo", "carol2"))
    with engine.begin() as conn:
        conn.execute(update(Service).where(Service.id == world.ids["bo"]).values(status="active"))
        conn.execute(insert(ServiceMac).values(mac="aa:bb:cc:00:00:03", service_id=world.ids["bo"]))
        conn.execute(delete(ServiceMac).where(ServiceMac.mac == "aa:bb:cc:00:00:02"))
    new = refresh(engine, old, Changes(services=frozenset({world.ids["bo"], world.ids["ann"]})))
    fresh_bo = new.get(world.ids["bo"])
    assert fresh_bo is not None and fresh_bo.status == "active"
    assert new.by_mac("aa:bb:cc:00:00:03") is fresh_bo and new.by_mac("aa:bb:cc:00:00:02") is None
    assert new.get(world.ids["ann"]) is ann  # re-read, equal: the same object
    assert new.get(world.ids["carol2"]) is carol2  # not re-read
    assert new.by_port(PortKey(SWITCH_MAC, "eth 0/1/2", 100)) is fresh_bo
    # the old snapshot did not move
    assert old.get(world.ids["bo"]) is bo and old.by_mac("aa:bb:cc:00:00:02") is bo
    assert old.by_mac("aa:bb:cc:00:00:03") is None
    assert new.loaded_at >= old.loaded_at


def test_refresh_by_ledger_profile_switch_and_deletion(engine: Engine, world: World) -> None:
    old = load_snapshot(engine)
    with Session(engine) as session, session.begin():
        accounts.adjust(session, ACTOR, world.numbers["ann"], "-40", "goodwill")
    new = refresh(engine, old, Changes(ledgers=frozenset({world.ids["ann_ledger"]})))
    ann = new.get(world.ids["ann"])
    assert ann is not None and ann.available == Decimal("-5")
    assert new.get(world.ids["bo"]) is old.get(world.ids["bo"])

    with engine.begin() as conn:
        conn.execute(
            update(ProfileRow).values(down_kbps=200_000).where(ProfileRow.id == world.ids["profile"])
        )
        conn.execute(update(Switch).values(remote_id="sw1.example").where(Switch.id == world.ids["switch"]))
    newer = refresh(
        engine,
        new,
        Changes(profiles=frozenset({world.ids["profile"]}), switches=frozenset({world.ids["switch"]})),
    )
    ann2 = newer.get(world.ids["ann"])
    assert ann2 is not None and ann2.profile is not None and ann2.profile.down_kbps == 200_000
    assert newer.by_port(PortKey("sw1.example", "1/3", None)) is ann2
    assert newer.by_port(PortKey(SWITCH_MAC, "1/3", None)) is None

    with engine.begin() as conn:
        conn.execute(delete(SwitchPort).where(SwitchPort.service_id == world.ids["bo"]))
        conn.execute(delete(ServiceMac).where(ServiceMac.service_id == world.ids["bo"]))
        conn.execute(delete(Service).where(Service.id == world.ids["bo"]))
    gone = refresh(engine, newer, Changes(services=frozenset({world.ids["bo"]})))
    assert gone.get(world.ids["bo"]) is None and gone.by_login("bob") is None
    assert gone.by_mac("aa:bb:cc:00:00:02") is None and len(gone) == 3
    assert refresh(engine, gone, Changes()) is gone
    full = refresh(engine, gone, Changes(full=True))
    assert full is not gone and full.get(world.ids["ann"]) == gone.get(world.ids["ann"])


def test_changes_from_notify_payloads(caplog: pytest.LogCaptureFixture) -> None:
    changes = Changes.from_payloads(
        [
            "service:1",
            "service:1",
            "account:2",
            "profile:3",
            "switch:4",
            "ledger:5",
            "",
            "bogus:9",
            "service:x",
        ]
    )
    assert changes == Changes(frozenset({1}), frozenset({2}), frozenset({3}), frozenset({4}), frozenset({5}))
    assert changes.size == 5 and changes and not Changes()
    assert (changes | Changes(full=True)).full
    assert "bogus:9" in caplog.text


# --------------------------------------------------------------------------- SQLite polling


def test_polling_sees_status_and_balance_changes(engine: Engine, world: World) -> None:
    snap = load_snapshot(engine)
    quiet = poll_changes(engine, snap.loaded_at, known=snap, overlap=timedelta(0))
    assert not quiet and quiet.as_of is not None
    time.sleep(0.01)
    with Session(engine) as session, session.begin():
        service = session.get(Service, world.ids["bo"])
        assert service is not None
        service.status = "active"  # the ORM bumps updated_at
        accounts.adjust(session, ACTOR, world.numbers["ann"], "5", "goodwill")
    changes = poll_changes(engine, quiet.as_of, known=snap, overlap=timedelta(0))
    assert changes.services == {world.ids["bo"]} and changes.accounts == {world.ids["ann_account"]}
    new = refresh(engine, snap, changes)
    bo, ann = new.get(world.ids["bo"]), new.get(world.ids["ann"])
    assert bo is not None and bo.status == "active"
    assert ann is not None and ann.available == Decimal("40")
    assert new.get(world.ids["carol2"]) is snap.get(world.ids["carol2"])
    # without a snapshot to compare with, every account is reported
    assert poll_changes(engine, changes.as_of or _now()).accounts >= {world.ids["ann_account"]}


# --------------------------------------------------------------------------- PostgreSQL LISTEN


class Live:
    """What a daemon keeps: the current snapshot, replaced by the listener's callback."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.snapshot: Snapshot | None = None
        self.batches: list[Changes] = []
        self.changed = threading.Condition()

    def apply(self, changes: Changes) -> None:
        current = self.snapshot
        new = load_snapshot(self.engine) if current is None else refresh(self.engine, current, changes)
        with self.changed:
            self.batches.append(changes)
            self.snapshot = new
            self.changed.notify_all()

    def wait(self, predicate: Callable[[Snapshot], bool], timeout: float = 1.0) -> float:
        """Seconds until ``predicate(snapshot)`` held; fails after ``timeout``."""
        start = time.monotonic()
        with self.changed:
            ok = self.changed.wait_for(
                lambda: self.snapshot is not None and predicate(self.snapshot), timeout=timeout
            )
        assert ok, f"not seen within {timeout} s; batches: {self.batches}"
        return time.monotonic() - start


@pytest.fixture
def listening(pg_engine: Engine) -> Iterator[tuple[Live, SnapshotListener, World]]:
    w = _seed(pg_engine)
    live = Live(pg_engine)
    listener = SnapshotListener.for_engine(pg_engine, live.apply, poll_s=0.05, backoff_min=0.05)
    listener.start()
    try:
        assert listener.wait_connected(5)
        live.wait(lambda s: len(s) == 4, timeout=5)  # the full load after LISTEN
        yield live, listener, w
    finally:
        listener.stop()
        assert not [t for t in threading.enumerate() if t.name == "aaa-snapshot-listener"]
        assert not listener.connected


def _sub(snapshot: Snapshot, service_id: int) -> Any:
    sub = snapshot.get(service_id)
    assert sub is not None
    return sub


@pytest.mark.postgresql_only
def test_notify_brings_committed_changes_within_a_second(
    listening: tuple[Live, SnapshotListener, World],
) -> None:
    live, listener, w = listening
    first = live.snapshot
    assert first is not None and live.batches[0].full and listener.last_refresh is not None
    with live.engine.begin() as conn:
        conn.execute(update(Service).where(Service.id == w.ids["bo"]).values(status="active"))
    took = live.wait(lambda s: _sub(s, w.ids["bo"]).status == "active")
    with live.engine.begin() as conn:
        conn.execute(insert(ServiceMac).values(mac="aa:bb:cc:00:00:09", service_id=w.ids["carol2"]))
    took = max(took, live.wait(lambda s: s.by_mac("aa:bb:cc:00:00:09") is not None))
    with Session(live.engine) as session, session.begin():
        accounts.adjust(session, ACTOR, w.numbers["ann"], "-30", "goodwill")
    took = max(took, live.wait(lambda s: _sub(s, w.ids["ann"]).available == Decimal("5")))
    print(f"\nNOTIFY to refreshed snapshot: worst {took * 1000:.1f} ms")
    last = live.snapshot
    assert last is not None
    assert last.get(w.ids["blocked"]) is first.get(w.ids["blocked"])  # untouched, shared
    assert any(b.ledgers == {w.ids["ann_ledger"]} for b in live.batches)


@pytest.mark.postgresql_only
def test_listener_reconnects_and_reloads_after_a_dropped_connection(
    listening: tuple[Live, SnapshotListener, World],
) -> None:
    live, listener, w = listening
    with live.engine.begin() as conn:
        killed = (
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            .scalars()
            .all()
        )
    assert killed == [True]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(b.full for b in live.batches) < 2:
        time.sleep(0.02)
    assert sum(b.full for b in live.batches) == 2 and listener.failures >= 1
    assert listener.wait_connected(5)
    with live.engine.begin() as conn:
        conn.execute(update(Service).where(Service.id == w.ids["ann"]).values(status="blocked"))
    live.wait(lambda s: _sub(s, w.ids["ann"]).status == "blocked")


def test_listener_keeps_a_failed_batch_and_offers_it_again() -> None:
    calls: list[Changes] = []

    def flaky(changes: Changes) -> None:
        calls.append(changes)
        if len(calls) == 1:
            raise RuntimeError("database away")

    listener = SnapshotListener("postgresql://unused", flaky, backoff_min=0.0)
    kept = listener._deliver(Changes(services=frozenset({1})))
    assert kept.services == {1} and listener.last_refresh is None and listener.failures == 1
    assert not listener._deliver(kept) and listener.last_refresh is not None
    assert calls[1].services == {1}


# --------------------------------------------------------------------------- size


def bulk_seed(engine: Engine, count: int, first_id: int = 1_000_000) -> None:
    """``count`` Internet subscribers (one account, service, MAC and port each), inserted in bulk."""
    now = _now()
    with Session(engine) as session, session.begin():
        dictionaries.add(session, ACTOR, "subscriber_category", "bulk", "Bulk")
        dictionaries.add(session, ACTOR, "region", "bulkland", "Bulkland")
        entry = {
            code: session.scalars(select(DictionaryEntry.id).where(DictionaryEntry.code == code)).one()
            for code in ("bulk", "bulkland")
        }
        profile = ProfileRow(name="bulk-50", down_kbps=50_000, up_kbps=10_000)
        switch = Switch(name="bulk-sw", remote_id="02:00:00:00:00:01")
        session.add_all([profile, switch])
        session.flush()
        ids = {
            "category": entry["bulk"],
            "region": entry["bulkland"],
            "profile": profile.id,
            "switch": switch.id,
        }
    step = 10_000
    with engine.begin() as conn:
        for start in range(first_id, first_id + count, step):
            batch = range(start, min(start + step, first_id + count))
            conn.execute(
                insert(Customer),
                [
                    dict(id=i, kind="person", name=f"c{i}", category_id=ids["category"],
                         region_id=ids["region"], status="active", created_at=now)
                    for i in batch
                ],
            )  # fmt: skip
            conn.execute(
                insert(LedgerAccount),
                [
                    dict(id=i, code=f"sub:{i}", name=f"c{i}", kind="subscriber", currency="EUR",
                         balance=Decimal(0), created_at=now)
                    for i in batch
                ],
            )  # fmt: skip
            conn.execute(
                insert(Account),
                [
                    dict(id=i, number=f"B{i}", customer_id=i, currency="EUR", billing_mode="prepaid",
                         credit_limit=Decimal(5), status="active", ledger_account_id=i, created_at=now)
                    for i in batch
                ],
            )  # fmt: skip
            conn.execute(
                insert(Service),
                [
                    dict(id=i, account_id=i, kind="internet", status="active",
                         speed_profile_id=ids["profile"], login=f"user{i}", password=f"pw{i}",
                         framed_ip=str(ip_address(0x0A000000 + i)),
                         created_at=now, updated_at=now)
                    for i in batch
                ],
            )  # fmt: skip
            conn.execute(
                insert(ServiceMac),
                [
                    {"mac": ":".join(f"{b:02x}" for b in (0x02, 0, *i.to_bytes(4))), "service_id": i}
                    for i in batch
                ],
            )
            conn.execute(
                insert(SwitchPort),
                [{"switch_id": ids["switch"], "port": f"p{i}", "vlan": 0, "service_id": i} for i in batch],
            )


def measure_load(engine: Engine) -> tuple[Snapshot, float, float]:
    """(snapshot, seconds, MiB of max RSS growth) of one ``load_snapshot``."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    loaded = load_snapshot(engine)
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return loaded, seconds, grown


@pytest.mark.postgresql_only
def test_load_of_20k_subscribers(pg_engine: Engine) -> None:
    count = 20_000
    bulk_seed(pg_engine, count)
    loaded, seconds, grown = measure_load(pg_engine)
    assert len(loaded) == count
    sub = loaded.by_login("user1000007")
    assert sub is not None and loaded.by_mac("02:00:00:0f:42:47") is sub and sub.available == 5
    assert loaded.by_port(PortKey("02:00:00:00:00:01", "p1000007", None)) is sub
    assert sub.profile is _sub(loaded, 1_000_008).profile  # one object per profile
    print(
        f"\nload_snapshot: {count} subscribers in {seconds:.2f} s "
        f"({count / seconds:,.0f}/s), max RSS grew {grown:.1f} MiB"
    )
