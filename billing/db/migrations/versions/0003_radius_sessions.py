"""RADIUS sessions and usage; PostgreSQL notifications that keep the AAA snapshot fresh.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:15:25.735639
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "radius_sessions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("acct_unique_id", sa.String(length=64), nullable=False),
        sa.Column("acct_session_id", sa.String(length=128), nullable=False),
        sa.Column("nas_address", sa.String(length=45), nullable=False),
        sa.Column("nas_port_id", sa.String(length=64), nullable=True),
        sa.Column("service_id", BigId, nullable=True),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("calling_station_id", sa.String(length=64), nullable=True),
        sa.Column("framed_ip", sa.String(length=45), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("stopped_at", UtcDateTime(), nullable=True),
        sa.Column("terminate_cause", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("interim_interval_s", sa.Integer(), nullable=True),
        sa.Column("session_time_s", sa.Integer(), nullable=False),
        sa.Column("input_octets", sa.BigInteger(), nullable=False),
        sa.Column("output_octets", sa.BigInteger(), nullable=False),
        sa.Column("input_packets", sa.BigInteger(), nullable=False),
        sa.Column("output_packets", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_radius_sessions_status")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_radius_sessions_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_radius_sessions")),
        sa.UniqueConstraint("acct_unique_id", name=op.f("uq_radius_sessions_acct_unique_id")),
    )
    op.create_index("ix_radius_sessions_nas_open", "radius_sessions", ["nas_address", "status"], unique=False)
    op.create_index(
        "ix_radius_sessions_service_open", "radius_sessions", ["service_id", "status"], unique=False
    )
    op.create_index("ix_radius_sessions_updated_at", "radius_sessions", ["updated_at"], unique=False)
    op.create_table(
        "session_usage",
        sa.Column("id", BigId, nullable=False),
        sa.Column("session_id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("input_octets", sa.BigInteger(), nullable=False),
        sa.Column("output_octets", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "input_octets >= 0 AND output_octets >= 0 AND seconds >= 0",
            name=op.f("ck_session_usage_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_session_usage_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["radius_sessions.id"], name=op.f("fk_session_usage_session_id_radius_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_usage")),
    )
    op.create_index("ix_session_usage_recorded_at", "session_usage", ["recorded_at"], unique=False)
    op.create_index("ix_session_usage_session", "session_usage", ["session_id"], unique=False)
    _notify_snapshot()


SNAPSHOT_CHANNEL = "aaa_snapshot"
"""LISTEN channel of the AAA snapshot. Payloads name what changed: ``service:<id>``,
``account:<id>``, ``profile:<id>``, ``switch:<id>``, ``ledger:<ledger account id>``; an empty one
(a port bound to no service) needs no action. Identical payloads in one transaction arrive once."""

# (table, SQL giving the payload from NEW/OLD row r)
_NOTIFIERS = (
    ("services", "'service:' || r.id"),
    ("service_macs", "'service:' || r.service_id"),
    ("switch_ports", "'service:' || r.service_id"),
    ("accounts", "'account:' || r.id"),
    ("speed_profiles", "'profile:' || r.id"),
    ("switches", "'switch:' || r.id"),
)


def _notify_snapshot() -> None:
    """On PostgreSQL, every change the AAA snapshot depends on sends a NOTIFY, delivered on commit.

    SQLite has no LISTEN: the AAA server polls there (``services.updated_at`` and balances).
    """
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, payload in _NOTIFIERS:
        op.execute(
            f"""
            CREATE FUNCTION aaa_notify_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE r record;
            BEGIN
                IF TG_OP <> 'INSERT' THEN  -- the old identity loses what it had
                    r := OLD;
                    PERFORM pg_notify('{SNAPSHOT_CHANNEL}', coalesce({payload}, ''));
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    r := NEW;
                    PERFORM pg_notify('{SNAPSHOT_CHANNEL}', coalesce({payload}, ''));
                END IF;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_notify_aaa AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION aaa_notify_{table}()"
        )
    # Balances: only subscriber accounts matter to authorization (available funds).
    op.execute(
        f"""
        CREATE FUNCTION aaa_notify_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{SNAPSHOT_CHANNEL}', 'ledger:' || NEW.id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_notify_aaa AFTER UPDATE OF balance ON ledger_accounts "
        "FOR EACH ROW WHEN (NEW.kind = 'subscriber' AND NEW.balance IS DISTINCT FROM OLD.balance) "
        "EXECUTE FUNCTION aaa_notify_balance()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_accounts_notify_aaa ON ledger_accounts")
        op.execute("DROP FUNCTION IF EXISTS aaa_notify_balance()")
        for table, _ in _NOTIFIERS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_aaa ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS aaa_notify_{table}()")
    op.drop_index("ix_session_usage_session", table_name="session_usage")
    op.drop_index("ix_session_usage_recorded_at", table_name="session_usage")
    op.drop_table("session_usage")
    op.drop_index("ix_radius_sessions_updated_at", table_name="radius_sessions")
    op.drop_index("ix_radius_sessions_service_open", table_name="radius_sessions")
    op.drop_index("ix_radius_sessions_nas_open", table_name="radius_sessions")
    op.drop_table("radius_sessions")
