"""Payments (unique per source and the source's id) and the notifications outbox.

Grants ``payments.post`` (cashiers: billing staff and admins), ``payments.cancel`` (admins and
billing) and ``payments.view`` (also support and auditors). See ``billing.db.payments``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import Money, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "payments.post": ("admin", "billing"),
    "payments.cancel": ("admin", "billing"),
    "payments.view": ("admin", "billing", "support", "auditor"),
}


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", BigId, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name=op.f("ck_notifications_state")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_notifications_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_pending", ["state", "id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("cancel_transaction_id", BigId, nullable=True),
        sa.Column("cancelled_at", UtcDateTime(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "(state = 'cancelled') = (cancel_transaction_id IS NOT NULL)", name=op.f("ck_payments_cancelled")
        ),
        sa.CheckConstraint(
            "channel IN ('soap', 'checkpay', 'file', 'cashier')", name=op.f("ck_payments_channel")
        ),
        sa.CheckConstraint("state IN ('posted', 'cancelled')", name=op.f("ck_payments_state")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["cancel_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payments_cancel_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_payments_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payments_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_payments_source_external_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_account", ["account_id", "paid_at"], unique=False)
        batch_op.create_index("ix_payments_source_paid", ["source", "paid_at"], unique=False)
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_source_paid")
        batch_op.drop_index("ix_payments_account")

    op.drop_table("payments")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_pending")

    op.drop_table("notifications")
