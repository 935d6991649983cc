"""AAA snapshot at scale: load time and memory of 1,000,000 subscribers (issue 3 goals).

Not a test: it seeds a fresh PostgreSQL database set-based (``bench/radius_seed.py``: customers,
ledger accounts, accounts, active Internet services with logins and passwords, funded through the
ledger), then times ``aaa.snapshot.load_snapshot`` in this process ``--repeat`` times and prints
the median load time and the RSS growth (VmRSS from /proc, and the peak VmHWM) against the goals
(<= 20 s, <= 1 GiB). The database is dropped at the end, also on error. Usage:

    .venv/bin/python bench/snapshot.py [--subscribers 1000000] [--repeat 3] [--no-fund]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

from aaa.snapshot import load_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from radius_seed import DEFAULT_ADMIN_URL, BenchDatabase

GOAL_LOAD_S = 20.0
GOAL_RSS_MIB = 1024.0


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise LookupError(field)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-url", default=DEFAULT_ADMIN_URL, help="admin URL; a fresh database is made next to it"
    )
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="loads; the median time is quoted")
    ap.add_argument("--no-fund", action="store_true", help="skip funding the accounts through the ledger")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    db = BenchDatabase(args.pg_url, args.subscribers, prefix="bench_snapshot", fund=not args.no_fund)
    try:
        assert db.engine is not None
        seeded = time.perf_counter() - started
        print(f"database {db.name}: {args.subscribers:,} subscribers seeded in {seeded:.1f} s "
              f"({', '.join(f'{k} {v:.1f}' for k, v in db.timings.items())})", flush=True)  # fmt: skip
        with db.engine.connect() as conn:  # warm the engine's pool (not part of the load)
            conn.exec_driver_sql("SELECT 1")
        times: list[float] = []
        growth = peak = 0.0
        for i in range(args.repeat):
            gc.collect()
            rss0 = _status_mib("VmRSS")
            t0 = time.perf_counter()
            snapshot = load_snapshot(db.engine)
            times.append(time.perf_counter() - t0)
            rss1, hwm1 = _status_mib("VmRSS"), _status_mib("VmHWM")  # VmHWM: the peak so far
            if len(snapshot) != args.subscribers:
                raise SystemExit(f"snapshot has {len(snapshot)} subscribers, expected {args.subscribers}")
            probe = snapshot.by_login("user000001")
            assert probe is not None and probe.available > 0, probe
            if i == 0:  # later loads reuse memory the first one freed: only the first is honest
                growth, peak = rss1 - rss0, max(0.0, hwm1 - rss0)
            print(f"  load {i + 1}: {times[-1]:.2f} s, RSS {rss0:.0f} -> {rss1:.0f} MiB", flush=True)
            del snapshot, probe
        load = statistics.median(times)
        print()
        print(f"===== snapshot of {args.subscribers:,} subscribers: median of {args.repeat} load(s) =====")
        load_verdict = "MET" if load <= GOAL_LOAD_S else "MISSED"
        rss_verdict = "MET" if growth <= GOAL_RSS_MIB else "MISSED"
        print(f"  load time   {load:6.2f} s   (range {min(times):.2f}-{max(times):.2f})"
              f"   goal <= {GOAL_LOAD_S:.0f} s   {load_verdict} ({load / GOAL_LOAD_S:.0%})")  # fmt: skip
        print(f"  RSS growth  {growth:6.0f} MiB (peak during the load +{peak:.0f} MiB)"
              f"   goal <= 1 GiB   {rss_verdict} ({growth / GOAL_RSS_MIB:.0%})")  # fmt: skip
        print(
            f"  per subscriber: {1e6 * load / args.subscribers:.1f} µs, "
            f"{growth * 1024 * 1024 / args.subscribers:.0f} bytes"
        )
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
