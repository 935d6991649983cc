"""aaa.schema, the AAA server's view of the billing database, matches billing's own schema."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Integer

from aaa import schema as view
from billing.db.models import Base


@pytest.mark.parametrize("table", sorted(view.metadata.tables))
def test_every_viewed_column_exists_in_billing_with_a_compatible_type(table: str) -> None:
    owned = Base.metadata.tables[table]
    for column in view.metadata.tables[table].columns:
        assert column.name in owned.columns, f"{table}.{column.name} is not in billing's schema"
        theirs = owned.columns[column.name].type
        ours = column.type
        if isinstance(ours, BigInteger | Integer):
            assert isinstance(theirs, BigInteger | Integer) or "BigInteger" in repr(theirs), (
                table,
                column.name,
            )
        else:
            assert type(ours).__name__ in {"UtcTime", "MoneyAmount", "String", "Boolean"}
            expected = {"UtcTime": "UtcDateTime", "MoneyAmount": "Money"}.get(
                type(ours).__name__, type(ours).__name__
            )
            assert type(theirs).__name__ == expected, (table, column.name, theirs)


def test_snapshot_channel_is_the_one_the_migration_notifies() -> None:
    from importlib import import_module

    migration = import_module("billing.db.migrations.versions.0003_radius_sessions")
    assert migration.SNAPSHOT_CHANNEL == view.SNAPSHOT_CHANNEL
