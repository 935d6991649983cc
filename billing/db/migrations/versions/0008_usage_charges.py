"""Usage charges: ``charges.kind`` may be ``usage`` (rated usage of a postpaid period).

The charge run posts one usage line per service, billing period and tariff version of a
postpaid tariff with usage prices (:mod:`billing.charge_plan`); its ``charges`` row needs the
new kind in the check constraint. SQLite recreates the table (batch mode).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 00:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NEW = "kind IN ('recurring', 'adjustment', 'one_time', 'usage')"
_OLD = "kind IN ('recurring', 'adjustment', 'one_time')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_constraint(op.f("ck_charges_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_charges_kind"), condition)


def upgrade() -> None:
    _replace_check(_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM charges WHERE kind = 'usage'")
    _replace_check(_OLD)
