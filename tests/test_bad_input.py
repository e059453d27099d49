"""The issue's named cases of broken input, through the CLI: the run ends with its JSON and the SPEC's exit code."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.cloud_fixtures import ORDERS_SCRIPT as TABLES
from tests.local_files import REPO
from tests.servers import cli

GOOD = "fine,SELECT 1 AS x WHERE 1 = 0\n"


@pytest.fixture
def warehouse_file(warehouse) -> Path:
    return warehouse(TABLES)


def run(tmp_path: Path, registry: str | bytes, *extra: str, command: str = "run") -> tuple[int, dict, str]:
    checks = tmp_path / "checks.csv"
    checks.write_bytes(registry.encode() if isinstance(registry, str) else registry)
    args = ["--json", "--checks", str(checks), "--warehouse", f"sqlite:///{tmp_path / 'warehouse.db'}"]
    if command == "run" and "--state" not in extra:
        args += ["--state", f"sqlite:///{tmp_path / 'state.db'}"]
    done = cli(command, *args, *extra)
    return done.returncode, json.loads(done.stdout) if done.stdout else {}, done.stderr


def messages(doc: dict) -> dict[str, str]:
    return {c["name"]: c["message"] for c in doc["checks"]}


def test_a_header_naming_sql_twice_fails_the_run_with_exit_3_naming_it(tmp_path, warehouse_file):
    code, doc, stderr = run(tmp_path, "name,sql,sql\nx,SELECT 1,SELECT 2\n")
    assert code == 3 and doc == {}
    assert 'names column "sql" 2 times (columns B, C)' in stderr


def test_checks_swallowed_by_a_stray_quote_show_up_in_the_run(tmp_path, warehouse_file):
    code, doc, _ = run(tmp_path, 'name,sql\nbroken,"SELECT 1\n' + GOOD + "also_fine,SELECT 2 AS y WHERE 1 = 0\n")
    assert code == 2
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses == {"broken": "invalid", "fine": "ok", "also_fine": "ok"}
    assert 'column "sql" has a stray quote' in messages(doc)["broken"]


def test_one_oversized_cell_does_not_make_the_registry_unreadable(tmp_path, warehouse_file):
    code, doc, _ = run(tmp_path, f"name,sql,description\nhuge,SELECT 1,{'d' * 131_073}\n{GOOD}")
    assert code == 2
    assert {c["name"]: c["status"] for c in doc["checks"]} == {"huge": "invalid", "fine": "ok"}
    assert 'column "description" holds 131,073 characters' in messages(doc)["huge"]


BAD_NUMBERS = (
    "name,type,sql,min,max,max_gb_billed\n"
    "arabic,threshold,SELECT 1 AS value,,٣,\n"
    "wide,threshold,SELECT 1 AS value,１２,,\n"
    "underscore,threshold,SELECT 1 AS value,1_000,,\n"
    "huge_cap,rows,SELECT 1 AS x,,,1e300\n"
    "fine,rows,SELECT 1 AS x WHERE 1 = 0,,,\n"
)


def test_validate_refuses_the_numbers_run_refuses_with_the_same_message(tmp_path, warehouse_file):
    run_code, run_doc, _ = run(tmp_path, BAD_NUMBERS)
    validate_code, validate_doc, _ = run(tmp_path, BAD_NUMBERS, command="validate")
    assert (run_code, validate_code) == (2, 1)
    invalid = {name: message for name, message in messages(run_doc).items() if name != "fine"}
    assert invalid == {c["name"]: c["message"] for c in validate_doc["checks"] if not c["valid"]}
    assert 'column "max" is not a number: "٣"' in invalid["arabic"]
    assert 'column "min" is not a number: "１２"' in invalid["wide"]
    assert 'column "min" is not a number: "1_000"' in invalid["underscore"]
    assert 'column "max_gb_billed" must be greater than 0 and at most 100,000: "1e300"' in invalid["huge_cap"]


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *"])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_cron_that_never_fires_is_invalid_naming_schedule(tmp_path, warehouse_file, schedule, command):
    code, doc, _ = run(tmp_path, f"name,sql,schedule\nrare,SELECT 1,{schedule}\n{GOOD}", command=command)
    assert code == (2 if command == "run" else 1)
    assert 'column "schedule" never fires' in messages(doc)["rare"]


def test_export_sheet_naming_the_registry_is_invalid_in_run_and_validate(tmp_path, warehouse_file):
    registry = f"name,sql,export_sheet\nexporter,SELECT 1,checks\n{GOOD}"
    for command in ("run", "validate"):
        _, doc, _ = run(tmp_path, registry, command=command)
        assert 'column "export_sheet" names the "checks" worksheet' in messages(doc)["exporter"]


def same_file_spellings(tmp_path: Path) -> list[str]:
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "warehouse.db", tmp_path / "link.db")
    relative = os.path.relpath(tmp_path / "sub" / ".." / "warehouse.db", REPO)  # the CLI runs in REPO
    return [f"sqlite:///{tmp_path / 'warehouse.db'}", f"sqlite:///{relative}", f"sqlite:///{tmp_path / 'link.db'}"]


def test_the_state_store_may_not_be_the_warehouse_however_it_is_spelled(tmp_path, warehouse_file):
    for state in same_file_spellings(tmp_path):
        code, doc, stderr = run(tmp_path, "name,sql\n" + GOOD, "--state", state)
        assert code == 3 and doc == {}, state
        assert "is the warehouse file" in stderr
    with sqlite3.connect(warehouse_file) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "check_results" not in tables


ANOMALY = (
    "name,type,sql\n"
    'daily,anomaly,"SELECT DATE(TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL id DAY)) AS ts, amount AS value '
    'FROM orders"\n'
)
BROKEN_EXCLUSIONS = (
    b"check,from,to,reason\n"
    b"*,2026-12-25,9999-12-31,to the end of time\n"
    b"*,0001-01-01T00:00:00+05:00,2026-01-01,before the epoch east of UTC\n"
    b"daily,2026-12-25,2026-12-26,caf\xe9\n"
    b'daily,"2026-12-25,2026-12-26,a stray quote\n'
    b"*,2026-12-24,2026-12-24,fine\n"
)


def test_broken_exclusion_rows_are_invalid_rows_and_the_run_finishes(tmp_path, warehouse_file):
    (tmp_path / "exclusions.csv").write_bytes(BROKEN_EXCLUSIONS)
    code, doc, _ = run(tmp_path, ANOMALY, "--force")
    assert code == 2
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses["daily"] in ("ok", "alert")  # judged, whatever the exclusions hold
    found = messages(doc)
    assert found["_exclusions_row_2"] == 'exclusions row 2: column "to" is not between 1970 and 2999: "9999-12-31"'
    assert 'column "from" is not between 1970 and 2999' in found["_exclusions_row_3"]
    assert 'column "reason" is not UTF-8 text' in found["_exclusions_row_4"]
    assert 'column "from" has a stray quote' in found["_exclusions_row_5"]
    assert "_exclusions_row_6" not in found  # the row after the stray quote is read as the row it is


def test_validate_reports_the_broken_exclusion_rows_a_run_reports(tmp_path, warehouse_file):
    (tmp_path / "exclusions.csv").write_bytes(BROKEN_EXCLUSIONS)
    code, doc, _ = run(tmp_path, ANOMALY, command="validate")
    assert code == 1
    refused = {c["name"]: c["message"] for c in doc["checks"] if not c["valid"]}
    assert sorted(refused) == ["_exclusions_row_2", "_exclusions_row_3", "_exclusions_row_4", "_exclusions_row_5"]
    assert 'column "from" has a stray quote' in refused["_exclusions_row_5"]
