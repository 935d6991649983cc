"""The demo's provisioning loop: out of money → suspended → the network follows → paid → resumed.

What: with ``billingd`` running its outbox worker, a BRAS simulator holding one PPPoE session and a
switch simulator (``billing-sim switch``, SNMP) whose port is bound to the demo's IPoE line, two
subscribers run out of money. The lifecycle evaluation suspends both for debt and writes their
provisioning tasks; the worker sends the PPPoE session a CoA with the walled-garden rate (the BRAS
simulator ACKs it) and blocks the IPoE line's switch port (read back over SNMP). Then both pay at
the cashier desk through :func:`billing.payments.pay` (which re-evaluates the lifecycle): they
resume, and the worker restores the tariff's rate by CoA and unblocks the port. Every step is
printed before/after; :meth:`ProvisioningLoop.run` raises :class:`LoopFailed` naming the step
that did not happen, so ``make demo`` (and tests/test_demo.py) fail when the loop breaks.

Why a port line's debt network is deny here: a switch port is only up or down, it has no walled
garden. The default rules (:data:`billing.lifecycle_rules.DEFAULT_RULES`) give an Internet line
suspended for debt the walled garden, which for a port means "leave it up" (the BRAS session, if
any, gets the walled-garden CoA). The demo evaluates the port line with business Internet's
``debt_network`` set to deny, so the port is blocked; the default rules stay what they are.

Why debits dated in the past: suspension for debt waits for the grace period (5 days residential,
15 business). The debit is dated that many days (plus one) ago and the evaluation runs now, so
nothing is in the future and the payment (which cannot be future-dated) comes after it.

Processes are the caller's (:class:`billing.demo.AaaDemo` starts and stops them); this module
only talks to the database and reads the switch port over SNMP.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing import accounts, payments, provisioning_admin, service_lifecycle, switch_records
from billing.audit import Actor
from billing.config import Config
from billing.db.customers import Account, Customer
from billing.db.dictionaries import DictionaryEntry
from billing.db.lifecycle import ProvisioningTask
from billing.db.provisioning import NetworkState, ProvisioningAttempt
from billing.db.services import Service, ServiceMac
from billing.db.sessions import RadiusSession
from billing.lifecycle_rules import LifecycleRules, NetworkAccess, ServiceKind
from billing.provisioning_outbox import PortRef
from billing.switch_access import switch_access
from rating.money import format_amount

__all__ = [
    "CREDENTIALS",
    "SESSION_LOGIN",
    "SWITCH_NAME",
    "SWITCH_PORT",
    "LoopFailed",
    "ProvisioningLoop",
    "record_switch",
]

SESSION_LOGIN = "anna"  # the PPPoE subscriber whose session gets the CoAs
PORT_MAC = "02:de:00:00:00:0c"  # the IPoE line (Autohaus Neumann KG) bound to the switch port
SWITCH_NAME = "demo-switch"
SWITCH_PORT = "GigabitEthernet0/5"
CREDENTIALS = "demo-switch"  # the [[provisioning.credentials]] entry of conf/demo.toml
DEBT = Decimal("30.00")  # how far below zero the debit takes each subscriber's funds
TOP_UP = Decimal("10.00")  # funds left after paying
FINAL = ("done", "unknown", "dead", "cancelled", "superseded")
POLL_S = 0.05
SNMP_TIMEOUT_S = 3.0
_RATE = re.compile(r"Mikrotik-Rate-Limit\W+([0-9A-Za-z]+/[0-9A-Za-z]+)")
T = TypeVar("T")


class LoopFailed(Exception):
    """A step of the loop did not happen (in time); the message says which."""


@dataclass(frozen=True)
class Line:
    """One subscriber of the loop: how it is shown, its account, service, and lifecycle rules."""

    label: str
    number: str
    service_id: int
    category: str
    rules: LifecycleRules


def record_switch(sessions: sessionmaker[Session], actor: Actor, snmp_port: int) -> int:
    """Record the switch simulator (device type snmp) and bind its port to the IPoE line; the service id.

    As staff would with ``billing-admin switch add`` / ``switch bind``: the worker reads the record
    and the config's credentials when it blocks or unblocks the port.
    """
    with sessions.begin() as s:
        service_id = s.scalar(select(ServiceMac.service_id).where(ServiceMac.mac == PORT_MAC))
        if service_id is None:
            raise LoopFailed(f"no service has the MAC {PORT_MAC}")
        switch_records.add_switch(
            s, actor, SWITCH_NAME, address="127.0.0.1", device_type="snmp", credentials=CREDENTIALS,
            vendor="billing-sim", model="switch", snmp_port=snmp_port,
        )  # fmt: skip
        switch_records.bind_port(s, actor, SWITCH_NAME, SWITCH_PORT, service_id)
        return service_id


def port_rules(rules: LifecycleRules) -> LifecycleRules:
    """``rules`` with business Internet's debt network deny: a debt suspension blocks the port."""
    business = rules.lookup(ServiceKind.INTERNET, "business")
    overrides = dict(rules.overrides)
    overrides[(ServiceKind.INTERNET, "business")] = replace(business, debt_network=NetworkAccess.DENY)
    return replace(rules, overrides=overrides)


class ProvisioningLoop:
    """The loop, run once against billingd's worker and the simulators (see the module docstring)."""

    def __init__(
        self,
        console: Console,
        config: Config,
        sessions: sessionmaker[Session],
        actor: Actor,
        snmp_port: int,
        port_service_id: int,
        until: float,
    ) -> None:
        self.console = console
        self.config = config
        self.sessions = sessions
        self.actor = actor
        self.snmp_port = snmp_port
        self.port_service_id = port_service_id
        self.until = until
        self.rules = service_lifecycle.rules_for(config.isp.tzinfo)

    # ------------------------------------------------------------------ the story

    def run(self) -> list[int]:
        """Run the loop and print it; the ids of its tasks. :class:`LoopFailed` if a step did not happen."""
        began = time.monotonic()
        session_line, port_line = self._lines()
        acct_session_id = self._wait(self._open_session, f"{SESSION_LOGIN}'s session in radius_sessions")
        self._say(
            "before",
            f"{session_line.label}: online on the BRAS simulator, session {acct_session_id}; "
            f"funds {self._funds(session_line)}",
            f"{port_line.label}: switch {SWITCH_NAME} {SWITCH_PORT} {self._port_text()} (read over SNMP); "
            f"funds {self._funds(port_line)}",
        )
        for line in (session_line, port_line):
            self._debit(line)
        suspensions = {line.service_id: self._evaluate(line) for line in (session_line, port_line)}
        self._say(
            "",
            "(a switch port is only up or down, it has no walled garden: the demo evaluates the port "
            "line with business Internet's debt_network = deny, billing.lifecycle_rules; the default, "
            "walled_garden, would leave the port up)",
        )
        done = self._wait_tasks(suspensions.values())
        self._show_task(session_line, done[suspensions[session_line.service_id]])
        self._show_task(port_line, done[suspensions[port_line.service_id]])
        walled = self._coa_rate(done[suspensions[session_line.service_id]], "the walled-garden CoA")
        if self._port_up() is not False:
            raise LoopFailed(f"{SWITCH_PORT} is not down after the block (read over SNMP)")
        self._say("", f"read back over SNMP: {SWITCH_PORT} ifAdminStatus down")

        resumes = {
            line.service_id: self._pay(line, suspensions[line.service_id])
            for line in (session_line, port_line)
        }
        done = self._wait_tasks(resumes.values())
        self._show_task(session_line, done[resumes[session_line.service_id]])
        self._show_task(port_line, done[resumes[port_line.service_id]])
        restored = self._coa_rate(done[resumes[session_line.service_id]], "the resume's CoA")
        if restored == walled:
            raise LoopFailed(f"the resume's CoA sent the walled-garden rate {walled} again")
        if self._port_up() is not True:
            raise LoopFailed(f"{SWITCH_PORT} is not up after the unblock (read over SNMP)")
        self._say("", f"read back over SNMP: {SWITCH_PORT} ifAdminStatus up")
        self._say("after", *self._network_states((session_line, port_line)))
        self._say(
            "",
            f"{session_line.label}: Mikrotik-Rate-Limit {walled} -> {restored} (speed restored); "
            f"{port_line.label}: port down -> up. Loop complete in {time.monotonic() - began:.1f} s.",
        )
        tasks = sorted([*suspensions.values(), *resumes.values()])
        self._task_table()
        return tasks

    # ------------------------------------------------------------------ steps

    def _lines(self) -> tuple[Line, Line]:
        with self.sessions() as s:
            found = []
            for where in (Service.login == SESSION_LOGIN, Service.id == self.port_service_id):
                row = s.execute(
                    select(Service.id, Account.number, Customer.name, DictionaryEntry.code)
                    .join(Account, Account.id == Service.account_id)
                    .join(Customer, Customer.id == Account.customer_id)
                    .join(DictionaryEntry, DictionaryEntry.id == Customer.category_id)
                    .where(where)
                ).one_or_none()
                if row is None:
                    raise LoopFailed(f"no demo service where {where}")
                found.append(row)
        (pppoe_id, pppoe_no, _, pppoe_cat), (port_id, port_no, port_name, port_cat) = found
        return (
            Line(f"{SESSION_LOGIN} ({pppoe_no}, PPPoE)", pppoe_no, pppoe_id, pppoe_cat, self.rules),
            Line(f"{port_name} ({port_no}, IPoE)", port_no, port_id, port_cat, port_rules(self.rules)),
        )

    def _open_session(self, s: Session) -> str | None:
        return s.scalar(
            select(RadiusSession.acct_session_id)
            .where(RadiusSession.username == SESSION_LOGIN, RadiusSession.status == "open")
            .order_by(RadiusSession.id.desc())
            .limit(1)
        )

    def _debit(self, line: Line) -> None:
        """Take ``line``'s funds to -DEBT with a debit dated just past its grace period."""
        grace = line.rules.lookup(ServiceKind.INTERNET, line.category).grace_days or 0
        now = datetime.now(UTC)
        dated = now - timedelta(days=grace + 1)
        with self.sessions.begin() as s:
            available = accounts.balance(s, line.number).available
            amount = available + DEBT
            accounts.adjust(
                s, self.actor, line.number, -amount, "correction", key=f"demo:provisioning:{line.number}",
                description="demo: returned direct debit", effective_at=dated,
            )  # fmt: skip
            after = accounts.balance(s, line.number).available
        local = dated.astimezone(self.config.isp.tzinfo)
        self._say(
            "debt",
            f"{line.label}: debit {format_amount(amount)} dated {local:%Y-%m-%d} ({grace + 1} days ago, past "
            f"the {line.category} grace of {grace} days): funds {format_amount(available)} -> "
            f"{format_amount(after)}",
        )

    def _evaluate(self, line: Line) -> int:
        """The lifecycle evaluation now; the id of the suspension's provisioning task."""
        with self.sessions.begin() as s:
            outcome = service_lifecycle.evaluate_service(
                s, self.actor, line.service_id, datetime.now(UTC), line.rules
            )
        change = next((c for c in outcome.changes if c.to_status == "suspended_involuntary"), None)
        if change is None or change.provisioning_task_id is None:
            raise LoopFailed(f"{line.label} was not suspended for debt (status {outcome.status})")
        network = line.rules.lookup(ServiceKind.INTERNET, line.category).debt_network.value
        self._say(
            "decision",
            f"lifecycle evaluation: {line.label} {change.from_status} -> {change.to_status} "
            f"({change.reason}): network {network}, provisioning task {change.provisioning_task_id}",
        )
        return change.provisioning_task_id

    def _pay(self, line: Line, after_task: int) -> int:
        """Pay the debt and a little more at the cashier desk; the id of the resume's task."""
        with self.sessions.begin() as s:
            amount = DEBT + TOP_UP
            request = payments.PaymentRequest(
                "cashier", f"demo-provisioning-{line.number}", line.number, amount, datetime.now(UTC),
                channel="cashier", purpose="demo: pays the debt",
            )  # fmt: skip
            paid = payments.pay(s, self.actor, request, rules=self.rules)
        with self.sessions() as s:
            task = s.scalar(
                select(ProvisioningTask.id)
                .where(ProvisioningTask.service_id == line.service_id, ProvisioningTask.id > after_task)
                .order_by(ProvisioningTask.id.desc())
                .limit(1)
            )
        funds = self._funds(line)
        changes = "; ".join(paid.lifecycle_changes) or "no status change"
        if task is None:
            raise LoopFailed(f"{line.label}'s payment wrote no provisioning task ({changes})")
        self._say(
            "payment",
            f"{line.label} pays {format_amount(paid.amount)} at the cashier desk (payment {paid.id}): "
            f"funds {funds}; {changes} -> provisioning task {task}",
        )
        return task

    # ------------------------------------------------------------------ what the network says

    def _wait_tasks(self, ids: Iterable[int]) -> dict[int, ProvisioningTask]:
        """The tasks ``ids`` once every one is in a final state (done, unknown, dead ...)."""
        wanted = sorted(ids)

        def probe(s: Session) -> dict[int, ProvisioningTask] | None:
            rows = s.scalars(select(ProvisioningTask).where(ProvisioningTask.id.in_(wanted))).all()
            finished = {row.id: row for row in rows if row.state in FINAL}
            return finished if len(finished) == len(wanted) else None

        return self._wait(probe, f"provisioning tasks {', '.join(map(str, wanted))} to finish")

    def _attempts(self, task_id: int) -> list[ProvisioningAttempt]:
        with self.sessions() as s:
            a = ProvisioningAttempt
            return list(s.scalars(select(a).where(a.task_id == task_id).order_by(a.id)))

    def _show_task(self, line: Line, task: ProvisioningTask) -> None:
        attempts = self._attempts(task.id)
        shown = []
        for a in attempts:
            rate = _RATE.search(a.request)
            what = f": Mikrotik-Rate-Limit {rate[1]}" if rate else ""  # a port's request repeats the target
            cause = f" Error-Cause {a.error_cause}" if a.error_cause is not None else ""
            shown.append(f"{a.action} {a.target}{what} -> {a.result}{cause} ({a.duration_ms} ms)")
        self._say(
            "network",
            f"task {task.id} ({task.network}) {task.state} after {task.attempts} "
            f"{'try' if task.attempts == 1 else 'tries'}: " + "; ".join(shown or ["no attempt"]),
        )
        if task.state != "done":
            raise LoopFailed(f"task {task.id} for {line.label} ended {task.state}: {task.outcome}")

    def _coa_rate(self, task: ProvisioningTask, what: str) -> str:
        """The rate of the task's ACKed CoA (the BRAS simulator's answer), or :class:`LoopFailed`."""
        for attempt in self._attempts(task.id):
            rate = _RATE.search(attempt.request)
            if attempt.action == "coa" and attempt.result == "ack" and rate:
                return rate[1]
        raise LoopFailed(f"{what} was not ACKed by the BRAS simulator (task {task.id})")

    def _port_up(self) -> bool | None:
        """The port's ifAdminStatus read over SNMP (True up, False down; None: no answer)."""
        from nms_adapters.switches import SwitchError, driver_for  # pysnmp: only when the loop runs

        ref = PortRef(SWITCH_NAME, "127.0.0.1", "snmp", CREDENTIALS, self.snmp_port, None, SWITCH_PORT)
        driver = driver_for(switch_access(ref, self.config.provisioning))

        async def read() -> bool:
            try:
                return (await asyncio.wait_for(driver.read_port(SWITCH_PORT), SNMP_TIMEOUT_S)).admin_up
            finally:
                await driver.close()

        try:
            return asyncio.run(read())
        except (SwitchError, TimeoutError):
            return None

    def _port_text(self) -> str:
        up = self._port_up()
        return "no SNMP answer" if up is None else f"ifAdminStatus {'up' if up else 'down'}"

    def _network_states(self, lines: tuple[Line, ...]) -> list[str]:
        """What ``network_states`` says the network confirmed per line (allow, else :class:`LoopFailed`)."""
        out = []
        for line in lines:
            with self.sessions() as s:
                state = s.get(NetworkState, line.service_id)
                if state is None or state.network != "allow":
                    raise LoopFailed(f"network_states does not confirm allow for {line.label}")
                shown = f"{state.network} {state.speed_profile or ''} (confirmed by task {state.task_id})"
            out.append(f"network_states: {line.label} {shown}; funds {self._funds(line)}")
        return out

    def _task_table(self) -> None:
        """The outbox as ``billing-admin provisioning list`` shows it (the month's tasks included)."""
        with self.sessions() as s:
            rows = provisioning_admin.list_tasks(s, limit=20)
        table = Table(title="billing-admin provisioning list")
        for column in ("id", "service", "account", "action", "state", "tries", "outcome"):
            table.add_column(column, justify="right" if column in ("id", "service", "tries") else "left")
        for t in reversed(rows):
            action = t.action + (f" {t.speed_profile}" if t.speed_profile else "")
            table.add_row(
                str(t.id), str(t.service_id), t.account, action, t.state, str(t.attempts), t.outcome
            )
        self.console.print(table)

    # ------------------------------------------------------------------ helpers

    def _funds(self, line: Line) -> str:
        with self.sessions() as s:
            return format_amount(accounts.balance(s, line.number).available)

    def _wait(self, probe: Callable[[Session], T | None], what: str) -> T:
        while True:
            with self.sessions() as s:
                found = probe(s)
            if found:
                return found
            if time.monotonic() > self.until:
                raise LoopFailed(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    def _say(self, step: str, *lines: str) -> None:
        for i, text in enumerate(lines):
            self.console.print(
                f"{step if i == 0 else '':<9}{text}", highlight=False, markup=False, soft_wrap=True
            )
