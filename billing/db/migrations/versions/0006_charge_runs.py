"""Charge runs: the recorded runs, their per-service errors, the charges posted, planning marks.

Grants ``charges.run`` (billing staff and admins) and ``charges.view`` (also support and
auditors) to the built-in roles. See ``billing.db.charges`` for what each table means.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import Money, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "charges.run": ("admin", "billing"),
    "charges.view": ("admin", "billing", "support", "auditor"),
}


def upgrade() -> None:
    op.create_table(
        "charge_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("subscribers", sa.String(length=200), nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("operator_login", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("services_seen", sa.Integer(), nullable=False),
        sa.Column("services_charged", sa.Integer(), nullable=False),
        sa.Column("services_skipped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("charges_posted", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name=op.f("ck_charge_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_charge_runs_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_runs")),
    )
    op.create_index("ix_charge_runs_as_of", "charge_runs", ["as_of"], unique=False)
    op.create_table(
        "charge_marks",
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("planned_through", sa.Date(), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["charge_runs.id"], name=op.f("fk_charge_marks_run_id_charge_runs")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_charge_marks_service_id_services")
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_charge_marks")),
    )
    op.create_table(
        "charge_run_errors",
        sa.Column("id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_charge_run_errors_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["charge_runs.id"], name=op.f("fk_charge_run_errors_run_id_charge_runs")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_charge_run_errors_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_run_errors")),
    )
    op.create_index("ix_charge_run_errors_run", "charge_run_errors", ["run_id"], unique=False)
    op.create_table(
        "charges",
        sa.Column("id", BigId, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("tariff_code", sa.String(length=64), nullable=False),
        sa.Column("tariff_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("transaction_id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('recurring', 'adjustment', 'one_time')", name=op.f("ck_charges_kind")),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_charges_amount_nonzero")),
        sa.CheckConstraint("period_start < period_end", name=op.f("ck_charges_period")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_charges_account_id_accounts")),
        sa.ForeignKeyConstraint(["run_id"], ["charge_runs.id"], name=op.f("fk_charges_run_id_charge_runs")),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_charges_service_id_services")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_charges_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_charges_idempotency_key")),
    )
    op.create_index("ix_charges_account", "charges", ["account_id"], unique=False)
    op.create_index("ix_charges_run", "charges", ["run_id"], unique=False)
    op.create_index("ix_charges_service", "charges", ["service_id", "period_start"], unique=False)
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    op.drop_index("ix_charges_service", table_name="charges")
    op.drop_index("ix_charges_run", table_name="charges")
    op.drop_index("ix_charges_account", table_name="charges")
    op.drop_table("charges")
    op.drop_index("ix_charge_run_errors_run", table_name="charge_run_errors")
    op.drop_table("charge_run_errors")
    op.drop_table("charge_marks")
    op.drop_index("ix_charge_runs_as_of", table_name="charge_runs")
    op.drop_table("charge_runs")
