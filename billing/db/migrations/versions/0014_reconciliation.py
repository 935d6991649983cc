"""Banks' daily registries and reconciliations of a bank's day (with their discrepancies).

Grants ``payments.reconcile`` (admins and billing staff: import a registry, reconcile and close a
day). Reading a stored result needs ``payments.view`` (0012). See ``billing.db.reconciliation``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 13:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import Money, UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

PERMISSIONS = {"payments.reconcile": ("admin", "billing")}


def upgrade() -> None:
    op.create_table(
        "bank_registries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("bank", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("replaced", sa.Integer(), nullable=False),
        sa.CheckConstraint("line_count >= 0", name=op.f("ck_bank_registries_line_count")),
        sa.CheckConstraint("origin IN ('soap', 'file')", name=op.f("ck_bank_registries_origin")),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_bank_registries_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_registries")),
        sa.UniqueConstraint("bank", "day", name=op.f("uq_bank_registries_bank_day")),
    )
    op.create_table(
        "bank_registry_lines",
        sa.Column("id", BigId, nullable=False),
        sa.Column("registry_id", BigId, nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("txn_id", sa.String(length=100), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_bank_registry_lines_amount_positive")),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["bank_registries.id"],
            name=op.f("fk_bank_registry_lines_registry_id_bank_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_registry_lines")),
        sa.UniqueConstraint("registry_id", "txn_id", name=op.f("uq_bank_registry_lines_registry_id_txn_id")),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("bank", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("registry_id", BigId, nullable=True),
        sa.Column("statement_sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("bank_count", sa.Integer(), nullable=False),
        sa.Column("bank_total", Money(), nullable=False),
        sa.Column("billing_count", sa.Integer(), nullable=False),
        sa.Column("billing_total", Money(), nullable=False),
        sa.Column("matched_count", sa.Integer(), nullable=False),
        sa.Column("matched_total", Money(), nullable=False),
        sa.Column("discrepancy_count", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("operator_login", sa.String(length=64), nullable=False),
        sa.Column("reconciled_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "state <> 'closed' OR reason IS NOT NULL", name=op.f("ck_reconciliations_closed_reason")
        ),
        sa.CheckConstraint("source IN ('registry', 'statement')", name=op.f("ck_reconciliations_source")),
        sa.CheckConstraint(
            "state IN ('open', 'reconciled', 'closed')", name=op.f("ck_reconciliations_state")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_reconciliations_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["bank_registries.id"],
            name=op.f("fk_reconciliations_registry_id_bank_registries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
        sa.UniqueConstraint("bank", "day", name=op.f("uq_reconciliations_bank_day")),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("reconciliation_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("txn_id", sa.String(length=100), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("bank_amount", Money(), nullable=True),
        sa.Column("billing_amount", Money(), nullable=True),
        sa.Column("bank_account", sa.String(length=64), nullable=True),
        sa.Column("billing_account", sa.String(length=64), nullable=True),
        sa.Column("payment_id", BigId, nullable=True),
        sa.Column("bank_paid_at", UtcDateTime(), nullable=True),
        sa.Column("billing_paid_at", UtcDateTime(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("suspense_entry_id", BigId, nullable=True),
        sa.CheckConstraint(
            "kind IN ('missing_in_billing', 'missing_at_bank', 'amount_differs', 'account_differs', "
            "'other_day')",
            name=op.f("ck_reconciliation_items_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_reconciliation_items_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliations.id"],
            name=op.f("fk_reconciliation_items_reconciliation_id_reconciliations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["suspense_entry_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_reconciliation_items_suspense_entry_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint(
            "reconciliation_id", "txn_id", name=op.f("uq_reconciliation_items_reconciliation_id_txn_id")
        ),
    )
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_items_txn", ["txn_id"], unique=False)
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_items_txn")
    op.drop_table("reconciliation_items")
    op.drop_table("reconciliations")
    op.drop_table("bank_registry_lines")
    op.drop_table("bank_registries")
