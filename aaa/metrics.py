"""The AAA server's Prometheus metrics: what operators graph and alert on.

Requests by type and outcome, drops by reason, reply latency, the snapshot's age and size, the
accounting journal's depth. Served by ``prometheus_client`` on its own loopback port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AaaMetrics:
    """One registry per server, so tests can make as many servers as they like."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "billingd_radius_requests", "RADIUS requests answered or dropped, by type and outcome",
            ["type", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.drops = Counter(
            "billingd_radius_drops", "Datagrams dropped before a decision, by reason", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "billingd_radius_latency_seconds", "Time from datagram to reply, by type", ["type"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )  # fmt: skip
        self.snapshot_age = Gauge(
            "billingd_snapshot_age_seconds", "Seconds since the subscriber snapshot was last refreshed",
            registry=self.registry,
        )  # fmt: skip
        self.snapshot_size = Gauge(
            "billingd_snapshot_subscribers", "Subscribers in the snapshot", registry=self.registry
        )
        self.degraded = Gauge(
            "billingd_degraded", "1 while the database is unreachable and decisions use the snapshot",
            registry=self.registry,
        )  # fmt: skip
        self.journal_depth = Gauge(
            "billingd_journal_depth", "Accounting records journaled locally, waiting for the database",
            registry=self.registry,
        )  # fmt: skip
