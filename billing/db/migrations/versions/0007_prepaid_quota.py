"""Prepaid quota: ``quota_reservations`` and session-level provisioning tasks.

Adds the reservation table (``billing.db.quota``) and, on ``provisioning_tasks``, the nullable
``session_key`` (the RADIUS session a CoA or Disconnect is for) and ``speed_profile`` (the
throttle profile of a CoA), written by ``billing.quota`` when a session's quota runs out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.types import Money, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_reservations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("acct_unique_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("tariff_code", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("reserved", Money(), nullable=False),
        sa.Column("committed", Money(), nullable=False),
        sa.Column("unbilled", Money(), nullable=False),
        sa.Column("input_octets", sa.BigInteger(), nullable=False),
        sa.Column("output_octets", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("exhausted_at", UtcDateTime(), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_quota_reservations_state")),
        sa.CheckConstraint(
            "action IS NULL OR action IN ('throttle', 'disconnect')",
            name=op.f("ck_quota_reservations_action"),
        ),
        sa.CheckConstraint(
            "committed >= 0 AND reserved >= committed AND unbilled >= 0",
            name=op.f("ck_quota_reservations_amounts"),
        ),
        sa.CheckConstraint(
            "(state = 'closed') = (closed_at IS NOT NULL)", name=op.f("ck_quota_reservations_closed")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quota_reservations_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_quota_reservations_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
        sa.UniqueConstraint("acct_unique_id", name=op.f("uq_quota_reservations_acct_unique_id")),
    )
    op.create_index(
        "ix_quota_reservations_account_open",
        "quota_reservations",
        ["account_id"],
        unique=False,
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )
    op.create_index(
        op.f("ix_quota_reservations_service_id"), "quota_reservations", ["service_id"], unique=False
    )
    op.add_column("provisioning_tasks", sa.Column("session_key", sa.String(length=64), nullable=True))
    op.add_column("provisioning_tasks", sa.Column("speed_profile", sa.String(length=64), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE provisioning_tasks DROP COLUMN speed_profile")
        op.execute("ALTER TABLE provisioning_tasks DROP COLUMN session_key")
    else:
        op.drop_column("provisioning_tasks", "speed_profile")
        op.drop_column("provisioning_tasks", "session_key")
    op.drop_index(op.f("ix_quota_reservations_service_id"), table_name="quota_reservations")
    op.drop_index("ix_quota_reservations_account_open", table_name="quota_reservations")
    op.drop_table("quota_reservations")
