"""Tariff catalog: tariffs, versions, bundles, promotions, imports; the tariff of a service.

Adds ``services.tariff_code`` / ``promotion_code`` (references by code), ``activated_on`` and
``billing_anchor_day``, and grants the ``tariffs.*`` permissions to the built-in roles.

On SQLite the new service columns are added with plain ``ALTER TABLE ... ADD COLUMN`` (inline
REFERENCES and CHECK), not Alembic's batch mode: batch recreates the table, and with foreign
keys on, dropping ``services`` would cascade into ``service_macs``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.migration_grants import grant, revoke
from billing.db.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PERMISSIONS = {
    "tariffs.read": ("admin", "billing", "support", "auditor"),
    "tariffs.import": ("admin", "billing"),
}

_KINDS = "'internet', 'tv', 'addon', 'one_time'"
_ADDONS = "'static_ip', 'speed_boost', 'extra_traffic', 'cpe_rental', 'other'"


def _stored_item(name: str) -> None:
    """``bundles`` and ``promotions``: code, name, content and fingerprint, who imported it."""
    op.create_table(
        name,
        sa.Column("id", BigId, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("import_id", BigId, nullable=False),
        sa.Column("imported_by", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"], ["catalog_imports.id"], name=op.f(f"fk_{name}_import_id_catalog_imports")
        ),
        sa.ForeignKeyConstraint(
            ["imported_by"], ["operators.id"], name=op.f(f"fk_{name}_imported_by_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("code", name=op.f(f"uq_{name}_code")),
    )


def upgrade() -> None:
    op.create_table(
        "catalog_imports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("operator_login", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_catalog_imports_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_imports")),
    )
    op.create_table(
        "tariffs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("addon", sa.String(length=16), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f("ck_tariffs_kind")),
        sa.CheckConstraint(f"addon IS NULL OR addon IN ({_ADDONS})", name=op.f("ck_tariffs_addon")),
        sa.CheckConstraint("(kind = 'addon') = (addon IS NOT NULL)", name=op.f("ck_tariffs_addon_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("code", name=op.f("uq_tariffs_code")),
    )
    op.create_table(
        "tariff_versions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tariff_id", BigId, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("import_id", BigId, nullable=False),
        sa.Column("imported_by", BigId, nullable=True),
        sa.CheckConstraint("number >= 1", name=op.f("ck_tariff_versions_number")),
        sa.ForeignKeyConstraint(
            ["import_id"], ["catalog_imports.id"], name=op.f("fk_tariff_versions_import_id_catalog_imports")
        ),
        sa.ForeignKeyConstraint(
            ["imported_by"], ["operators.id"], name=op.f("fk_tariff_versions_imported_by_operators")
        ),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_tariff_versions_tariff_id_tariffs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_versions")),
        sa.UniqueConstraint("tariff_id", "number", name=op.f("uq_tariff_versions_tariff_id_number")),
    )
    _stored_item("bundles")
    _stored_item("promotions")
    _add_service_columns()
    _grant_permissions()


def _add_service_columns() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for column in (
            "tariff_code VARCHAR(64) CONSTRAINT fk_services_tariff_code_tariffs REFERENCES tariffs (code)",
            "promotion_code VARCHAR(64) CONSTRAINT fk_services_promotion_code_promotions REFERENCES promotions (code)",
            "activated_on DATE",
            "billing_anchor_day INTEGER DEFAULT 1 NOT NULL"
            " CONSTRAINT ck_services_billing_anchor_day CHECK (billing_anchor_day BETWEEN 1 AND 28)",
        ):
            op.execute(f"ALTER TABLE services ADD COLUMN {column}")
        return
    op.add_column("services", sa.Column("tariff_code", sa.String(length=64), nullable=True))
    op.add_column("services", sa.Column("promotion_code", sa.String(length=64), nullable=True))
    op.add_column("services", sa.Column("activated_on", sa.Date(), nullable=True))
    op.add_column(
        "services", sa.Column("billing_anchor_day", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.create_foreign_key(
        op.f("fk_services_tariff_code_tariffs"), "services", "tariffs", ["tariff_code"], ["code"]
    )
    op.create_foreign_key(
        op.f("fk_services_promotion_code_promotions"), "services", "promotions", ["promotion_code"], ["code"]
    )
    op.create_check_constraint(
        op.f("ck_services_billing_anchor_day"), "services", "billing_anchor_day BETWEEN 1 AND 28"
    )


def _grant_permissions() -> None:
    grant(PERMISSIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a column that a CHECK or REFERENCES names, and rebuilding
        # ``services`` with foreign keys on would cascade into service_macs: restore a backup.
        raise NotImplementedError("downgrading below 0005 is not supported on SQLite; restore a backup")
    revoke(PERMISSIONS)
    op.drop_constraint(op.f("ck_services_billing_anchor_day"), "services", type_="check")
    op.drop_constraint(op.f("fk_services_promotion_code_promotions"), "services", type_="foreignkey")
    op.drop_constraint(op.f("fk_services_tariff_code_tariffs"), "services", type_="foreignkey")
    for column in ("billing_anchor_day", "activated_on", "promotion_code", "tariff_code"):
        op.drop_column("services", column)
    op.drop_table("promotions")
    op.drop_table("bundles")
    op.drop_table("tariff_versions")
    op.drop_table("tariffs")
    op.drop_table("catalog_imports")
