"""Services (subscriptions) with speed profiles, CPE MACs, switches and port bindings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:10:29.594630
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "speed_profiles",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("down_kbps", sa.Integer(), nullable=False),
        sa.Column("up_kbps", sa.Integer(), nullable=False),
        sa.Column("burst_down_kbps", sa.Integer(), nullable=True),
        sa.Column("burst_up_kbps", sa.Integer(), nullable=True),
        sa.Column("burst_threshold_kbps", sa.Integer(), nullable=True),
        sa.Column("burst_time_s", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(burst_down_kbps IS NULL) = (burst_up_kbps IS NULL)", name=op.f("ck_speed_profiles_burst_pair")
        ),
        sa.CheckConstraint("down_kbps > 0 AND up_kbps > 0", name=op.f("ck_speed_profiles_rates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speed_profiles")),
        sa.UniqueConstraint("name", name=op.f("uq_speed_profiles_name")),
    )
    op.create_table(
        "switches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("vendor", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switches")),
        sa.UniqueConstraint("name", name=op.f("uq_switches_name")),
        sa.UniqueConstraint("remote_id", name=op.f("uq_switches_remote_id")),
    )
    op.create_table(
        "services",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("speed_profile_id", BigId, nullable=True),
        sa.Column("login", sa.String(length=128), nullable=True),
        sa.Column("password", sa.String(length=128), nullable=True),
        sa.Column("framed_ip", sa.String(length=45), nullable=True),
        sa.Column("framed_pool", sa.String(length=64), nullable=True),
        sa.Column("ipv6_prefix", sa.String(length=64), nullable=True),
        sa.Column("delegated_prefix", sa.String(length=64), nullable=True),
        sa.Column("simultaneous_use", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('internet', 'tv', 'addon', 'one_time')", name=op.f("ck_services_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended_voluntary', 'suspended_involuntary', 'blocked', 'churned')",
            name=op.f("ck_services_status"),
        ),
        sa.CheckConstraint(
            "simultaneous_use IS NULL OR simultaneous_use > 0", name=op.f("ck_services_simultaneous_use")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_services_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["speed_profile_id"],
            ["speed_profiles.id"],
            name=op.f("fk_services_speed_profile_id_speed_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("framed_ip", name=op.f("uq_services_framed_ip")),
        sa.UniqueConstraint("login", name=op.f("uq_services_login")),
    )
    op.create_index("ix_services_account", "services", ["account_id"], unique=False)
    op.create_index("ix_services_updated_at", "services", ["updated_at"], unique=False)
    op.create_table(
        "service_macs",
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("service_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_macs_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mac", name=op.f("pk_service_macs")),
    )
    op.create_index(op.f("ix_service_macs_service_id"), "service_macs", ["service_id"], unique=False)
    op.create_table(
        "switch_ports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("switch_id", BigId, nullable=False),
        sa.Column("port", sa.String(length=64), nullable=False),
        sa.Column("vlan", sa.Integer(), nullable=False),
        sa.Column("service_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_switch_ports_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["switch_id"], ["switches.id"], name=op.f("fk_switch_ports_switch_id_switches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switch_ports")),
        sa.UniqueConstraint("service_id", name=op.f("uq_switch_ports_service_id")),
        sa.UniqueConstraint("switch_id", "port", "vlan", name=op.f("uq_switch_ports_switch_id_port_vlan")),
    )


def downgrade() -> None:
    op.drop_table("switch_ports")
    op.drop_index(op.f("ix_service_macs_service_id"), table_name="service_macs")
    op.drop_table("service_macs")
    op.drop_index("ix_services_updated_at", table_name="services")
    op.drop_index("ix_services_account", table_name="services")
    op.drop_table("services")
    op.drop_table("switches")
    op.drop_table("speed_profiles")
