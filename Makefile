# The README's two commands: `make run` (service + demo data on embedded defaults) and
# `make test` (the whole suite on real Postgres, Redis and embedded chDB).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
DEMO_ROWS ?= 200000
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run serve test lint bench load services

$(BIN)/.installed: requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py migrate --database clickhouse --noinput
	$(BIN)/python manage.py generate_traffic --rows $(DEMO_ROWS) --days 7 --projects 3 --seed 42 --if-empty
	@echo "BudMetrics on http://$(HOST):$(PORT)/  docs: /api/docs/  redoc: /api/redoc/  admin: /admin/  ready: /readyz"
	@echo "A demo staff login and API key for the demo projects (printed once): $(BIN)/python manage.py demo_access"
	@echo "Or an admin login: $(BIN)/python manage.py createsuperuser"
	INPROCESS_JOBS=true $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

# Production server (README "Serving"): gunicorn, workers and threads chosen by
# budmetrics_site/gunicorn_conf.py from CLICKHOUSE_HOST (server: several processes;
# embedded chDB: one process with threads). No demo data: it serves what is there.
serve: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py migrate --database clickhouse --noinput
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c budmetrics_site/gunicorn_conf.py

# Load test (bench/README.md "Load test"): make serve on loopback with LOAD_ROWS rows,
# locust headless through three phases (cache on, cache off, Redis stopped halfway).
LOAD_ROWS ?= 10000000
load: install
	$(BIN)/python bench/load/run.py --rows $(LOAD_ROWS) $(LOAD_ARGS)

services:
	bash .ci/services

test: install services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)
