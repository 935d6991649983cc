"""The stored tariff catalog: tariffs, their versions, bundles, promotions, and each import.

How a version is stored (and why): ``tariff_versions.content`` is the version's table exactly
as :func:`rating.catalog.dump_catalog` writes it under ``[[tariffs.versions]]``, as a TOML
document of its own (``version = 1``, ``effective_from = ...``, ``[[prices]]`` ...). To rebuild
the :class:`rating.tariff.TariffVersion`, ``billing.catalog`` puts the stored tables back under
their tariff and reads them with :func:`rating.catalog.load_catalog`, the same parser and
checks as a file import, so there is one reader of the format and no second schema to drift.
``fingerprint`` is :func:`rating.tariff.version_fingerprint` of the version; it is checked
again on every rebuild, so a hand-edited or corrupted row fails loudly instead of pricing.

``bundles.content`` and ``promotions.content`` hold a whole ``[[bundles]]`` / ``[[promotions]]``
table the same way (with ``fingerprint`` the sha256 of :func:`rating.tariff.canonical` of the
model). Tariffs, versions, bundles and promotions are never deleted: subscriptions and, later,
charges refer to them. ``catalog_imports`` records every import that changed something.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.services import SERVICE_KINDS
from billing.db.types import utcnow

ADDON_KINDS = ("static_ip", "speed_boost", "extra_traffic", "cpe_rental", "other")
"""The values of :class:`rating.tariff.AddonKind` (a test checks they agree)."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CatalogImport(Base):
    """One catalog import that changed the catalog: who, when, from which file, what changed.

    ``counts`` maps what changed to how many (``tariffs_added``, ``versions_added``,
    ``versions_replaced``, ``versions_unchanged``, ``bundles_added`` ...); ``text_sha256``
    identifies the imported file's exact text.
    """

    __tablename__ = "catalog_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    operator_login: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(500))
    text_sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)


class TariffRow(Base):
    """A tariff's identity: ``code`` (what services refer to), display name, kind, add-on kind."""

    __tablename__ = "tariffs"
    __table_args__ = (
        CheckConstraint(_in("kind", SERVICE_KINDS), name="kind"),
        CheckConstraint(f"addon IS NULL OR {_in('addon', ADDON_KINDS)}", name="addon"),
        CheckConstraint("(kind = 'addon') = (addon IS NOT NULL)", name="addon_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    addon: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TariffVersionRow(Base):
    """One version of a tariff: its number, first day, fingerprint and content (see module doc).

    ``import_id`` is the import that last wrote the row (a version is rewritten only while no
    service can have used it); ``imported_by`` the operator of that import.
    """

    __tablename__ = "tariff_versions"
    __table_args__ = (
        UniqueConstraint("tariff_id", "number"),
        CheckConstraint("number >= 1", name="number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    number: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    fingerprint: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    import_id: Mapped[int] = mapped_column(ForeignKey("catalog_imports.id"))
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


class _StoredWhole:
    """Columns of a catalog entry stored whole: its TOML table, fingerprint and import."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    import_id: Mapped[int] = mapped_column(ForeignKey("catalog_imports.id"))
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


class BundleRow(_StoredWhole, Base):
    """A bundle with all its versions as one ``[[bundles]]`` table (see module doc)."""

    __tablename__ = "bundles"


class PromotionRow(_StoredWhole, Base):
    """A promotion (its phases and eligible tariffs) as one ``[[promotions]]`` table."""

    __tablename__ = "promotions"
