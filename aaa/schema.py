"""The AAA server's view of the billing database: the tables and columns it reads and writes.

``aaa`` never imports ``billing`` (the layers point the other way), so it declares here, with
SQLAlchemy Core, just the part of the schema it uses. ``billing.db`` owns the schema and its
migrations; ``tests/aaa/test_schema_view.py`` proves this view matches them. Storage forms are
the same as billing's: timestamps are aware UTC (naive UTC text on SQLite), money is
``NUMERIC(20,6)`` on PostgreSQL and integer millionths on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from rating.money import from_micros, to_micros


class UtcTime(TypeDecorator[datetime]):
    """Aware UTC in and out; stored as billing stores it (naive UTC on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MoneyAmount(TypeDecorator[Decimal]):
    """Exact money: ``NUMERIC(20,6)`` on PostgreSQL, integer millionths on SQLite."""

    impl = Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return to_micros(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return from_micros(int(value)) if dialect.name == "sqlite" else Decimal(value)


metadata = MetaData()

services = Table(
    "services",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("account_id", BigInteger),
    Column("kind", String(16)),
    Column("status", String(24)),
    Column("speed_profile_id", BigInteger),
    Column("login", String(128)),
    Column("password", String(128)),
    Column("framed_ip", String(45)),
    Column("framed_pool", String(64)),
    Column("ipv6_prefix", String(64)),
    Column("delegated_prefix", String(64)),
    Column("simultaneous_use", Integer),
    Column("updated_at", UtcTime()),
)

speed_profiles = Table(
    "speed_profiles",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(64)),
    Column("down_kbps", Integer),
    Column("up_kbps", Integer),
    Column("burst_down_kbps", Integer),
    Column("burst_up_kbps", Integer),
    Column("burst_threshold_kbps", Integer),
    Column("burst_time_s", Integer),
)

service_macs = Table(
    "service_macs",
    metadata,
    Column("mac", String(17), primary_key=True),
    Column("service_id", BigInteger),
)

switches = Table(
    "switches",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(64)),
    Column("remote_id", String(64)),
)

switch_ports = Table(
    "switch_ports",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("switch_id", BigInteger),
    Column("port", String(64)),
    Column("vlan", Integer),  # 0 means no VLAN (aaa.identification.PortKey uses None)
    Column("service_id", BigInteger),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("number", String(32)),
    Column("customer_id", BigInteger),
    Column("billing_mode", String(16)),
    Column("credit_limit", MoneyAmount()),
    Column("status", String(16)),
    Column("ledger_account_id", BigInteger),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", String(16)),
    Column("balance", MoneyAmount()),  # raw, debit positive: a subscriber's funds are -balance
)

customers = Table(
    "customers",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("category_id", BigInteger),
)

dictionary_entries = Table(
    "dictionary_entries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", String(32)),
    Column("code", String(64)),
    Column("active", Boolean),
)

radius_sessions = Table(
    "radius_sessions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("acct_unique_id", String(64)),
    Column("acct_session_id", String(128)),
    Column("nas_address", String(45)),
    Column("nas_port_id", String(64)),
    Column("service_id", BigInteger),
    Column("username", String(128)),
    Column("calling_station_id", String(64)),
    Column("framed_ip", String(45)),
    Column("started_at", UtcTime()),
    Column("updated_at", UtcTime()),
    Column("stopped_at", UtcTime()),
    Column("terminate_cause", String(32)),
    Column("status", String(8)),
    Column("interim_interval_s", Integer),
    Column("session_time_s", Integer),
    Column("input_octets", BigInteger),
    Column("output_octets", BigInteger),
    Column("input_packets", BigInteger),
    Column("output_packets", BigInteger),
)

session_usage = Table(
    "session_usage",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("session_id", BigInteger),
    Column("service_id", BigInteger),
    Column("recorded_at", UtcTime()),
    Column("input_octets", BigInteger),
    Column("output_octets", BigInteger),
    Column("seconds", Integer),
)

SNAPSHOT_CHANNEL = "aaa_snapshot"
"""PostgreSQL LISTEN channel (see billing's migration 0003): payloads ``service:<id>``,
``account:<id>``, ``profile:<id>``, ``switch:<id>``, ``ledger:<ledger account id>``."""
