"""The tariff catalog in the database: import, export, read back, and a service's tariff.

:func:`import_catalog` checks a catalog file as a whole and writes it all or not at all:

1. The file alone, by :func:`rating.catalog.load_catalog` (shapes, dates, references, ties).
2. Against the database, on the parsed TOML (so these are reported even when step 1 found
   problems): every category and region named in a matrix cell must be an entry of the
   ``subscriber_category`` / ``region`` dictionary (a deactivated entry counts: subscribers in
   it still need prices); every currency must be one we bill in (``CURRENCY_MINOR_UNITS``, the
   list accounts are checked against).
3. Against what is stored (once step 1 passed): a stored version whose fingerprint differs from
   the file's is refused when it is *used*; for now "used" means a service has the tariff and
   the version starts on or before ``today`` (stored or new start, the earlier). The charge run
   will make it "a charge records it". A stored version missing from the file is refused too
   (versions are never removed). A changed promotion that a service holds is refused.
4. The merged catalog (the file plus stored tariffs, bundles and promotions it does not name)
   is loaded once more, so a partial file cannot break a stored bundle or promotion.

Every problem is raised together as one :class:`rating.catalog.CatalogError`, in the loader's
``file: key.path: expectation`` form. Unchanged versions are no-ops; new versions are added;
unused changed ones are rewritten; bundles are rewritten when they change (nothing refers to a
bundle yet). An import that changes nothing writes nothing; one that changes something writes a
``catalog_imports`` row and an audit row in the same transaction. ``dry_run`` runs the same
checks and planning and writes nothing.

Speed profile names (``speed_profile``, ``throttle_profile``) missing from ``speed_profiles``
are *warnings*, not errors: profiles are network configuration with no CLI yet, and a tariff
may be loaded before the network team defines them; provisioning must refuse a missing one.

The stored form is described in :mod:`billing.db.tariffs`. :func:`load_stored_catalog` rebuilds
a :class:`rating.catalog.Catalog` from it with the same parser, checking every fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import audit
from billing.audit import Actor
from billing.config import CURRENCY_MINOR_UNITS
from billing.db.customers import Account
from billing.db.dictionaries import DictionaryEntry
from billing.db.services import Service, SpeedProfile
from billing.db.staff import Operator
from billing.db.tariffs import BundleRow, CatalogImport, PromotionRow, TariffRow, TariffVersionRow
from rating.bundle import Bundle
from rating.catalog import Catalog, CatalogError, CatalogProblem, dump_catalog, load_catalog
from rating.catalog_reader import CODE_PATTERN, CURRENCY_PATTERN, NAME_PATTERN
from rating.catalog_writer import emit
from rating.matrix import ResolvedPrice, resolve_price
from rating.periods import MAX_ANCHOR_DAY
from rating.phases import Promotion
from rating.tariff import Tariff, TariffVersion, VersionNotFound, canonical

__all__ = [
    "STORED_SOURCE",
    "CatalogChange",
    "CatalogStoreError",
    "ImportResult",
    "StoredCatalogCorrupt",
    "TariffAssignment",
    "TariffDetails",
    "TariffSummary",
    "VersionInfo",
    "assign_tariff",
    "export_catalog",
    "import_catalog",
    "list_tariffs",
    "load_stored_catalog",
    "show_tariff",
]

STORED_SOURCE = "stored catalog"
"""The ``source`` of problems found when reading the stored catalog back."""

_DICTIONARIES = {"category": "subscriber_category", "region": "region"}
_COUNTED = [
    *(("tariff", action) for action in ("added", "renamed", "replaced")),
    *(("version", action) for action in ("added", "replaced")),
    *((what, action) for what in ("bundle", "promotion") for action in ("added", "renamed", "replaced")),
]


class CatalogStoreError(ValueError):
    """A request about the stored catalog that is refused (unknown tariff, wrong kind ...)."""


class StoredCatalogCorrupt(RuntimeError):
    """The stored catalog does not read back (rows edited by hand, or a broken migration)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CatalogChange:
    """One thing an import does: ``what`` (tariff, version, bundle, promotion), ``action``
    (added, replaced, renamed), the code, and the version number for versions."""

    what: str
    action: str
    code: str
    version: int | None = None

    def __str__(self) -> str:
        name = f"{self.code} v{self.version}" if self.version is not None else self.code
        return f"{self.what} {name} {self.action}"


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, with ``dry_run``, would do); ``import_id`` is None if nothing written."""

    source: str
    dry_run: bool
    import_id: int | None
    changes: tuple[CatalogChange, ...]
    unchanged_versions: int
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        """``{"tariffs_added": 11, "versions_added": 13, "versions_unchanged": 0, ...}``."""
        counts = {
            f"{what}s_{action}": sum(1 for c in self.changes if (c.what, c.action) == (what, action))
            for what, action in _COUNTED
        }
        counts["versions_unchanged"] = self.unchanged_versions
        return counts


@dataclass(frozen=True)
class VersionInfo:
    """A stored version as listed by ``tariff show``."""

    number: int
    effective_from: date
    effective_until: date | None
    currency: str
    billing_mode: str
    fee: Decimal | None
    period: str | None
    speed_profile: str | None
    cells: int
    fingerprint: str
    created_at: datetime
    imported_by: str | None


@dataclass(frozen=True)
class TariffSummary:
    """One line of ``tariff list``: the tariff and the version in effect on ``as_of``."""

    code: str
    name: str
    kind: str
    addon: str | None
    versions: int
    current_version: int | None
    currency: str | None
    fee: Decimal | None
    period: str | None
    services: int


@dataclass(frozen=True)
class TariffDetails:
    """A tariff, its versions, and its price for one subscriber profile on one day."""

    code: str
    name: str
    kind: str
    addon: str | None
    services: int
    versions: tuple[VersionInfo, ...]
    as_of: date
    category: str | None
    region: str | None
    price: ResolvedPrice | None
    price_problem: str | None


@dataclass(frozen=True)
class TariffAssignment:
    """A service's tariff, promotion and subscription dates after :func:`assign_tariff`."""

    service_id: int
    tariff_code: str
    version: int
    promotion_code: str | None
    activated_on: date
    billing_anchor_day: int


# --------------------------------------------------------------------------- stored form


def _sha256(document: object) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def item_fingerprint(item: Bundle | Promotion) -> str:
    """sha256 of a bundle's or promotion's canonical form, without its display name."""
    kind = "bundle" if isinstance(item, Bundle) else "promotion"
    return _sha256({"format": 1, "kind": kind, "item": canonical(replace(item, name=""))})


def _dumped(catalog: Catalog) -> dict[str, Any]:
    return tomllib.loads(dump_catalog(catalog))


def version_content(tariff: Tariff, version: TariffVersion) -> str:
    """The stored text of ``version``: its ``[[tariffs.versions]]`` table as a TOML document."""
    table = _dumped(Catalog(tariffs=(replace(tariff, versions=(version,)),)))["tariffs"][0]["versions"][0]
    return emit(table)


def bundle_content(bundle: Bundle) -> str:
    """The stored text of ``bundle``: its ``[[bundles]]`` table as a TOML document."""
    return emit(_dumped(Catalog(bundles=(bundle,)))["bundles"][0])


def promotion_content(promotion: Promotion) -> str:
    """The stored text of ``promotion``: its ``[[promotions]]`` table as a TOML document."""
    return emit(_dumped(Catalog(promotions=(promotion,)))["promotions"][0])


@dataclass
class _Stored:
    """The stored catalog's rows, by code."""

    tariffs: dict[str, TariffRow] = field(default_factory=dict)
    versions: dict[str, dict[int, TariffVersionRow]] = field(default_factory=dict)
    bundles: dict[str, BundleRow] = field(default_factory=dict)
    promotions: dict[str, PromotionRow] = field(default_factory=dict)


def _stored_rows(session: Session) -> _Stored:
    stored = _Stored()
    for row in session.scalars(select(TariffRow).order_by(TariffRow.id)):
        stored.tariffs[row.code] = row
        stored.versions[row.code] = {}
    by_id = {row.id: row.code for row in stored.tariffs.values()}
    for version in session.scalars(select(TariffVersionRow).order_by(TariffVersionRow.number)):
        stored.versions[by_id[version.tariff_id]][version.number] = version
    stored.bundles = {r.code: r for r in session.scalars(select(BundleRow).order_by(BundleRow.id))}
    stored.promotions = {r.code: r for r in session.scalars(select(PromotionRow).order_by(PromotionRow.id))}
    return stored


def _tariff_table(row: TariffRow, versions: Sequence[TariffVersionRow]) -> dict[str, Any]:
    table: dict[str, Any] = {"code": row.code, "name": row.name, "kind": row.kind}
    if row.addon is not None:
        table["addon"] = row.addon
    table["versions"] = [tomllib.loads(v.content) for v in versions]
    return table


def _catalog_from(stored: _Stored) -> Catalog:
    """Rebuild the catalog from rows with :func:`load_catalog`, checking every fingerprint."""
    document = {
        "tariffs": [
            _tariff_table(row, list(stored.versions[code].values())) for code, row in stored.tariffs.items()
        ],
        "bundles": [tomllib.loads(row.content) for row in stored.bundles.values()],
        "promotions": [tomllib.loads(row.content) for row in stored.promotions.values()],
    }
    try:
        catalog = load_catalog(emit(document), source=STORED_SOURCE)
    except (CatalogError, tomllib.TOMLDecodeError) as exc:
        raise StoredCatalogCorrupt(f"the stored catalog does not read back:\n{exc}") from None
    wrong = [
        f"tariff {t.code} version {v.number}"
        for t in catalog.tariffs
        for v in t.versions
        if catalog.fingerprint(t, v) != stored.versions[t.code][v.number].fingerprint
    ]
    wrong += [
        f"bundle {b.code}"
        for b in catalog.bundles
        if item_fingerprint(b) != stored.bundles[b.code].fingerprint
    ]
    wrong += [
        f"promotion {p.code}"
        for p in catalog.promotions
        if item_fingerprint(p) != stored.promotions[p.code].fingerprint
    ]
    if wrong:
        raise StoredCatalogCorrupt("stored content does not match its fingerprint: " + ", ".join(wrong))
    return catalog


def load_stored_catalog(session: Session) -> Catalog:
    """The stored catalog as a :class:`Catalog` (what the charge run prices with)."""
    return _catalog_from(_stored_rows(session))


def export_catalog(session: Session) -> str:
    """The stored catalog as TOML; importing it back changes nothing."""
    return dump_catalog(load_stored_catalog(session))


# --------------------------------------------------------------------------- checks against the DB


def _tables(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """``data[key]`` as (index, table) pairs, skipping anything malformed (the loader reports it)."""
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _named(value: object, pattern: Any) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def _known_text(known: Sequence[str], kind: str) -> str:
    if not known:
        return f"known: none; add one with 'billing-admin dict add {kind} CODE NAME'"
    return "known: " + ", ".join(known)


def _database_problems(
    session: Session, data: dict[str, Any], source: str
) -> tuple[list[CatalogProblem], list[str]]:
    """Problems (dictionaries, currencies) and warnings (speed profiles) in file order."""
    known: dict[str, list[str]] = {}
    for name, kind in _DICTIONARIES.items():
        known[name] = list(
            session.scalars(
                select(DictionaryEntry.code)
                .where(DictionaryEntry.kind == kind)
                .order_by(DictionaryEntry.code)
            )
        )
    profiles = set(session.scalars(select(SpeedProfile.name)))
    problems: list[CatalogProblem] = []
    billed = ", ".join(sorted(CURRENCY_MINOR_UNITS))
    missing_profiles: dict[str, str] = {}

    def currency(key: str, value: object) -> None:
        code = _named(value, CURRENCY_PATTERN)
        if code is not None and code not in CURRENCY_MINOR_UNITS:
            problems.append(
                CatalogProblem(
                    source,
                    key,
                    f'currency "{code}" is not one we bill in (known: {billed})',
                )
            )

    def profile(key: str, value: object) -> None:
        if isinstance(value, str) and value and value not in profiles:
            missing_profiles.setdefault(value, key)

    for t, tariff in _tables(data, "tariffs"):
        for v, version in _tables(tariff, "versions"):
            path = f"tariffs[{t}].versions[{v}]"
            currency(f"{path}.currency", version.get("currency"))
            profile(f"{path}.speed_profile", version.get("speed_profile"))
            usage = version.get("usage")
            allowance = usage.get("allowance") if isinstance(usage, dict) else None
            if isinstance(allowance, dict):
                profile(f"{path}.usage.allowance.throttle_profile", allowance.get("throttle_profile"))
            for c, cell in _tables(version, "prices"):
                for name, kind in _DICTIONARIES.items():
                    value = _named(cell.get(name), NAME_PATTERN)
                    if value is not None and value not in known[name]:
                        problems.append(
                            CatalogProblem(
                                source,
                                f"{path}.prices[{c}].{name}",
                                f'unknown {name} "{value}" ({_known_text(known[name], kind)})',
                            )
                        )
    for b, bundle in _tables(data, "bundles"):
        for v, version in _tables(bundle, "versions"):
            currency(f"bundles[{b}].versions[{v}].currency", version.get("currency"))
    for p, promotion in _tables(data, "promotions"):
        currency(f"promotions[{p}].currency", promotion.get("currency"))
    warnings = [
        f'{source}: {key}: speed profile "{name}" is not in speed_profiles yet (first named here);'
        " define it before a service with this tariff is activated"
        for name, key in missing_profiles.items()
    ]
    return problems, warnings


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    """What an import will write; built from the file and the stored rows, then applied."""

    catalog: Catalog
    changes: list[CatalogChange] = field(default_factory=list)
    unchanged_versions: int = 0
    problems: list[CatalogProblem] = field(default_factory=list)
    tariffs: list[Tariff] = field(default_factory=list)
    """Tariffs whose row is added or updated (name, kind)."""
    versions: list[tuple[Tariff, TariffVersion]] = field(default_factory=list)
    """Versions added or rewritten."""
    bundles: list[Bundle] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)


def _services_with(session: Session, column: Any, codes: set[str]) -> dict[str, int]:
    if not codes:
        return {}
    rows = session.execute(select(column, func.count()).where(column.in_(codes)).group_by(column))
    return {code: count for code, count in rows}


def _plan(session: Session, catalog: Catalog, stored: _Stored, source: str, today: date) -> _Plan:
    plan = _Plan(catalog)
    in_use = _services_with(session, Service.tariff_code, set(stored.tariffs))
    promoted = _services_with(session, Service.promotion_code, set(stored.promotions))
    for t, tariff in enumerate(catalog.tariffs):
        row = stored.tariffs.get(tariff.code)
        if row is None:
            plan.changes.append(CatalogChange("tariff", "added", tariff.code))
            plan.tariffs.append(tariff)
            for version in tariff.versions:
                plan.changes.append(CatalogChange("version", "added", tariff.code, version.number))
                plan.versions.append((tariff, version))
            continue
        if (row.name, row.kind, row.addon) != (tariff.name, tariff.kind.value, _value(tariff.addon)):
            plan.changes.append(
                CatalogChange("tariff", "renamed" if row.kind == tariff.kind else "replaced", tariff.code)
            )
            plan.tariffs.append(tariff)
        numbers = {v.number for v in tariff.versions}
        for number, kept in stored.versions[tariff.code].items():
            if number not in numbers:
                plan.problems.append(
                    CatalogProblem(
                        source,
                        f"tariffs[{t}].versions",
                        f"version {number} (effective {kept.effective_from}) is stored and missing here;"
                        " versions are never removed: keep it in the file"
                        " ('billing-admin tariff export' writes the stored catalog)",
                    )
                )
        for v, version in enumerate(tariff.versions):
            kept = stored.versions[tariff.code].get(version.number)
            if kept is None:
                plan.changes.append(CatalogChange("version", "added", tariff.code, version.number))
                plan.versions.append((tariff, version))
                continue
            fingerprint = catalog.fingerprint(tariff, version)
            if kept.fingerprint == fingerprint:
                plan.unchanged_versions += 1
                continue
            starts = min(kept.effective_from, version.effective_from)
            services = in_use.get(tariff.code, 0)
            if services and starts <= today:
                following = max(numbers | set(stored.versions[tariff.code])) + 1
                plan.problems.append(
                    CatalogProblem(
                        source,
                        f"tariffs[{t}].versions[{v}]",
                        f'version {version.number} of "{tariff.code}" is in use ({services} service'
                        f"{'s' if services != 1 else ''} have the tariff and it is effective from {starts},"
                        f" not after today {today}) and cannot change: its content differs from the stored"
                        f" one (fingerprint {kept.fingerprint[:12]} stored, {fingerprint[:12]} here);"
                        f" add version {following} with a later effective_from instead",
                    )
                )
                continue
            plan.changes.append(CatalogChange("version", "replaced", tariff.code, version.number))
            plan.versions.append((tariff, version))
    for items, rows, what, users in (
        (catalog.bundles, stored.bundles, "bundle", {}),
        (catalog.promotions, stored.promotions, "promotion", promoted),
    ):
        for index, item in enumerate(items):
            _plan_item(
                plan, item, rows.get(item.code), what, users.get(item.code, 0), f"{what}s[{index}]", source
            )
    return plan


def _plan_item(
    plan: _Plan,
    item: Bundle | Promotion,
    row: BundleRow | PromotionRow | None,
    what: str,
    services: int,
    key: str,
    source: str,
) -> None:
    """Plan one bundle or promotion: added, unchanged, renamed, replaced, or refused when in use."""
    target: list[Any] = plan.bundles if what == "bundle" else plan.promotions
    if row is None:
        action = "added"
    elif row.fingerprint != item_fingerprint(item):
        if services:
            plan.problems.append(
                CatalogProblem(
                    source,
                    key,
                    f'{what} "{item.code}" is held by {services} service{"s" if services != 1 else ""}'
                    " and cannot change (only its name may); publish the new terms under a new code",
                )
            )
            return
        action = "replaced"
    elif row.name != item.name:
        action = "renamed"
    else:
        return
    plan.changes.append(CatalogChange(what, action, item.code))
    target.append(item)


def _value(enum: Any) -> str | None:
    return None if enum is None else str(enum.value)


def _merged_problems(catalog: Catalog, stored: _Stored, source: str) -> list[CatalogProblem]:
    """Load the file's catalog plus what is stored and not named in it, as one catalog."""
    named = (
        {t.code for t in catalog.tariffs},
        {b.code for b in catalog.bundles},
        {p.code for p in catalog.promotions},
    )
    if (
        set(stored.tariffs) <= named[0]
        and set(stored.bundles) <= named[1]
        and set(stored.promotions) <= named[2]
    ):
        return []
    kept = _catalog_from(stored)
    merged = Catalog(
        tariffs=catalog.tariffs + tuple(t for t in kept.tariffs if t.code not in named[0]),
        bundles=catalog.bundles + tuple(b for b in kept.bundles if b.code not in named[1]),
        promotions=catalog.promotions + tuple(p for p in kept.promotions if p.code not in named[2]),
    )
    try:
        load_catalog(dump_catalog(merged), source=f"{source} with the stored catalog")
    except CatalogError as exc:
        return list(exc.problems)
    return []


# --------------------------------------------------------------------------- import


def import_catalog(
    session: Session,
    text: str,
    source: str,
    operator: Actor,
    *,
    dry_run: bool = False,
    today: date | None = None,
) -> ImportResult:
    """Check ``text`` (a catalog file named ``source``) as a whole and store it; see the module doc.

    ``today`` is the ISP's local date (default: today in UTC); it decides which versions are in
    use. Raises :class:`CatalogError` listing every problem; nothing is written then.
    """
    today = today or datetime.now(UTC).date()
    problems: list[CatalogProblem] = []
    catalog: Catalog | None = None
    try:
        catalog = load_catalog(text, source=source)
    except CatalogError as exc:
        problems += exc.problems
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = {}  # the loader has reported it
    found, warnings = _database_problems(session, data, source)
    problems += found
    stored = _stored_rows(session)
    plan = _plan(session, catalog, stored, source, today) if catalog is not None else None
    if plan is not None:
        problems += plan.problems
        if not problems:
            problems += _merged_problems(plan.catalog, stored, source)
    if problems:
        raise CatalogError(problems)
    assert plan is not None
    result = ImportResult(
        source, dry_run, None, tuple(plan.changes), plan.unchanged_versions, tuple(warnings)
    )
    if dry_run or not plan.changes:
        return result
    return _apply(session, plan, stored, result, text, operator)


def _apply(
    session: Session, plan: _Plan, stored: _Stored, result: ImportResult, text: str, operator: Actor
) -> ImportResult:
    """Write what ``plan`` says, the import record and the audit row, in the caller's transaction."""
    record = CatalogImport(
        operator_id=operator.operator_id,
        operator_login=operator.login,
        source=result.source[:500],
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        counts=result.counts(),
    )
    session.add(record)
    session.flush()
    who = {"import_id": record.id, "imported_by": operator.operator_id}
    for tariff in plan.tariffs:
        row = stored.tariffs.get(tariff.code)
        if row is None:
            row = TariffRow(code=tariff.code)
            session.add(row)
            stored.tariffs[tariff.code] = row
            stored.versions[tariff.code] = {}
        row.name, row.kind, row.addon = tariff.name, tariff.kind.value, _value(tariff.addon)
    session.flush()
    for tariff, version in plan.versions:
        content = version_content(tariff, version)
        fingerprint = plan.catalog.fingerprint(tariff, version)
        kept = stored.versions[tariff.code].get(version.number)
        if kept is None:
            session.add(
                TariffVersionRow(
                    tariff_id=stored.tariffs[tariff.code].id,
                    number=version.number,
                    effective_from=version.effective_from,
                    fingerprint=fingerprint,
                    content=content,
                    **who,
                )
            )
        else:
            kept.effective_from, kept.fingerprint, kept.content = version.effective_from, fingerprint, content
            kept.import_id, kept.imported_by = record.id, operator.operator_id
    for items, rows, model, write in (
        (plan.bundles, stored.bundles, BundleRow, bundle_content),
        (plan.promotions, stored.promotions, PromotionRow, promotion_content),
    ):
        for item in items:
            row = rows.get(item.code)
            if row is None:
                row = model(code=item.code)
                session.add(row)
            row.name, row.fingerprint, row.content = item.name, item_fingerprint(item), write(item)  # type: ignore[arg-type]
            row.import_id, row.imported_by = record.id, operator.operator_id
    session.flush()
    done = replace(result, import_id=record.id)
    audit.record(
        session,
        operator,
        "tariff.import",
        "catalog_import",
        record.id,
        after={
            "source": result.source,
            "counts": result.counts(),
            "changes": [str(c) for c in result.changes],
        },
    )
    return done


# --------------------------------------------------------------------------- reading


def _service_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Service.tariff_code, func.count())
        .where(Service.tariff_code.is_not(None))
        .group_by(Service.tariff_code)
    )
    return {code: count for code, count in rows}


def _current(tariff: Tariff, as_of: date) -> TariffVersion | None:
    try:
        return tariff.version_at(as_of)
    except VersionNotFound:
        return None


def list_tariffs(session: Session, as_of: date) -> list[TariffSummary]:
    """Every stored tariff with the version in effect on ``as_of`` (stored order)."""
    catalog = load_stored_catalog(session)
    services = _service_counts(session)
    summaries = []
    for tariff in catalog.tariffs:
        current = _current(tariff, as_of)
        summaries.append(
            TariffSummary(
                code=tariff.code,
                name=tariff.name,
                kind=tariff.kind.value,
                addon=_value(tariff.addon),
                versions=len(tariff.versions),
                current_version=current.number if current else None,
                currency=current.currency if current else None,
                fee=current.recurring.amount if current and current.recurring else None,
                period=current.recurring.period.value if current and current.recurring else None,
                services=services.get(tariff.code, 0),
            )
        )
    return summaries


def _check_dictionary(session: Session, name: str, value: str | None) -> None:
    if value is None:
        return
    kind = _DICTIONARIES[name]
    known = list(
        session.scalars(
            select(DictionaryEntry.code).where(DictionaryEntry.kind == kind).order_by(DictionaryEntry.code)
        )
    )
    if value not in known:
        raise CatalogStoreError(f'{name}: unknown {name} "{value}" ({_known_text(known, kind)})')


def show_tariff(
    session: Session, code: str, as_of: date, *, category: str | None = None, region: str | None = None
) -> TariffDetails:
    """A tariff's versions and its price on ``as_of`` for ``category`` and ``region``."""
    _check_dictionary(session, "category", category)
    _check_dictionary(session, "region", region)
    catalog = load_stored_catalog(session)
    try:
        tariff = catalog.tariff(code)
    except KeyError:
        raise CatalogStoreError(f"tariff: unknown tariff {code!r}{_codes_hint(catalog)}") from None
    rows = session.execute(
        select(TariffVersionRow, Operator.login)
        .join(TariffRow, TariffRow.id == TariffVersionRow.tariff_id)
        .outerjoin(Operator, Operator.id == TariffVersionRow.imported_by)
        .where(TariffRow.code == code)
    )
    meta = {row.number: (row, login) for row, login in rows}
    versions = tuple(
        VersionInfo(
            number=v.number,
            effective_from=v.effective_from,
            effective_until=tariff.version_until(v),
            currency=v.currency,
            billing_mode=v.billing_mode.value,
            fee=v.recurring.amount if v.recurring else None,
            period=v.recurring.period.value if v.recurring else None,
            speed_profile=v.speed_profile,
            cells=len(v.prices),
            fingerprint=meta[v.number][0].fingerprint,
            created_at=meta[v.number][0].created_at,
            imported_by=meta[v.number][1],
        )
        for v in tariff.versions
    )
    price: ResolvedPrice | None = None
    problem: str | None = None
    try:
        price = resolve_price(catalog, code, as_of, category, region)
    except VersionNotFound as exc:
        problem = str(exc)
    return TariffDetails(
        code=tariff.code,
        name=tariff.name,
        kind=tariff.kind.value,
        addon=_value(tariff.addon),
        services=_service_counts(session).get(code, 0),
        versions=versions,
        as_of=as_of,
        category=category,
        region=region,
        price=price,
        price_problem=problem,
    )


def _codes_hint(catalog: Catalog) -> str:
    codes = [t.code for t in catalog.tariffs]
    return (
        f"; known: {', '.join(codes)}"
        if codes
        else "; the catalog is empty ('billing-admin tariff import FILE')"
    )


# --------------------------------------------------------------------------- a service's tariff


def assign_tariff(
    session: Session,
    operator: Actor,
    service_id: int,
    tariff_code: str,
    activated_on: date,
    *,
    promotion_code: str | None = None,
    billing_anchor_day: int = 1,
) -> TariffAssignment:
    """Give a service without a tariff its tariff (and promotion), subscription start and anchor.

    Refused unless the tariff is of the service's kind, has a version in effect on
    ``activated_on`` priced in the account's currency, and the promotion (if any) is for this
    tariff and may be granted on that day. Changing an assigned tariff is the lifecycle's
    ``change_tariff``, not this.
    """
    service = session.get(Service, service_id)
    if service is None:
        raise CatalogStoreError(f"service_id: no service {service_id}")
    if service.tariff_code is not None:
        raise CatalogStoreError(
            f"service_id: service {service_id} already has tariff {service.tariff_code};"
            " use 'billing-admin service change-tariff'"
        )
    if not CODE_PATTERN.fullmatch(tariff_code):
        raise CatalogStoreError(f"tariff: expected a tariff code, got {tariff_code!r}")
    if not 1 <= billing_anchor_day <= MAX_ANCHOR_DAY:
        raise CatalogStoreError(
            f"billing_anchor_day: expected 1 to {MAX_ANCHOR_DAY}, got {billing_anchor_day}"
        )
    catalog = load_stored_catalog(session)
    try:
        tariff = catalog.tariff(tariff_code)
    except KeyError:
        raise CatalogStoreError(f"tariff: unknown tariff {tariff_code!r}{_codes_hint(catalog)}") from None
    if tariff.kind.value != service.kind:
        raise CatalogStoreError(
            f"tariff: {tariff_code} is a {tariff.kind.value} tariff, the service is {service.kind}"
        )
    try:
        version = tariff.version_at(activated_on)
    except VersionNotFound as exc:
        raise CatalogStoreError(f"activated_on: {exc}") from None
    currency = session.scalar(select(Account.currency).where(Account.id == service.account_id))
    if version.currency != currency:
        raise CatalogStoreError(
            f"tariff: {tariff_code} version {version.number} is priced in {version.currency},"
            f" the account in {currency}"
        )
    if promotion_code is not None:
        _check_promotion(catalog, promotion_code, tariff_code, activated_on)
    before = {
        "tariff_code": None,
        "promotion_code": service.promotion_code,
        "activated_on": service.activated_on,
    }
    service.tariff_code, service.promotion_code = tariff_code, promotion_code
    service.activated_on, service.billing_anchor_day = activated_on, billing_anchor_day
    session.flush()
    assigned = TariffAssignment(
        service_id, tariff_code, version.number, promotion_code, activated_on, billing_anchor_day
    )
    audit.record(
        session, operator, "service.assign_tariff", "service", service_id, before=before, after=assigned
    )
    return assigned


def _check_promotion(catalog: Catalog, code: str, tariff_code: str, day: date) -> None:
    try:
        promotion = catalog.promotion(code)
    except KeyError:
        raise CatalogStoreError(f"promotion: unknown promotion {code!r}") from None
    if tariff_code not in promotion.tariffs:
        raise CatalogStoreError(f"promotion: {code} is for {', '.join(promotion.tariffs)}, not {tariff_code}")
    if not promotion.available_on(day):
        raise CatalogStoreError(
            f"promotion: {code} cannot be granted on {day} (see its available_from/until)"
        )
