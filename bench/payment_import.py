"""Payment file import benchmark (not a test): an N-line bank statement for N accounts on PostgreSQL.

A fresh database (``BILLING_TEST_PG_URL``) is seeded set-based with N subscribers (accounts
``B0000001``.., see :class:`bench.radius_seed.BenchDatabase`, unfunded). Each round generates a
statement in the ``generic-csv`` preset with one line per account (new bank references every
round, so every line posts), then times :func:`billing.payment_import.import_file` end to end:
parsing, matching by the account field, posting payments, notifications, file record. Then it
times the same file again (refused as already imported) and a different file repeating every
line (all duplicates). Prints each round, the median, lines/s and the ratio to the goal
(1,000,000 lines <= 30 s).

Usage: ``python bench/payment_import.py [N] [ROUNDS] [BATCH]`` (defaults 100,000 / 3 / 5,000).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent))

from radius_seed import DEFAULT_ADMIN_URL, BenchDatabase

from billing import operators, service_lifecycle
from billing.audit import Actor
from billing.db.engine import session_factory
from billing.payment_files import parse
from billing.payment_import import import_file
from billing.payment_matching import load_rules
from billing.permissions import resolve_actor

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "conf" / "payment_formats"
MATCHER = load_rules(ROOT / "conf" / "payment_matching.toml")
RULES = service_lifecycle.rules_for(UTC)
GOAL_S, GOAL_LINES = 30.0, 1_000_000


def statement(n: int, tag: str) -> bytes:
    """``n`` lines in the generic-csv preset, one per account, references ``{tag}-{i}``."""
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    rows = ["reference,date,amount,currency,account,contract,payer,purpose\n"]
    rows.extend(
        f"{tag}-{i},{day},{1 + i % 50}.{i % 100:02d},EUR,B{i:07d},,Payer {i},Internet for B{i:07d}\n"
        for i in range(1, n + 1)
    )
    return "".join(rows).encode()


def actor(engine: Engine) -> Actor:
    with session_factory(engine).begin() as s:
        operators.bootstrap(s, Actor(None, "bench", None, "bench"), "bench", "Bench")
        return resolve_actor(s, "bench", source="bench")


def load(engine: Engine, who: Actor, data: bytes, name: str, batch: int) -> tuple[float, object]:
    started = time.perf_counter()
    report = import_file(
        engine, who, data, bank="benchbank", fmt="generic-csv", name=name, currency="EUR", time_zone=UTC,
        rules=RULES, matcher=MATCHER, presets_dir=PRESETS, batch_size=batch,
    )  # fmt: skip
    return time.perf_counter() - started, report


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    started = time.perf_counter()
    db = BenchDatabase(DEFAULT_ADMIN_URL, n, prefix="bench_payimport", fund=False)
    try:
        assert db.engine is not None
        engine = db.engine
        who = actor(engine)
        print(f"PostgreSQL, {n:,} accounts seeded in {time.perf_counter() - started:.0f} s; batch {batch:,}")
        times = []
        for r in range(rounds):
            data = statement(n, f"R{r}")
            t0 = time.perf_counter()
            parse(data, "generic-csv", presets_dir=PRESETS, currency="EUR")
            parse_s = time.perf_counter() - t0
            took, report = load(engine, who, data, f"round{r}.csv", batch)
            times.append(took)
            assert report.posted == n, report  # type: ignore[attr-defined]
            again_s, again = load(engine, who, data, f"round{r}.csv", batch)
            assert again.already_imported  # type: ignore[attr-defined]
            print(
                f"  round {r + 1}: {took:6.1f} s, {n / took:9,.0f} lines/s (parse alone {parse_s:.1f} s);"
                f" same file again {again_s:.1f} s"
            )
        dup_s, dup = load(engine, who, statement(n, "R0").replace(b"\n", b"\r\n"), "dup.csv", batch)
        assert dup.duplicate == n, dup  # type: ignore[attr-defined]
        print(f"  a new file repeating all {n:,} lines: {dup_s:.1f} s (all duplicates, nothing posted)")
        median = statistics.median(times)
        scaled = median * GOAL_LINES / n
        print(f"  median of {rounds}: {median:.1f} s, {n / median:,.0f} lines/s")
        print(f"  1M-line import {'measured' if n == GOAL_LINES else 'scaled linearly'}: {scaled:.1f} s")
        print(f"  goal <= {GOAL_S:.0f} s   ratio {scaled / GOAL_S:.2f}")
        with engine.connect() as c:
            rows = c.execute(text("SELECT count(*) FROM payments")).scalar_one()
        print(f"  payments rows: {rows:,}")
    finally:
        db.close()


if __name__ == "__main__":
    main()
