"""Prepaid quota: the allowance is per billing period, not per session.

Adds ``quota_reservations.allowance_used`` (the volume a session counted against its tariff's
allowance as of its last commit; 0 for existing rows) and replaces the index on ``service_id``
by one on ``(service_id, opened_at)``, which serves the foreign key as well as the sum of a
service's allowance use in a billing period (``billing.quota.allowance_used_before``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "quota_reservations",
        sa.Column("allowance_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_index(
        "ix_quota_reservations_service_opened",
        "quota_reservations",
        ["service_id", "opened_at"],
        unique=False,
    )
    op.drop_index(op.f("ix_quota_reservations_service_id"), table_name="quota_reservations")


def downgrade() -> None:
    op.create_index(
        op.f("ix_quota_reservations_service_id"), "quota_reservations", ["service_id"], unique=False
    )
    op.drop_index("ix_quota_reservations_service_opened", table_name="quota_reservations")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE quota_reservations DROP COLUMN allowance_used")
    else:
        op.drop_column("quota_reservations", "allowance_used")
