"""The provisioning worker: task claims and leases, attempts, confirmed network state, switch access.

``provisioning_tasks`` gains the worker's columns (due time, claim and lease, outcome, NMS export
cursor) and its states (``failed``, never written before, becomes ``dead``); new tables
``provisioning_attempts`` and ``network_states``; ``switches`` gains how billing reaches it
(driver device type, credentials reference, ports). Grants ``provisioning.read`` (every built-in
role but nothing new to write), ``provisioning.manage`` (retry, cancel, repair: admins) and
``network.read`` / ``network.manage`` (switch records). See ``billing.db.provisioning``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 16:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "provisioning.read": ("admin", "billing", "support", "auditor"),
    "provisioning.manage": ("admin",),
    "network.read": ("admin", "billing", "support"),
    "network.manage": ("admin",),
}
OLD_STATES = "state IN ('pending', 'done', 'failed')"
NEW_STATES = "state IN ('pending', 'running', 'done', 'unknown', 'dead', 'cancelled', 'superseded')"
TASK_COLUMNS = (
    ("next_attempt_at", UtcDateTime()),
    ("claimed_by", sa.String(length=64)),
    ("lease_until", UtcDateTime()),
    ("finished_at", UtcDateTime()),
    ("outcome", sa.String(length=500)),
    ("exported_at", UtcDateTime()),
)
SWITCH_COLUMNS = (
    ("model", sa.String(length=64)),
    ("device_type", sa.String(length=32)),
    ("credentials", sa.String(length=64)),
    ("snmp_port", sa.Integer()),
    ("ssh_port", sa.Integer()),
)


def upgrade() -> None:
    op.execute("UPDATE provisioning_tasks SET state = 'dead' WHERE state = 'failed'")
    with op.batch_alter_table("provisioning_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_provisioning_tasks_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_provisioning_tasks_state"), NEW_STATES)
        for name, type_ in TASK_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("switches", schema=None) as batch_op:
        for name, type_ in SWITCH_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "provisioning_attempts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("task_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("request", sa.String(length=1000), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("error_cause", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "action IN ('coa', 'disconnect', 'block', 'unblock', 'set_rate', 'none')",
            name=op.f("ck_provisioning_attempts_action"),
        ),
        sa.CheckConstraint(
            "result IN ('ack', 'nak', 'gone', 'timeout', 'ok', 'error')",
            name=op.f("ck_provisioning_attempts_result"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["provisioning_tasks.id"],
            name=op.f("fk_provisioning_attempts_task_id_provisioning_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_attempts")),
    )
    op.create_index("ix_provisioning_attempts_task", "provisioning_attempts", ["task_id", "id"], unique=False)
    op.create_table(
        "network_states",
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("speed_profile", sa.String(length=64), nullable=True),
        sa.Column("task_id", BigId, nullable=False),
        sa.Column("confirmed_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "network IN ('allow', 'walled_garden', 'deny')", name=op.f("ck_network_states_network")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_network_states_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["provisioning_tasks.id"], name=op.f("fk_network_states_task_id_provisioning_tasks")
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_network_states")),
    )
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    op.drop_table("network_states")
    op.drop_index("ix_provisioning_attempts_task", table_name="provisioning_attempts")
    op.drop_table("provisioning_attempts")
    with op.batch_alter_table("switches", schema=None) as batch_op:
        for name, _ in reversed(SWITCH_COLUMNS):
            batch_op.drop_column(name)
    op.execute("UPDATE provisioning_tasks SET state = 'failed' WHERE state NOT IN ('pending', 'done')")
    with op.batch_alter_table("provisioning_tasks", schema=None) as batch_op:
        for name, _ in reversed(TASK_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_constraint(op.f("ck_provisioning_tasks_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_provisioning_tasks_state"), OLD_STATES)
