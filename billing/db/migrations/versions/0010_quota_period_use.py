"""Prepaid quota: allowance use per billing period; the ``quota.read`` permission.

Adds ``quota_period_use`` (``billing.db.quota.QuotaPeriodUse``): the allowance volume each
session counted in each billing period of its service, so usage counts in the period it was
recorded in, not wholly in the one its session began in. Existing reservations get no rows:
an open session writes its rows at its next commit (its usage is rated whole each time), and
the sessions already closed in the period running at the upgrade stop counting against that
period's allowance (in the customer's favour, once).

Grants ``quota.read`` (``billing-admin quota list/show``) to admins, billing staff, support and
auditors.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "quota.read": ("admin", "billing", "support", "auditor"),
}


def upgrade() -> None:
    op.create_table(
        "quota_period_use",
        sa.Column("reservation_id", BigId, nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.Column("allowance_used", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("allowance_used >= 0", name=op.f("ck_quota_period_use_allowance_used")),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["quota_reservations.id"],
            name=op.f("fk_quota_period_use_reservation_id_quota_reservations"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_quota_period_use_service_id_services")
        ),
        sa.PrimaryKeyConstraint("reservation_id", "period_start", name=op.f("pk_quota_period_use")),
    )
    op.create_index(
        "ix_quota_period_use_service_period",
        "quota_period_use",
        ["service_id", "period_start"],
        unique=False,
    )
    grant(PERMISSIONS)


def downgrade() -> None:
    revoke(PERMISSIONS)
    op.drop_index("ix_quota_period_use_service_period", table_name="quota_period_use")
    op.drop_table("quota_period_use")
