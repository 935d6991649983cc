"""Run a charge run in a process of its own, pausing after each batch: the crash test kills it."""

from __future__ import annotations

import sys
import time
from datetime import date

from billing.audit import Actor
from billing.charge_run import run_charges
from billing.db.engine import make_engine, session_factory


def main() -> None:
    url, as_of, operator_id, pause_ms = (
        sys.argv[1],
        date.fromisoformat(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    engine = make_engine(url)
    run_charges(
        session_factory(engine),
        as_of,
        Actor(operator_id, "tester", None, "test"),
        batch_size=3,
        evaluate=False,
        after_batch=lambda n: (print(n, flush=True), time.sleep(pause_ms / 1000)),
    )
    engine.dispose()


if __name__ == "__main__":
    main()
