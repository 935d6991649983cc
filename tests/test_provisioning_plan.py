"""The provisioning plan's rules (``billing.provisioning_plan``): which request goes to which target,
and what a try's answers make of the task. Pure: no network, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aaa.vendor_profiles import SpeedProfile
from billing.provisioning_outbox import AttemptRecord, PortRef, SessionRef, Work
from billing.provisioning_plan import Step, StepKind, backoff, steps_for, verdict

HOME = SpeedProfile("home-100", 100_000, 20_000)
GARDEN = SpeedProfile("walled-garden", 512, 512)
AT = datetime(2026, 12, 3, tzinfo=UTC)
ON_A = SessionRef("u1", "S1", "alice", "10.0.0.5", "192.0.2.1")
ON_B = SessionRef("u2", "S2", "alice", "10.0.0.6", "192.0.2.2")
SNMP_PORT = PortRef("sw1", "192.0.2.10", "snmp", None, None, None, "Gi0/1")
CLI_PORT = PortRef("sw2", "192.0.2.11", "cisco_ios", None, None, None, "Gi0/2")
UNCONTROLLED = PortRef("sw3", None, None, None, None, None, "eth 0/1/2")


def work(network: str, *, sessions=(ON_A, ON_B), ports=(SNMP_PORT, CLI_PORT, UNCONTROLLED), **kw) -> Work:  # type: ignore[no-untyped-def]
    values = dict(task_id=1, attempt=1, service_id=7, account="100001", network=network, release=False,
                  session_key=None, profile=HOME, sessions=tuple(sessions), ports=tuple(ports))  # fmt: skip
    values.update(kw)
    return Work(**values)  # type: ignore[arg-type]


def kinds(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.kind.value, s.session.nas_address if s.session else s.port.switch) for s in steps]  # type: ignore[union-attr]


def test_deny_disconnects_every_session_each_on_its_own_nas_and_blocks_controlled_ports() -> None:
    assert kinds(steps_for(work("deny"), GARDEN)) == [
        ("disconnect", "192.0.2.1"),
        ("disconnect", "192.0.2.2"),
        ("block", "sw1"),
        ("block", "sw2"),
    ]


def test_release_is_enforced_as_deny() -> None:
    assert kinds(steps_for(work("allow", release=True), GARDEN))[0] == ("disconnect", "192.0.2.1")


def test_walled_garden_changes_sessions_to_the_garden_profile_and_keeps_ports_up() -> None:
    steps = steps_for(work("walled_garden"), GARDEN)
    assert kinds(steps) == [
        ("coa", "192.0.2.1"),
        ("coa", "192.0.2.2"),
        ("unblock", "sw1"),
        ("unblock", "sw2"),
    ]
    assert {s.profile for s in steps if s.kind is StepKind.COA} == {GARDEN}


def test_allow_applies_the_profile_and_a_rate_limit_only_where_the_driver_can_set_one() -> None:
    steps = steps_for(work("allow"), GARDEN)
    assert kinds(steps) == [
        ("coa", "192.0.2.1"),
        ("coa", "192.0.2.2"),
        ("unblock", "sw1"),
        ("unblock", "sw2"),
        ("set_rate", "sw2"),
    ]
    assert steps[-1].kbps == 100_000 and steps[0].profile == HOME


def test_allow_without_a_profile_disconnects_so_the_next_login_decides() -> None:
    assert kinds(steps_for(work("allow", profile=None, ports=()), GARDEN)) == [
        ("disconnect", "192.0.2.1"),
        ("disconnect", "192.0.2.2"),
    ]


def test_nothing_to_reach_is_done_at_once() -> None:
    assert steps_for(work("deny", sessions=(), ports=(UNCONTROLLED,)), GARDEN) == []
    assert verdict([], 1, 5, 1.0, 10.0).state == "done"


def record(action: str, result: str, cause: int | None = None) -> AttemptRecord:
    return AttemptRecord("nas:bras 192.0.2.1:3799 session S1", action, "-", result, AT, 3, cause)


@pytest.mark.parametrize(
    ("records", "state"),
    [
        ([record("coa", "ack")], "done"),
        ([record("coa", "nak", 501), record("disconnect", "ack")], "done"),  # the fallback reached the goal
        ([record("disconnect", "gone", 503)], "done"),
        ([record("coa", "nak", 501)], "dead"),  # refused, no fallback: trying again changes nothing
        ([record("coa", "nak", 506)], "pending"),  # Resources Unavailable: worth another try
        ([record("coa", "timeout")], "pending"),
    ],
)
def test_the_last_answer_of_each_step_decides_the_task(records: list[AttemptRecord], state: str) -> None:
    assert verdict([records], 1, 5, 1.0, 10.0, jitter=lambda: 0.0).state == state


def test_after_the_last_try_silence_is_unknown_but_an_error_is_dead() -> None:
    silent = verdict([[record("coa", "timeout")]], 5, 5, 1.0, 10.0)
    failed = verdict([[record("coa", "timeout")], [record("block", "error")]], 5, 5, 1.0, 10.0)
    assert (silent.state, failed.state) == ("unknown", "dead")
    assert silent.outcome.startswith("after 5 tries: nas:bras")


def test_one_failed_target_keeps_the_whole_task_for_another_try() -> None:
    v = verdict([[record("coa", "ack")], [record("block", "error")]], 2, 5, 1.0, 10.0)
    assert v.state == "pending" and v.retry_in_s is not None


def test_backoff_doubles_per_try_up_to_the_cap_with_at_most_20_percent_jitter() -> None:
    assert [backoff(n, 2.0, 10.0, lambda: 0.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    assert backoff(1, 2.0, 10.0, lambda: 1.0) == pytest.approx(2.4)
