"""Payment files (unique per bank and SHA-256), the unmatched-payments queue, contract numbers.

Grants ``payments.import`` (import a bank file) and ``payments.unmatched`` (list and assign the
unmatched queue) to admins and billing staff. Adds the nullable, unique ``contract_number`` to
customers: bank payments may quote the contract instead of the account. See
``billing.db.payment_files``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import Money, UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "payments.import": ("admin", "billing"),
    "payments.unmatched": ("admin", "billing"),
}


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contract_number", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_customers_contract_number"), ["contract_number"])

    op.create_table(
        "payment_files",
        sa.Column("id", BigId, nullable=False),
        sa.Column("bank", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lines_total", sa.Integer(), nullable=False),
        sa.Column("lines_done", sa.Integer(), nullable=False),
        sa.Column("posted_count", sa.Integer(), nullable=False),
        sa.Column("posted_total", Money(), nullable=False),
        sa.Column("duplicate_count", sa.Integer(), nullable=False),
        sa.Column("duplicate_total", Money(), nullable=False),
        sa.Column("unmatched_count", sa.Integer(), nullable=False),
        sa.Column("unmatched_total", Money(), nullable=False),
        sa.Column("bad_count", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("state IN ('importing', 'done')", name=op.f("ck_payment_files_state")),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_payment_files_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_files")),
        sa.UniqueConstraint("bank", "sha256", name=op.f("uq_payment_files_bank_sha256")),
    )
    with op.batch_alter_table("payment_files", schema=None) as batch_op:
        batch_op.create_index("ix_payment_files_bank_imported", ["bank", "imported_at"], unique=False)

    op.create_table(
        "unmatched_payments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("file_id", BigId, nullable=False),
        sa.Column("bank", sa.String(length=32), nullable=False),
        sa.Column("line_key", sa.String(length=100), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account_text", sa.String(length=64), nullable=True),
        sa.Column("contract_text", sa.String(length=64), nullable=True),
        sa.Column("payer", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("transaction_id", BigId, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("payment_id", BigId, nullable=True),
        sa.Column("assigned_at", UtcDateTime(), nullable=True),
        sa.Column("assigned_by", BigId, nullable=True),
        sa.CheckConstraint(
            "(state = 'assigned') = (payment_id IS NOT NULL)", name=op.f("ck_unmatched_payments_assigned")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_unmatched_payments_amount_positive")),
        sa.CheckConstraint("state IN ('open', 'assigned')", name=op.f("ck_unmatched_payments_state")),
        sa.ForeignKeyConstraint(
            ["assigned_by"], ["operators.id"], name=op.f("fk_unmatched_payments_assigned_by_operators")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["payment_files.id"], name=op.f("fk_unmatched_payments_file_id_payment_files")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_unmatched_payments_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_unmatched_payments_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_payments")),
        sa.UniqueConstraint("bank", "line_key", name=op.f("uq_unmatched_payments_bank_line_key")),
    )
    with op.batch_alter_table("unmatched_payments", schema=None) as batch_op:
        batch_op.create_index("ix_unmatched_payments_state", ["state", "bank", "id"], unique=False)
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    with op.batch_alter_table("unmatched_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_unmatched_payments_state")
    op.drop_table("unmatched_payments")
    with op.batch_alter_table("payment_files", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_files_bank_imported")
    op.drop_table("payment_files")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_customers_contract_number"), type_="unique")
        batch_op.drop_column("contract_number")
