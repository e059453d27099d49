# Every target sets itself up: a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := functions

.DEFAULT_GOAL := help
.PHONY: help install run serve test test-system lint lint-infra bench bench-anomaly init-db plan deploy

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(STAMP): functions/requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(STAMP) ## create .venv and install pinned dependencies

data/warehouse.db: init_db.py $(filter-out data/checks.csv,$(wildcard data/*.csv)) | $(STAMP)
	$(PY) init_db.py

init-db: $(STAMP) ## (re)build data/warehouse.db from data/*.csv
	$(PY) init_db.py --force

run: $(STAMP) ## run every demo check once against the local warehouse (rebuilt when over an hour old)
	@$(PY) init_db.py --max-age-hours 1
	@$(PY) -m anomaly_monitor run --force; status=$$?; [ $$status -le 2 ] || exit $$status

serve: $(STAMP) data/warehouse.db ## serve the function locally on :8080 (curl -X POST localhost:8080 -d '{}')
	$(VENV)/bin/functions-framework --target run_checks --source functions/main.py --host 127.0.0.1 --port 8080

test: $(STAMP) ## run the whole test suite (first run also builds .venv-bqemu for the BigQuery emulator)
	$(PY) -m pytest -q

test-system: $(STAMP) ## call the deployed function (SYSTEM_FUNCTION_URL, SYSTEM_ID_TOKEN): dry runs only
	$(PY) -m pytest -q -m system tests/test_system.py -rs

lint: $(STAMP) ## ruff (lint and format), mypy, and the offline Terraform checks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	scripts/lint_infra.sh

bench: $(STAMP) ## speed and scale benchmarks, each figure a ratio or per-check cost measured in the same run, beside its target
	$(PY) benchmarks/bench_run.py
	$(PY) benchmarks/bench_dialect.py
	PYTHONPATH=functions:. $(PY) benchmarks/state_scan.py --emulator
	$(PY) benchmarks/bench_backtest.py
	$(PY) benchmarks/bench_pacing.py
	$(PY) benchmarks/bench_parallel.py
	$(PY) benchmarks/bench_scale.py

bench-anomaly: $(STAMP) ## score the anomaly check on ../shared/anomaly-bench beside published detectors
	$(PY) ../shared/anomaly-bench/run_bench.py --product

# --- Infrastructure (infra/) -------------------------------------------------
# plan/deploy need Terraform >= 1.5 and `gcloud auth application-default login`.
TERRAFORM ?= terraform

infra/terraform.tfvars:
	@echo "Copy infra/terraform.tfvars.example to infra/terraform.tfvars and fill it in first." >&2; exit 1

plan: infra/terraform.tfvars ## terraform init + plan of infra/ (shows what deploy would change)
	$(TERRAFORM) -chdir=infra init -input=false
	$(TERRAFORM) -chdir=infra plan

deploy: infra/terraform.tfvars ## terraform init + apply of infra/ (asks before changing anything)
	$(TERRAFORM) -chdir=infra init -input=false
	$(TERRAFORM) -chdir=infra apply

lint-infra: ## offline checks of infra/: schema (tfcheck), checkov, terraform fmt
	scripts/lint_infra.sh
