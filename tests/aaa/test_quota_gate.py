"""The accounting store's quota hook (aaa.quota_gate): what it tells a gate, and when.

A recording fake gate (no billing): each group's ``SessionChange`` list, in key order, from
inside the group's transaction; nothing for a group that changed no session; a gate that
raises fails the group, so nothing of it is stored and the NAS gets no answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select

from aaa.accounting import AccountingRecord, StatusType, Usage, acct_unique_id
from aaa.accounting_store import AccountingStore
from aaa.journal import Journal
from aaa.quota_gate import SessionChange
from aaa.schema import radius_sessions, session_usage

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NAS = "10.0.0.1"
START, INTERIM, STOP = StatusType.START, StatusType.INTERIM_UPDATE, StatusType.STOP


def _rec(status: StatusType, session: str, *, at: int, down: int = 0, up: int = 0) -> AccountingRecord:
    when = T0 + timedelta(seconds=at)
    return AccountingRecord(
        status=status,
        nas_address=NAS,
        acct_session_id=session,
        acct_unique_id=acct_unique_id(NAS, session, None),
        event_time=when,
        received_at=when,
        username="nobody",
        session_time_s=at,
        input_octets=up,
        output_octets=down,
    )


class Recorder:
    """Records each group's changes and how many usage rows the transaction already shows."""

    def __init__(self, fail: bool = False, interested: bool = True) -> None:
        self.groups: list[list[SessionChange]] = []
        self.usage_rows_seen: list[int] = []
        self.fail = fail
        self.interested = interested

    def wants_changes(self, conn: Connection) -> bool:
        return self.interested

    def on_group(self, conn: Connection, changes: Sequence[SessionChange]) -> None:
        self.groups.append(list(changes))
        self.usage_rows_seen.append(
            conn.execute(select(func.count()).select_from(session_usage)).scalar_one()
        )
        if self.fail:
            raise RuntimeError("gate failed")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal") as opened:
        yield opened


def _brief(changes: list[SessionChange]) -> list[tuple[str, Usage, Usage, bool, bool]]:
    names = {acct_unique_id(NAS, s, None): s for s in ("a", "b")}
    return [(names[c.acct_unique_id], c.usage, c.totals, c.started, c.stopped) for c in changes]


def test_the_gate_sees_starts_usage_and_stops_inside_the_transaction(
    engine: Engine, journal: Journal
) -> None:
    gate = Recorder()
    store = AccountingStore(engine, journal, quota_gate=gate)
    store.store([_rec(START, "b", at=0), _rec(START, "a", at=0), _rec(INTERIM, "a", at=60, down=5, up=1)])
    store.store([_rec(INTERIM, "a", at=60, down=5, up=1)])  # a retransmit: nothing to tell
    store.store([_rec(INTERIM, "b", at=120, down=7), _rec(STOP, "a", at=180, down=9, up=2)])
    store.store([_rec(STOP, "a", at=180, down=9, up=2)])  # a retransmitted Stop: nothing either
    for group in gate.groups:  # in key order, as the sessions were locked
        assert [c.acct_unique_id for c in group] == sorted(c.acct_unique_id for c in group)
    first, second = (sorted(_brief(g)) for g in gate.groups)
    assert first == [
        ("a", Usage(1, 5, 60), Usage(1, 5, 60), True, False),
        ("b", Usage(), Usage(), True, False),
    ]
    assert second == [
        ("a", Usage(1, 4, 120), Usage(2, 9, 180), False, True),
        ("b", Usage(0, 7, 120), Usage(0, 7, 120), False, False),
    ]
    assert gate.usage_rows_seen == [1, 3]  # the group's usage rows are written before the gate runs
    (change,) = [c for c in gate.groups[1] if c.stopped]
    assert (change.started_at, change.event_time) == (T0, T0 + timedelta(seconds=180))


def test_a_failing_gate_fails_the_group(engine: Engine, journal: Journal) -> None:
    store = AccountingStore(engine, journal, quota_gate=Recorder(fail=True))
    with pytest.raises(RuntimeError, match="gate failed"):
        store.store([_rec(START, "a", at=0)])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(radius_sessions)).scalar_one() == 0
    assert journal.depth() == 0


def test_a_gate_not_interested_is_not_told(engine: Engine, tmp_path: Path) -> None:
    """The store skips working out a group's changes when the gate says they cannot matter."""
    gate = Recorder(interested=False)
    store = AccountingStore(engine, Journal(tmp_path / "j"), quota_gate=gate)
    store.store([_rec(START, "s1", at=0)])
    assert gate.groups == []
