"""Initial schema: staff and permissions, audit log, dictionaries, customers, accounts, ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 23:40:37.754626
"""

import sqlalchemy as sa
from alembic import op

from billing.db.base import BigId
from billing.db.types import Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dictionary_entries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('subscriber_category', 'region', 'status_reason', 'adjustment_reason')",
            name=op.f("ck_dictionary_entries_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dictionary_entries")),
        sa.UniqueConstraint("kind", "code", name=op.f("uq_dictionary_entries_kind_code")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", Money(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('subscriber', 'revenue', 'clearing', 'cash', 'suspense', 'tax', 'adjustment', 'equity')",
            name=op.f("ck_ledger_accounts_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "operators",
        sa.Column("id", BigId, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("login", name=op.f("uq_operators_login")),
    )
    op.create_table(
        "roles",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("operator_login", sa.String(length=64), nullable=False),
        sa.Column("impersonated_by", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_audit_log_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"], unique=False)
    op.create_index(
        op.f("ix_audit_log_operator_login"),
        "audit_log",
        ["operator_login"],
        unique=False,
    )

    op.create_table(
        "customers",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tax_id", sa.String(length=64), nullable=True),
        sa.Column("category_id", BigId, nullable=False),
        sa.Column("region_id", BigId, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('person', 'company')", name=op.f("ck_customers_kind")),
        sa.CheckConstraint("status IN ('active', 'closed')", name=op.f("ck_customers_status")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["dictionary_entries.id"],
            name=op.f("fk_customers_category_id_dictionary_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["dictionary_entries.id"],
            name=op.f("fk_customers_region_id_dictionary_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index(op.f("ix_customers_category_id"), "customers", ["category_id"], unique=False)
    op.create_index(op.f("ix_customers_name"), "customers", ["name"], unique=False)
    op.create_index(op.f("ix_customers_region_id"), "customers", ["region_id"], unique=False)

    op.create_table(
        "ledger_transactions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("effective_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("reverses_id", BigId, nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("posting_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("posting_count >= 2", name=op.f("ck_ledger_transactions_posting_count")),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_ledger_transactions_operator_id_operators"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_transactions_reverses_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_transactions_idempotency_key")),
    )
    op.create_index(
        "uq_ledger_transactions_reverses_id",
        "ledger_transactions",
        ["reverses_id"],
        unique=True,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
        sqlite_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_transactions_effective_at",
        "ledger_transactions",
        ["effective_at"],
        unique=False,
    )

    op.create_table(
        "operator_roles",
        sa.Column("operator_id", BigId, nullable=False),
        sa.Column("role_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_roles_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["roles.id"],
            name=op.f("fk_operator_roles_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operator_id", "role_id", name=op.f("pk_operator_roles")),
    )
    op.create_table(
        "role_permissions",
        sa.Column("role_id", BigId, nullable=False),
        sa.Column("permission", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["roles.id"],
            name=op.f("fk_role_permissions_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("role_id", "permission", name=op.f("pk_role_permissions")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_mode", sa.String(length=16), nullable=False),
        sa.Column("credit_limit", Money(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ledger_account_id", BigId, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "billing_mode IN ('prepaid', 'postpaid')",
            name=op.f("ck_accounts_billing_mode"),
        ),
        sa.CheckConstraint("status IN ('active', 'closed')", name=op.f("ck_accounts_status")),
        sa.CheckConstraint("credit_limit >= 0", name=op.f("ck_accounts_credit_limit")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_accounts_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_accounts_ledger_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("ledger_account_id", name=op.f("uq_accounts_ledger_account_id")),
        sa.UniqueConstraint("number", name=op.f("uq_accounts_number")),
    )
    op.create_index("ix_accounts_customer", "accounts", ["customer_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=300), nullable=False),
        sa.CheckConstraint("kind IN ('email', 'phone', 'address')", name=op.f("ck_contacts_kind")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contacts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_customer_id"), "contacts", ["customer_id"], unique=False)

    op.create_table(
        "postings",
        sa.Column("transaction_id", BigId, nullable=False),
        sa.Column("leg", sa.SmallInteger(), nullable=False),
        sa.Column("ledger_account_id", BigId, nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_postings_amount_nonzero")),
        sa.PrimaryKeyConstraint("transaction_id", "leg", name=op.f("pk_postings")),
    )
    op.create_index(
        "ix_postings_account_txn", "postings", ["ledger_account_id", "transaction_id"], unique=False
    )

    _forbid_changes()
    _check_posting_references()
    _seed_roles()


APPEND_ONLY = ("postings", "ledger_transactions", "audit_log")

BUILTIN_ROLES = {
    "admin": (
        "Everything, including managing operators and acting as another operator",
        [
            "subscribers.read",
            "subscribers.write",
            "ledger.read",
            "ledger.write",
            "dictionaries.read",
            "dictionaries.write",
            "operators.read",
            "operators.write",
            "operators.impersonate",
            "audit.read",
            "check.run",
        ],
    ),
    "billing": (
        "Billing staff: subscribers and money",
        [
            "subscribers.read",
            "subscribers.write",
            "ledger.read",
            "ledger.write",
            "dictionaries.read",
            "check.run",
        ],
    ),
    "support": (
        "Help desk: read subscribers and balances",
        ["subscribers.read", "ledger.read", "dictionaries.read"],
    ),
    "auditor": (
        "Read-only: audit log, ledger and invariant check",
        ["audit.read", "ledger.read", "subscribers.read", "check.run"],
    ),
}


def _forbid_changes() -> None:
    """Postings, transactions and audit rows are append-only, enforced by the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION billing_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; "
            "END $$"
        )
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


def _check_posting_references() -> None:
    """Every posting refers to an existing transaction and to an account kept in its currency;
    on PostgreSQL, the postings of each statement also balance per transaction and currency.

    Done by triggers instead of foreign keys (see ``billing.db.ledger.Posting``): one set-based
    check per statement on PostgreSQL, a row check on SQLite. Ledger accounts are never deleted
    and their id, currency and kind never change, so a reference once checked stays valid.
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION billing_check_new_postings() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE bad record;
            BEGIN
                SELECT n.transaction_id, n.leg, n.ledger_account_id, n.currency INTO bad
                FROM new_postings n
                LEFT JOIN ledger_accounts a ON a.id = n.ledger_account_id AND a.currency = n.currency
                LEFT JOIN ledger_transactions t ON t.id = n.transaction_id
                WHERE a.id IS NULL OR t.id IS NULL
                LIMIT 1;
                IF FOUND THEN
                    RAISE EXCEPTION 'posting (transaction %, leg %) refers to a missing transaction '
                        'or to ledger account % not kept in %',
                        bad.transaction_id, bad.leg, bad.ledger_account_id, bad.currency
                        USING ERRCODE = 'foreign_key_violation';
                END IF;
                SELECT n.transaction_id, n.currency, sum(n.amount) AS off INTO bad
                FROM new_postings n
                GROUP BY n.transaction_id, n.currency
                HAVING sum(n.amount) <> 0
                LIMIT 1;
                IF FOUND THEN
                    RAISE EXCEPTION '%: legs do not sum to zero per currency (% %)',
                        (SELECT idempotency_key FROM ledger_transactions WHERE id = bad.transaction_id),
                        bad.currency, bad.off USING ERRCODE = 'check_violation';
                END IF;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER postings_references AFTER INSERT ON postings REFERENCING NEW TABLE AS new_postings "
            "FOR EACH STATEMENT EXECUTE FUNCTION billing_check_new_postings()"
        )
        op.execute(
            "CREATE FUNCTION billing_forbid_account_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'ledger accounts are never deleted and keep their id, currency and kind' "
            "USING ERRCODE = 'restrict_violation'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_accounts_fixed BEFORE DELETE OR UPDATE OF id, currency, kind ON ledger_accounts "
            "FOR EACH ROW EXECUTE FUNCTION billing_forbid_account_change()"
        )
        op.execute(
            "CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts "
            "FOR EACH STATEMENT EXECUTE FUNCTION billing_forbid_account_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER postings_references BEFORE INSERT ON postings WHEN "
            "NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE id = NEW.ledger_account_id AND currency = NEW.currency) "
            "OR NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id) "
            "BEGIN SELECT RAISE(ABORT, 'posting refers to a missing transaction "
            "or to a ledger account not kept in its currency'); END"
        )
        message = "ledger accounts are never deleted and keep their id, currency and kind"
        op.execute(
            f"CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )
        op.execute(
            f"CREATE TRIGGER ledger_accounts_fixed BEFORE UPDATE OF id, currency, kind ON ledger_accounts "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def _seed_roles() -> None:
    roles = sa.table(
        "roles",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("description", sa.String),
    )
    grants = sa.table(
        "role_permissions",
        sa.column("role_id", sa.Integer),
        sa.column("permission", sa.String),
    )
    for role_id, (name, (description, permissions)) in enumerate(BUILTIN_ROLES.items(), start=1):
        op.execute(roles.insert().values(id=role_id, name=name, description=description))
        op.execute(grants.insert().values([{"role_id": role_id, "permission": p} for p in permissions]))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval('roles_id_seq', (SELECT max(id) FROM roles))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS billing_forbid_change()")
        op.execute("DROP TRIGGER IF EXISTS postings_references ON postings")
        op.execute("DROP FUNCTION IF EXISTS billing_check_new_postings()")
        op.execute("DROP TRIGGER IF EXISTS ledger_accounts_fixed ON ledger_accounts")
        op.execute("DROP TRIGGER IF EXISTS ledger_accounts_no_truncate ON ledger_accounts")
        op.execute("DROP FUNCTION IF EXISTS billing_forbid_account_change()")
    op.drop_index("ix_postings_account_txn", table_name="postings")

    op.drop_table("postings")
    op.drop_index(op.f("ix_contacts_customer_id"), table_name="contacts")

    op.drop_table("contacts")
    op.drop_index("ix_accounts_customer", table_name="accounts")

    op.drop_table("accounts")
    op.drop_table("role_permissions")
    op.drop_table("operator_roles")
    op.drop_index("ix_ledger_transactions_effective_at", table_name="ledger_transactions")

    op.drop_table("ledger_transactions")
    op.drop_index(op.f("ix_customers_region_id"), table_name="customers")
    op.drop_index(op.f("ix_customers_name"), table_name="customers")
    op.drop_index(op.f("ix_customers_category_id"), table_name="customers")

    op.drop_table("customers")
    op.drop_index(op.f("ix_audit_log_operator_login"), table_name="audit_log")
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_table("roles")
    op.drop_table("operators")
    op.drop_table("ledger_accounts")
    op.drop_table("dictionary_entries")
