"""Which recurring and one-time charges a service owes on a day: a pure, deterministic plan.

Why pure: a charge run, its dry run and the tests must all compute the same charges from the
same facts (Kill Bill's invoice generator: a function of account, events and target date). This
module has no database, no clock and no I/O; :mod:`billing.charge_run` reads the facts and posts.

The facts (:class:`ChargeFacts`) are calendar days in the operator's time zone:

- ``tariffs``: ``(first day, Tariff)`` pairs: the tariff the service is on from that day on;
- ``statuses``: ``(first day, status)`` pairs: the charging status from that day on (pending
  before the first). The loader takes the status in force at the *start* of each day, so a
  change made during day d is charged from d + 1 and a day's charge never changes afterwards;
- ``activated_on``: the first day charged at all (nothing before it; ``None``: never active);
- ``anchor_day`` (1..28): monthly periods start on it; annual periods start on it in the month
  of ``activated_on``; daily periods are days;
- ``category``, ``region`` (the tariff matrix), ``promotion`` (phases from ``activated_on``),
  ``rules`` (the reduced fee of a voluntary suspension).

What a day of a period costs: the matrix price of the tariff version in force that day
(:func:`rating.matrix.resolve_tariff_price`), through the promotion phase of that day
(:func:`rating.phases.phase_price`), times the status's charging rule
(:func:`billing.status_meaning.meaning`: full, the rules' reduced fee, or none). A period's amount is
:func:`rating.proration.split_fee` over the runs of days at one fee (rounded once, parts sum to
the rounded whole), with the proration rule and rounding of the version at the part's start.
A tariff change starts a new tariff span: each span's share of a period is split on its own.

When it is due, with the billing mode of the tariff version (not the account):

- **postpaid**: a period's amount is due on its end day (``[start, end)``: the day after it),
  when its whole history is known;
- **prepaid**: in advance, on the first charged day of the period (its start, or the day of
  activation or of the tariff change), for the whole rest of the period *as known that day*:
  later days are assumed to keep that day's status and tariff; versions, matrix cells and
  promotion phases are dated data, known ahead. On each later day in the period where the status
  or the tariff changes, an **adjustment** is due: the amount as known that day minus the amount
  as known before (negative = a credit). So the lines of a period always sum to what its actual
  history costs, and each line depends only on days before it was due: history is append-only,
  so a line once posted is never computed differently (same key, same content).
- **one-time fees** of the tariff (matrix price) are due on ``activated_on``.
- **rated usage** of a postpaid tariff version with usage prices is due with the fee, on the
  period's end day: ``usage`` (the facts' :class:`rating.traffic.UsageDelta` list) is rated with
  :func:`rating.usage.rate_usage` per period and tariff span (the allowance starts afresh each
  period; time bands on the wall clock of ``time_zone``), with the usage plan, rounding and
  fingerprint of the version in force on the span's first day of the period. A delta belongs to
  the period containing its ``end`` (the instant it was recorded): the local days ``[start,
  end)`` turned into UTC bounds in ``time_zone``. Usage of a prepaid tariff is the prepaid quota's
  (:mod:`billing.quota`), not the plan's.

Idempotency keys (unique in the ledger; one per subscription, period and tariff version):

- ``charge:{service}:recurring:{period_start}:{tariff}:{version}``
- ``charge:{service}:adjustment:{period_start}:{tariff}:{version}:{day}``
- ``charge:{service}:one_time:{fee_code}:{activated_on}``
- ``charge:{service}:usage:{period_start}:{tariff}:{version}``

A tariff changed away from and back to within one period has two spans in it: the recurring
and usage keys of the later span end in ``:from{span_start}`` (:func:`_return_suffix`), so they
differ from the earlier span's. No other key has the suffix, so keys posted before never change.

:func:`plan_charges` returns every line due in the window ``[as_of - lookback_days, as_of]``, so
a run that missed days catches up and a re-run finds the keys already posted. Zero lines are
never planned (a free promo month posts nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from billing.lifecycle import ServiceStatus
from billing.lifecycle_rules import Charging, ServiceRules
from billing.status_meaning import meaning
from rating.matrix import resolve_tariff_price
from rating.periods import BillingMode, BillingPeriod, Period, ProrationRule, period_containing
from rating.phases import Promotion, phase_price, phase_spans
from rating.proration import split_fee
from rating.tariff import Tariff, TariffVersion, VersionNotFound
from rating.traffic import UsageDelta
from rating.usage import rate_usage
from rating.usage_checks import UsageError

LOOKBACK_DAYS = 35
"""How far back a run looks for lines due and not yet posted (a month of missed runs, plus slack)."""

_STORAGE = Decimal("0.000001")

UTC_ZONE = ZoneInfo("UTC")
"""The default ``time_zone`` of :class:`ChargeFacts` (what :func:`rate_usage` needs: a ZoneInfo)."""


class ChargePlanError(ValueError):
    """Facts that cannot be priced (no tariff version in force, an unknown status, a bad anchor)."""


class ChargeKind(StrEnum):
    """What a charge line is (the second part of its idempotency key)."""

    RECURRING = "recurring"
    ADJUSTMENT = "adjustment"
    ONE_TIME = "one_time"
    USAGE = "usage"


@dataclass(frozen=True)
class ChargeFacts:
    """Everything the plan needs about one service (see the module docstring)."""

    service_id: int
    service_kind: str
    tariffs: tuple[tuple[date, Tariff], ...]
    statuses: tuple[tuple[date, str], ...]
    activated_on: date | None
    anchor_day: int = 1
    category: str | None = None
    region: str | None = None
    promotion: Promotion | None = None
    rules: ServiceRules = field(default_factory=ServiceRules)
    usage: tuple[UsageDelta, ...] = ()
    time_zone: ZoneInfo = UTC_ZONE


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """A postpaid usage period due in a run's window: the instants whose deltas it rates.

    ``start`` and ``end`` are UTC instants (the local days of the period, cut to the tariff
    span); a delta is rated in it when ``start <= delta.end < end``.
    """

    period_start: date
    due_on: date
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PlannedCharge:
    """One charge line to post: positive ``amount`` is owed by the subscriber, negative a credit."""

    service_id: int
    idempotency_key: str
    kind: ChargeKind
    due_on: date
    period_start: date
    period_end: date
    amount: Decimal
    currency: str
    tariff_code: str
    tariff_version: int
    fingerprint: str
    service_kind: str
    description: str


@dataclass(frozen=True, slots=True)
class _Group:
    """Amounts of one period part are grouped by the tariff version that produced them."""

    tariff: Tariff
    version: TariffVersion
    fingerprint: str


def plan_charges(
    facts: ChargeFacts, as_of: date, *, lookback_days: int = LOOKBACK_DAYS
) -> list[PlannedCharge]:
    """Every non-zero charge line due on a day of ``[as_of - lookback_days, as_of]``, in due order."""
    if facts.activated_on is None or facts.activated_on > as_of or not facts.tariffs:
        return []
    window_start = as_of - timedelta(days=lookback_days)
    lines: list[PlannedCharge] = []
    spans = _tariff_spans(facts)
    for start, end, tariff in spans:
        if end is not None and end <= window_start - timedelta(days=366):
            continue
        lines.extend(_span_lines(facts, tariff, start, end, window_start, as_of))
    if window_start <= facts.activated_on <= as_of:
        lines.extend(_one_time_lines(facts))
    if facts.usage:
        lines.extend(_usage_lines(facts, as_of, lookback_days))
    lines.sort(key=lambda c: (c.due_on, c.idempotency_key))
    return lines


def usage_windows(
    facts: ChargeFacts, as_of: date, *, lookback_days: int = LOOKBACK_DAYS, after: date | None = None
) -> list[UsageWindow]:
    """The postpaid usage periods due in the window (and after the day ``after``), in due order.

    Why: a run loads a service's usage deltas only when a usage line may be due, and only for
    these instants (``usage`` of the facts is ignored here). The windows of one period are
    the parts of its tariff spans; a run loads ``[min start, max end)``.
    """
    if facts.activated_on is None or facts.activated_on > as_of or not facts.tariffs:
        return []
    found = [
        UsageWindow(period.start, period.end, _utc(lo, facts.time_zone), _utc(hi, facts.time_zone))
        for _, period, lo, hi, _ in _usage_parts(facts, as_of, lookback_days)
        if after is None or period.end > after
    ]
    return sorted(found, key=lambda w: (w.due_on, w.start))


def has_postpaid_usage(tariff: Tariff) -> bool:
    """Whether any version of ``tariff`` is postpaid with usage prices (so usage may be charged)."""
    return any(v.billing_mode is BillingMode.POSTPAID and v.usage is not None for v in tariff.versions)


class PlanCache:
    """Plans of identical facts computed once: the plan of one service is the plan of all.

    Why: a monthly run prices a million services, and most of them are the same case (same
    tariff, price cell, promotion phase, anchor, activation day and status history); pricing
    one is ~0.5 ms of Python. :func:`plan_charges` depends on ``service_id`` only through the
    ``charge:{service_id}:`` prefix of each key (and the text of an error), so a cached plan is
    reused by putting the other service's id in front of each key.

    The cache key is every other field of :class:`ChargeFacts`, the day and the window; tariffs,
    the promotion and the rules are keyed by identity (one catalog per run: the same object for
    the same code) and each entry keeps them alive, so an id is never reused while cached. A
    plan that raises is not cached (each service raises its own error). At most
    ``max_entries`` plans are kept; past that, new cases are priced without being kept.

    Facts with ``usage`` are never cached nor served from the cache: usage is the one fact that
    differs per service, so such a service is planned on its own (``individual`` counts them).
    The facts of a service without usage deltas owe no usage line, so they share plans as before.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.individual = 0
        self._plans: dict[tuple[object, ...], tuple[ChargeFacts, list[PlannedCharge]]] = {}

    def plan(
        self, facts: ChargeFacts, as_of: date, *, lookback_days: int = LOOKBACK_DAYS
    ) -> list[PlannedCharge]:
        """:func:`plan_charges` of ``facts``, from the cache when an identical case was planned."""
        if facts.usage:
            self.individual += 1
            return plan_charges(facts, as_of, lookback_days=lookback_days)
        key = (
            facts.service_kind,
            tuple((day, id(tariff)) for day, tariff in facts.tariffs),
            facts.statuses,
            facts.activated_on,
            facts.anchor_day,
            facts.category,
            facts.region,
            id(facts.promotion),
            id(facts.rules),
            facts.time_zone,
            as_of,
            lookback_days,
        )
        found = self._plans.get(key)
        if found is None:
            self.misses += 1
            lines = plan_charges(facts, as_of, lookback_days=lookback_days)
            if len(self._plans) < self.max_entries:
                self._plans[key] = (facts, lines)
            return lines
        self.hits += 1
        template, lines = found
        if template.service_id == facts.service_id:
            return list(lines)
        cut = len(f"charge:{template.service_id}:")
        prefix = f"charge:{facts.service_id}:"
        sid = facts.service_id
        return [
            PlannedCharge(
                sid,
                prefix + line.idempotency_key[cut:],
                line.kind,
                line.due_on,
                line.period_start,
                line.period_end,
                line.amount,
                line.currency,
                line.tariff_code,
                line.tariff_version,
                line.fingerprint,
                line.service_kind,
                line.description,
            )
            for line in lines
        ]


# --------------------------------------------------------------------------- spans of facts


def _tariff_spans(facts: ChargeFacts) -> list[tuple[date, date | None, Tariff]]:
    """``(start, end or None, tariff)`` from ``activated_on``; a change on one day keeps the last."""
    ordered = sorted(facts.tariffs, key=lambda pair: pair[0])
    spans: list[tuple[date, date | None, Tariff]] = []
    for i, (start, tariff) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else None
        start = max(start, facts.activated_on or start)
        if end is not None and end <= start:
            continue
        spans.append((start, end, tariff))
    return spans


def _status_on(facts: ChargeFacts, day: date) -> str:
    found = ServiceStatus.PENDING.value
    for start, status in facts.statuses:
        if start <= day:
            found = status
        else:
            break
    return found


def _status_change_days(facts: ChargeFacts, lo: date, hi: date) -> list[date]:
    """Days in ``(lo, hi)`` on which the charging status differs from the day before."""
    days = []
    for start, _ in facts.statuses:
        if lo < start < hi and _status_on(facts, start) != _status_on(facts, start - timedelta(days=1)):
            days.append(start)
    return sorted(set(days))


# --------------------------------------------------------------------------- periods


def _period_kind(tariff: Tariff, day: date) -> tuple[Period, TariffVersion] | None:
    try:
        version = tariff.version_at(day)
    except VersionNotFound:
        version = tariff.versions[0] if tariff.versions else None
    if version is None or version.recurring is None:
        return None
    return version.recurring.period, version


def _periods(facts: ChargeFacts, kind: Period, lo: date, hi: date) -> Iterator[BillingPeriod]:
    """Whole periods of ``kind`` overlapping the days ``[lo, hi]``."""
    anchor_month = facts.activated_on.month if facts.activated_on else 1
    try:
        current = period_containing(kind, lo, anchor_day=facts.anchor_day, anchor_month=anchor_month)
    except ValueError as exc:
        raise ChargePlanError(f"service {facts.service_id}: {exc}") from None
    while current.start <= hi:
        yield current
        current = period_containing(kind, current.end, anchor_day=facts.anchor_day, anchor_month=anchor_month)


def _span_lines(
    facts: ChargeFacts,
    tariff: Tariff,
    start: date,
    end: date | None,
    window_start: date,
    as_of: date,
) -> list[PlannedCharge]:
    found = _period_kind(tariff, max(start, min(as_of, end - timedelta(days=1)) if end else as_of))
    if found is None:
        return []
    kind, version = found
    lo = max(start, window_start - timedelta(days=1))
    hi = as_of if end is None else min(as_of, end - timedelta(days=1))
    if lo > hi:
        lo = hi
    lines: list[PlannedCharge] = []
    # A prepaid period may have started before the window; its adjustments can still be due.
    first = period_containing_safe(facts, kind, lo)
    for period in _periods(facts, kind, first.start, hi):
        first_day = max(period.start, start)
        if first_day >= period.end or (end is not None and first_day >= end):
            continue
        if version.billing_mode is BillingMode.POSTPAID:
            if window_start <= period.end <= as_of:
                amounts = _expected(facts, tariff, start, end, period, known_at=period.end)
                suffix = _return_suffix(facts, tariff, first_day, period)
                lines += _lines(facts, ChargeKind.RECURRING, period, period.end, amounts, None, suffix)
            continue
        # prepaid: the advance, then an adjustment on each change day within the period
        known = first_day
        previous = _expected(facts, tariff, start, end, period, known_at=known)
        if window_start <= known <= as_of:
            suffix = _return_suffix(facts, tariff, first_day, period)
            lines += _lines(facts, ChargeKind.RECURRING, period, known, previous, None, suffix)
        change_days = _status_change_days(facts, first_day, period.end)
        if end is not None and first_day < end < period.end:
            change_days = sorted({*change_days, end})
        for day in change_days:
            if day > as_of or (end is not None and day > end):
                break
            current = _expected(facts, tariff, start, end, period, known_at=day)
            if day >= window_start:
                diff = {
                    g: current.get(g, Decimal(0)) - previous.get(g, Decimal(0)) for g in {*current, *previous}
                }
                lines += _lines(facts, ChargeKind.ADJUSTMENT, period, day, diff, day)
            previous = current
    return lines


def period_containing_safe(facts: ChargeFacts, kind: Period, day: date) -> BillingPeriod:
    """The period of ``kind`` containing ``day`` with the service's anchors (errors name the service)."""
    anchor_month = facts.activated_on.month if facts.activated_on else 1
    try:
        return period_containing(kind, day, anchor_day=facts.anchor_day, anchor_month=anchor_month)
    except ValueError as exc:
        raise ChargePlanError(f"service {facts.service_id}: {exc}") from None


# --------------------------------------------------------------------------- amounts


def _day_fee(
    facts: ChargeFacts, tariff: Tariff, day: date, status: str
) -> tuple[_Group, Decimal, TariffVersion]:
    """The fee basis (price of a whole period) on ``day`` for ``status``, and its version."""
    try:
        price = resolve_tariff_price(tariff, day, facts.category, facts.region)
    except VersionNotFound as exc:
        raise ChargePlanError(f"service {facts.service_id}: {exc}") from None
    fee = price.recurring.amount if price.recurring is not None else Decimal(0)
    if (
        facts.promotion is not None
        and facts.activated_on is not None
        and tariff.code in facts.promotion.tariffs
    ):
        period = price.recurring.period if price.recurring is not None else None
        for span in phase_spans(facts.activated_on, facts.promotion.phases, period=period):
            if day in span:
                fee = phase_price(span.phase, fee)
                break
    try:
        rule = meaning(ServiceStatus(status), facts.rules)
    except ValueError:
        raise ChargePlanError(f"service {facts.service_id}: unknown status {status!r}") from None
    if rule.charging is Charging.NONE:
        fee = Decimal(0)
    elif rule.charging is Charging.REDUCED:
        assert rule.reduced_fee is not None
        fee = rule.reduced_fee.amount(fee).quantize(_STORAGE, rounding=ROUND_HALF_UP)
    return _Group(tariff, price.version, price.fingerprint), fee, price.version


def _boundaries(facts: ChargeFacts, tariff: Tariff, lo: date, hi: date, known_at: date) -> list[date]:
    """Days in ``(lo, hi)`` where the fee may change: versions, cells, phases, known statuses."""
    days: set[date] = set()
    for version in tariff.versions:
        days.add(version.effective_from)
        for cell in version.prices:
            days.add(cell.starts(version))
            if cell.effective_until is not None:
                days.add(cell.effective_until)
    if facts.promotion is not None and facts.activated_on is not None:
        for span in phase_spans(facts.activated_on, facts.promotion.phases, period=Period.MONTHLY):
            days.add(span.start)
            if span.end is not None:
                days.add(span.end)
    for start, _ in facts.statuses:
        if start <= known_at:
            days.add(start)
    return sorted(d for d in days if lo < d < hi)


def _expected(
    facts: ChargeFacts,
    tariff: Tariff,
    span_start: date,
    span_end: date | None,
    period: BillingPeriod,
    *,
    known_at: date,
) -> dict[_Group, Decimal]:
    """The amount of ``period`` for this tariff span as known on ``known_at``, per version.

    Days from ``known_at`` on keep the status of ``known_at``; the span's end counts only once
    it is known (``span_end <= known_at``).
    """
    lo = max(period.start, span_start)
    hi = period.end if span_end is None or span_end > known_at else min(period.end, span_end)
    if lo >= hi:
        return {}
    frozen = _status_on(facts, min(known_at, hi - timedelta(days=1)))
    cuts = [lo, *_boundaries(facts, tariff, lo, hi, known_at), hi]
    parts: list[tuple[BillingPeriod, Decimal, _Group, TariffVersion]] = []
    for a, b in pairwise(cuts):
        status = _status_on(facts, a) if a < known_at else frozen
        group, fee, version = _day_fee(facts, tariff, a, status)
        if parts and parts[-1][2] == group and parts[-1][1] == fee:
            previous = parts[-1]
            parts[-1] = (BillingPeriod(previous[0].start, b), fee, group, version)
        else:
            parts.append((BillingPeriod(a, b), fee, group, version))
    first_version = parts[0][3]
    rule = first_version.proration
    if rule is ProrationRule.NONE:
        charged = [p for p in parts if p[1] > 0]
        if not charged:
            return {}
        whole = first_version.rounding.apply(charged[0][1])
        return {charged[0][2]: whole}
    lines = split_fee(period, [(p[0], p[1]) for p in parts], rule, first_version.rounding)
    amounts: dict[_Group, Decimal] = {}
    for part, line in zip(parts, lines, strict=True):
        amounts[part[2]] = amounts.get(part[2], Decimal(0)) + line.amount
    return amounts


def _lines(
    facts: ChargeFacts,
    kind: ChargeKind,
    period: BillingPeriod,
    due_on: date,
    amounts: dict[_Group, Decimal],
    change_day: date | None,
    suffix: str = "",
) -> list[PlannedCharge]:
    out = []
    for group, amount in sorted(amounts.items(), key=lambda item: item[0].version.number):
        if not amount:
            continue
        code, number = group.tariff.code, group.version.number
        key = f"charge:{facts.service_id}:{kind.value}:{period.start}:{code}:{number}{suffix}"
        what = f"{code} v{number} {period}"
        if change_day is not None:
            key += f":{change_day}"
            what = f"adjustment from {change_day}: {what}"
        out.append(
            PlannedCharge(
                facts.service_id,
                key,
                kind,
                due_on,
                period.start,
                period.end,
                amount,
                group.version.currency,
                code,
                number,
                group.fingerprint,
                facts.service_kind,
                what,
            )
        )
    return out


def _return_suffix(facts: ChargeFacts, tariff: Tariff, day: date, period: BillingPeriod) -> str:
    """``:from{span_start}`` if an earlier span of ``tariff`` overlaps ``period``, else nothing.

    ``day`` is a day of the span (its first day in ``period``). Keys are one per tariff version
    and period; a tariff left and taken again within a period has two spans there, and the later
    one's recurring and usage lines need keys of their own (its adjustments already differ:
    they carry their day).
    """
    spans = _tariff_spans(facts)
    for index, (start, end, _) in enumerate(spans):
        if start <= day and (end is None or day < end):
            for earlier_start, earlier_end, other in spans[:index]:
                if (
                    other.code == tariff.code
                    and earlier_start < period.end
                    and (earlier_end is None or earlier_end > period.start)
                ):
                    return f":from{start}"
            break
    return ""


def _one_time_lines(facts: ChargeFacts) -> list[PlannedCharge]:
    assert facts.activated_on is not None
    day = facts.activated_on
    tariff = _tariff_spans(facts)[0][2]
    try:
        price = resolve_tariff_price(tariff, day, facts.category, facts.region)
    except VersionNotFound as exc:
        raise ChargePlanError(f"service {facts.service_id}: {exc}") from None
    rounding = price.version.rounding
    out = []
    for fee in price.one_time_fees:
        amount = rounding.apply(fee.amount)
        if not amount:
            continue
        out.append(
            PlannedCharge(
                facts.service_id,
                f"charge:{facts.service_id}:one_time:{fee.code}:{day}",
                ChargeKind.ONE_TIME,
                day,
                day,
                day + timedelta(days=1),
                amount,
                price.currency,
                tariff.code,
                price.version_number,
                price.fingerprint,
                facts.service_kind,
                f"{fee.name} ({tariff.code} v{price.version_number})",
            )
        )
    return out


# --------------------------------------------------------------------------- usage


def _utc(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the local ``day`` starts in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC_ZONE)


def _usage_parts(
    facts: ChargeFacts, as_of: date, lookback_days: int
) -> Iterator[tuple[Tariff, BillingPeriod, date, date, TariffVersion]]:
    """``(tariff, period, first day, day after the last, version)`` of each postpaid usage part due.

    A part is a tariff span's share of a billing period whose end day is in the window
    ``[as_of - lookback_days, as_of]``; the version in force on its first day must be postpaid
    with usage prices. The periods are those of the span's recurring fee (as in the run's
    recurring lines), so the usage line is due on the same day as the fee in arrears.
    """
    window_start = as_of - timedelta(days=lookback_days)
    for start, end, tariff in _tariff_spans(facts):
        if not has_postpaid_usage(tariff):
            continue
        found = _period_kind(tariff, max(start, min(as_of, end - timedelta(days=1)) if end else as_of))
        if found is None:
            continue
        kind = found[0]
        lo = max(start, window_start - timedelta(days=1))
        hi = min(as_of, end - timedelta(days=1)) if end is not None else as_of
        if lo > hi:
            continue
        first = period_containing_safe(facts, kind, lo)
        for period in _periods(facts, kind, first.start, hi):
            if not window_start <= period.end <= as_of:
                continue
            part_start = max(period.start, start)
            part_end = period.end if end is None else min(period.end, end)
            if part_start >= part_end:
                continue
            try:
                version = tariff.version_at(part_start)
            except VersionNotFound:
                continue
            if version.billing_mode is BillingMode.POSTPAID and version.usage is not None:
                yield tariff, period, part_start, part_end, version


def _usage_lines(facts: ChargeFacts, as_of: date, lookback_days: int) -> list[PlannedCharge]:
    """One usage line per postpaid usage part due, rated from the facts' deltas; zero: none.

    All of a part's deltas are rated in one :func:`rate_usage` call starting with an unused
    allowance (the allowance is per period), so the increments and the one rounding apply to
    the period's totals. The matrix cell of the part's first day gives the fingerprint (the usage
    prices themselves are the version's: the matrix varies fees).
    """
    out = []
    tz = facts.time_zone
    for tariff, period, part_start, part_end, version in _usage_parts(facts, as_of, lookback_days):
        lo, hi = _utc(part_start, tz), _utc(part_end, tz)
        deltas = [d for d in facts.usage if lo <= d.end < hi]
        if not deltas:
            continue
        assert version.usage is not None
        try:
            rating = rate_usage(
                deltas, version.usage, tz=tz, allowance_used_before=0, rounding=version.rounding
            )
            price = resolve_tariff_price(tariff, part_start, facts.category, facts.region)
        except (UsageError, VersionNotFound) as exc:
            raise ChargePlanError(f"service {facts.service_id}: usage {tariff.code}: {exc}") from None
        if not rating.total:
            continue
        down = sum(entry.octets_in for d in deltas for entry in d.traffic)
        up = sum(entry.octets_out for d in deltas for entry in d.traffic)
        code, number = tariff.code, version.number
        out.append(
            PlannedCharge(
                facts.service_id,
                f"charge:{facts.service_id}:usage:{period.start}:{code}:{number}"
                f"{_return_suffix(facts, tariff, part_start, period)}",
                ChargeKind.USAGE,
                period.end,
                period.start,
                period.end,
                rating.total,
                version.currency,
                code,
                number,
                price.fingerprint,
                facts.service_kind,
                f"usage {code} v{number} {period}: {len(deltas)} records, "
                f"{down} B down, {up} B up, all as class internet",
            )
        )
    return out
