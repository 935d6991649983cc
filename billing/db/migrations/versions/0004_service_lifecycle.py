"""Service lifecycle: status history, scheduled changes, voluntary suspensions, provisioning outbox.

Also seeds the ``status_reason`` codes the automatic transitions use (and ``customer_request``),
and grants the new ``services.*`` permissions to the built-in roles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_STATUSES = "'pending', 'active', 'suspended_voluntary', 'suspended_involuntary', 'blocked', 'churned'"
_EVENTS = (
    "'activate', 'suspend_voluntary', 'resume', 'suspend_for_debt', 'debt_paid', 'block', 'unblock', "
    "'churn', 'change_tariff'"
)

STATUS_REASONS = [
    # (code, name): the automatic transitions' reasons (billing.lifecycle.Reason), then the
    # operator's most common one; operators add their own with 'billing-admin dict add'.
    ("non_payment", "Non-payment"),
    ("payment_received", "Payment received"),
    ("voluntary_suspension_end", "End of voluntary suspension"),
    ("voluntary_suspension_max", "Voluntary suspension reached its maximum"),
    ("customer_request", "Customer request"),
]

PERMISSIONS = {
    "services.read": ("admin", "billing", "support", "auditor"),
    "services.change_status": ("admin", "billing"),
    "services.evaluate": ("admin", "billing"),
}

APPEND_ONLY = ("service_status_changes",)


def upgrade() -> None:
    op.create_table(
        "scheduled_service_changes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("reason_id", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("tariff_code", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "(state = 'pending') = (closed_at IS NULL)", name=op.f("ck_scheduled_service_changes_closed")
        ),
        sa.CheckConstraint(f"event IN ({_EVENTS})", name=op.f("ck_scheduled_service_changes_event")),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'cancelled', 'refused')",
            name=op.f("ck_scheduled_service_changes_state"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_scheduled_service_changes_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["reason_id"],
            ["dictionary_entries.id"],
            name=op.f("fk_scheduled_service_changes_reason_id_dictionary_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_scheduled_service_changes_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_service_changes")),
    )
    op.create_index(
        "ix_scheduled_service_changes_due", "scheduled_service_changes", ["state", "effective"], unique=False
    )
    op.create_index(
        "ix_scheduled_service_changes_service",
        "scheduled_service_changes",
        ["service_id", "state"],
        unique=False,
    )
    op.create_table(
        "service_status_changes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=False),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("reason_id", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("tariff_code", sa.String(length=64), nullable=True),
        sa.Column("from_tariff_code", sa.String(length=64), nullable=True),
        sa.Column("scheduled_change_id", BigId, nullable=True),
        sa.CheckConstraint(f"event IN ({_EVENTS})", name=op.f("ck_service_status_changes_event")),
        sa.CheckConstraint(
            f"from_status IN ({_STATUSES})", name=op.f("ck_service_status_changes_from_status")
        ),
        sa.CheckConstraint(f"to_status IN ({_STATUSES})", name=op.f("ck_service_status_changes_to_status")),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_service_status_changes_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["reason_id"],
            ["dictionary_entries.id"],
            name=op.f("fk_service_status_changes_reason_id_dictionary_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_change_id"],
            ["scheduled_service_changes.id"],
            name=op.f("fk_service_status_changes_scheduled_change_id_scheduled_service_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_service_status_changes_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_status_changes")),
    )
    op.create_index(
        "ix_service_status_changes_service", "service_status_changes", ["service_id", "at"], unique=False
    )
    op.create_table(
        "voluntary_suspensions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("end_date >= start_date", name=op.f("ck_voluntary_suspensions_period")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_voluntary_suspensions_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voluntary_suspensions")),
        sa.UniqueConstraint(
            "service_id", "start_date", name=op.f("uq_voluntary_suspensions_service_id_start_date")
        ),
    )
    op.create_table(
        "provisioning_tasks",
        sa.Column("id", BigId, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("status_change_id", BigId, nullable=True),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("release", sa.Boolean(), nullable=False),
        sa.Column("tariff_code", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_provisioning_tasks_attempts")),
        sa.CheckConstraint(
            "network IN ('allow', 'walled_garden', 'deny')", name=op.f("ck_provisioning_tasks_network")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'failed')", name=op.f("ck_provisioning_tasks_state")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_provisioning_tasks_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["status_change_id"],
            ["service_status_changes.id"],
            name=op.f("fk_provisioning_tasks_status_change_id_service_status_changes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_tasks")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_provisioning_tasks_idempotency_key")),
    )
    op.create_index("ix_provisioning_tasks_service", "provisioning_tasks", ["service_id"], unique=False)
    op.create_index("ix_provisioning_tasks_state", "provisioning_tasks", ["state", "id"], unique=False)
    _forbid_changes()
    _seed_reasons()
    grant(PERMISSIONS)


def _forbid_changes() -> None:
    """The status history is append-only, like the ledger (0001's ``billing_forbid_change``)."""
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION billing_forbid_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION billing_forbid_change()"
            )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _seed_reasons() -> None:
    """Add the status reasons the lifecycle needs, unless an operator already added them."""
    bind = op.get_bind()
    present = set(
        bind.execute(sa.text("SELECT code FROM dictionary_entries WHERE kind = 'status_reason'")).scalars()
    )
    entries = sa.table(
        "dictionary_entries",
        sa.column("kind", sa.String),
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("sort_order", sa.Integer),
    )
    rows = [
        {"kind": "status_reason", "code": code, "name": name, "active": True, "sort_order": order}
        for order, (code, name) in enumerate(STATUS_REASONS)
        if code not in present
    ]
    if rows:
        op.execute(entries.insert().values(rows))


def downgrade() -> None:
    revoke(PERMISSIONS)
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.drop_index("ix_provisioning_tasks_state", table_name="provisioning_tasks")
    op.drop_index("ix_provisioning_tasks_service", table_name="provisioning_tasks")
    op.drop_table("provisioning_tasks")
    op.drop_table("voluntary_suspensions")
    op.drop_index("ix_service_status_changes_service", table_name="service_status_changes")
    op.drop_table("service_status_changes")
    op.drop_index("ix_scheduled_service_changes_service", table_name="scheduled_service_changes")
    op.drop_index("ix_scheduled_service_changes_due", table_name="scheduled_service_changes")
    op.drop_table("scheduled_service_changes")
