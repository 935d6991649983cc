"""RADIUS sessions and the usage they report: what the AAA server's accounting writes.

One row per session, unique on ``acct_unique_id`` (derived from the NAS and its
Acct-Session-Id, so a retransmitted or late record finds the same row). Counters are running
totals that only move forward; each forward move is a ``session_usage`` row (the delta that
rating charges), so a retransmit or an interim arriving late adds nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, BigId


class RadiusSession(Base):
    """A session on a NAS, open until Stop, Accounting-On/Off of its NAS, or the reaper."""

    __tablename__ = "radius_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        Index("ix_radius_sessions_nas_open", "nas_address", "status"),
        Index("ix_radius_sessions_service_open", "service_id", "status"),
        Index("ix_radius_sessions_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    acct_unique_id: Mapped[str] = mapped_column(String(64), unique=True)
    acct_session_id: Mapped[str] = mapped_column(String(128))
    nas_address: Mapped[str] = mapped_column(String(45))
    nas_port_id: Mapped[str | None] = mapped_column(String(64))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    username: Mapped[str] = mapped_column(String(128))
    calling_station_id: Mapped[str | None] = mapped_column(String(64))
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    terminate_cause: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8), default="open")
    interim_interval_s: Mapped[int | None] = mapped_column(Integer)
    session_time_s: Mapped[int] = mapped_column(Integer, default=0)
    input_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_octets: Mapped[int] = mapped_column(BigInteger, default=0)
    input_packets: Mapped[int] = mapped_column(BigInteger, default=0)
    output_packets: Mapped[int] = mapped_column(BigInteger, default=0)


class SessionUsage(Base):
    """A forward move of a session's counters: the usage to rate, appended, never changed."""

    __tablename__ = "session_usage"
    __table_args__ = (
        CheckConstraint("input_octets >= 0 AND output_octets >= 0 AND seconds >= 0", name="non_negative"),
        Index("ix_session_usage_session", "session_id"),
        Index("ix_session_usage_recorded_at", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("radius_sessions.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    recorded_at: Mapped[datetime]
    input_octets: Mapped[int] = mapped_column(BigInteger)
    output_octets: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[int] = mapped_column(Integer)
