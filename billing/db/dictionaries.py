"""System dictionaries: the operator-maintained lists that other records refer to by code."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId

DICTIONARY_KINDS = ("subscriber_category", "region", "status_reason", "adjustment_reason")
"""The dictionaries this release knows; each entry is unique by (kind, code)."""


class DictionaryEntry(Base):
    """A value of one dictionary, e.g. subscriber category ``residential``."""

    __tablename__ = "dictionary_entries"
    __table_args__ = (
        UniqueConstraint("kind", "code"),
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in DICTIONARY_KINDS)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
