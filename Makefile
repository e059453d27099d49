# Every target sets itself up: a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := functions

.DEFAULT_GOAL := help
.PHONY: help install run serve test lint bench init-db plan deploy

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(STAMP): functions/requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(STAMP) ## create .venv and install pinned dependencies

data/warehouse.db: init_db.py $(wildcard data/*.csv) | $(STAMP)
	$(PY) init_db.py

init-db: $(STAMP) ## (re)build data/warehouse.db from data/*.csv
	$(PY) init_db.py --force

run: $(STAMP) data/warehouse.db ## run every demo check once against the local warehouse
	$(PY) -m anomaly_monitor run --force; status=$$?; [ $$status -le 2 ] || exit $$status

serve: $(STAMP) data/warehouse.db ## serve the function locally on :8080 (curl -X POST localhost:8080 -d '{}')
	$(VENV)/bin/functions-framework --target run_checks --source functions/main.py --host 127.0.0.1 --port 8080

test: $(STAMP) ## run the whole test suite (first run also builds .venv-bqemu for the BigQuery emulator)
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
