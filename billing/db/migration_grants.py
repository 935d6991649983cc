"""Give built-in roles a migration's new permissions, and take them back on downgrade.

Migrations that add a capability (charge runs, quota, payments...) grant its permissions to the
built-in roles that need them; the statements are the same each time, so they live here.
"""

from __future__ import annotations

from collections.abc import Mapping

from alembic import op


def grant(permissions: Mapping[str, tuple[str, ...]]) -> None:
    """Grant each permission to the named built-in roles (``{permission: (role, ...)}``)."""
    for permission, roles in permissions.items():
        names = ", ".join(f"'{role}'" for role in roles)
        op.execute(
            "INSERT INTO role_permissions (role_id, permission) "
            f"SELECT id, '{permission}' FROM roles WHERE name IN ({names})"
        )


def revoke(permissions: Mapping[str, tuple[str, ...]]) -> None:
    """Take the permissions back from every role."""
    names = ", ".join(f"'{p}'" for p in permissions)
    op.execute(f"DELETE FROM role_permissions WHERE permission IN ({names})")
