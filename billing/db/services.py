"""Services (subscriptions) on an account, their speed profiles and network identities.

A service is one thing sold on an account (Internet access today; TV packages, add-ons and
one-time services attach the same way). Its status is its own, per service, not per account.
Its network identity is what the AAA server recognises: a PPPoE login, CPE MAC addresses, or a
switch port (``billing.db.network``). Its tariff is ``tariff_code`` (``billing.db.tariffs``),
with an optional promotion; ``activated_on`` is the subscription's first day (promotion phases
and proration count from it) and ``billing_anchor_day`` the day of month its periods start.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId
from billing.db.types import utcnow

SERVICE_KINDS = ("internet", "tv", "addon", "one_time")
SERVICE_STATUSES = ("pending", "active", "suspended_voluntary", "suspended_involuntary", "blocked", "churned")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SpeedProfile(Base):
    """Bandwidth sold with a service; the AAA server renders it into NAS vendor attributes."""

    __tablename__ = "speed_profiles"
    __table_args__ = (
        CheckConstraint("down_kbps > 0 AND up_kbps > 0", name="rates"),
        CheckConstraint("(burst_down_kbps IS NULL) = (burst_up_kbps IS NULL)", name="burst_pair"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    down_kbps: Mapped[int] = mapped_column(Integer)
    up_kbps: Mapped[int] = mapped_column(Integer)
    burst_down_kbps: Mapped[int | None] = mapped_column(Integer)
    burst_up_kbps: Mapped[int | None] = mapped_column(Integer)
    burst_threshold_kbps: Mapped[int | None] = mapped_column(Integer)
    burst_time_s: Mapped[int | None] = mapped_column(Integer)


class Service(Base):
    """A subscription on an account with its status and network identity."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(_in("kind", SERVICE_KINDS), name="kind"),
        CheckConstraint(_in("status", SERVICE_STATUSES), name="status"),
        CheckConstraint("simultaneous_use IS NULL OR simultaneous_use > 0", name="simultaneous_use"),
        CheckConstraint("billing_anchor_day BETWEEN 1 AND 28", name="billing_anchor_day"),
        Index("ix_services_account", "account_id"),
        Index("ix_services_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="pending")
    speed_profile_id: Mapped[int | None] = mapped_column(ForeignKey("speed_profiles.id"))
    login: Mapped[str | None] = mapped_column(String(128), unique=True)
    password: Mapped[str | None] = mapped_column(String(128))
    """Cleartext: CHAP and MS-CHAPv2 cannot verify against a hash. Protect the database."""
    framed_ip: Mapped[str | None] = mapped_column(String(45), unique=True)
    framed_pool: Mapped[str | None] = mapped_column(String(64))
    ipv6_prefix: Mapped[str | None] = mapped_column(String(64))
    delegated_prefix: Mapped[str | None] = mapped_column(String(64))
    simultaneous_use: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    """Bumped on every change: the AAA snapshot polls it where LISTEN/NOTIFY is not available."""
    tariff_code: Mapped[str | None] = mapped_column(String(64), ForeignKey("tariffs.code"))
    promotion_code: Mapped[str | None] = mapped_column(String(64), ForeignKey("promotions.code"))
    activated_on: Mapped[date | None] = mapped_column(Date)
    """The subscription's first day (local calendar date); ``None`` while never activated."""
    billing_anchor_day: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    """Day of month (1..28) on which the service's monthly and annual periods start."""


class ServiceMac(Base):
    """A CPE MAC address (canonical ``aa:bb:cc:dd:ee:ff``) that identifies an IPoE service."""

    __tablename__ = "service_macs"

    mac: Mapped[str] = mapped_column(String(17), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)


# ``services.tariff_code`` and ``promotion_code`` refer to the catalog's tables: register them
# wherever services are used. Imported last because billing.db.tariffs imports SERVICE_KINDS.
from billing.db import tariffs as _tariffs  # noqa: E402, F401
