# The two commands: `make demo` and `make test`. Both set up .venv on a fresh machine first.
#   make demo [DURATION=N]   migrate var/demo.db (SQLite), run a month of billing, then billingd and the
#                            BRAS simulator live on loopback; stops by itself within N s (default 50)
#   make test                install the test extras, lint, and run pytest (SQLite, plus PostgreSQL
#                            when reachable; BILLING_TEST_PG=required makes it mandatory)
#   make bench               benchmarks on PostgreSQL: ledger, RADIUS vs FreeRADIUS, 1M snapshot,
#                            provisioning (figures, not tests; about 16 minutes)
#   make bench-charge        1M-subscription charge run on PostgreSQL (and SQLite, smaller): run,
#                            re-run, longest payment wait
#   make bench-payments      SOAP pay/s into billingd on PostgreSQL from concurrent clients, p50/p99,
#                            and latency at 200 pay/s, one API process then two (about 6 minutes)
#   make bench-import        a 1,000,000-line bank statement imported on PostgreSQL, then again (~5 min)
#   make bench-provisioning  CoA round trips/s vs radclient against the BRAS simulator, then 10,000 debt
#                            suspensions end to end through 1 and 2 outbox workers on PostgreSQL (~7 min)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 50
DEMO_CONFIG := conf/demo.toml

.PHONY: demo test lint bench bench-ledger bench-radius bench-snapshot bench-charge bench-payments bench-import bench-provisioning clean

$(STAMP): setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (spyne does not import on 3.12+); set PYTHON=")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(STAMP)
	@mkdir -p var
	@rm -rf var/demo.db var/demo.db-wal var/demo.db-shm var/nms
	$(BIN)/billing-admin --config $(DEMO_CONFIG) db upgrade
	$(BIN)/python -m billing.demo --config $(DEMO_CONFIG) --duration $(DURATION)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .

test: $(STAMP) lint
	$(BIN)/python -m pytest

bench: bench-ledger bench-radius bench-snapshot bench-provisioning

bench-ledger: $(STAMP)
	$(BIN)/python bench/ledger.py

bench-radius: $(STAMP)
	$(BIN)/python bench/radius.py

bench-snapshot: $(STAMP)
	$(BIN)/python bench/snapshot.py

bench-charge: $(STAMP)
	$(BIN)/python bench/charge_run.py

bench-payments: $(STAMP)
	$(BIN)/python bench/payments.py
	$(BIN)/python bench/payments.py --api-processes 2

bench-import: $(STAMP)
	$(BIN)/python bench/payment_import.py 1000000 1

bench-provisioning: $(STAMP)
	$(BIN)/python bench/provisioning.py

clean:
	rm -rf $(VENV) var *.egg-info
