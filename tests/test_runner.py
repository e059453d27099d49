"""Whole runs on real SQLite files: the JSON document, exit codes, history, isolation of failures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly_monitor.errors import RegistryError, UnknownCheckError
from anomaly_monitor.models import CheckResult, CheckType, RunReport, Status
from anomaly_monitor.runner import RunOptions, run
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.state.schema import COLUMNS
from anomaly_monitor.state.sqlite import SqliteStateStore
from tests.cloud_fixtures import ORDERS_SCRIPT as TABLES
from tests.cloud_fixtures import local_backends
from tests.servers import cli

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

SLOW_SQL = (
    "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 100000000) SELECT COUNT(*) AS c FROM n"
)


@pytest.fixture
def setup(tmp_path: Path, warehouse, registry):
    def make(rows, **settings):
        wh = warehouse(TABLES)
        checks = registry(rows)
        base = Settings(
            checks_source=str(checks), warehouse_url=f"sqlite:///{wh}", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        )
        return dataclasses.replace(base, **settings)

    return make


def history(settings: Settings) -> list[dict]:
    with sqlite3.connect(settings.state_url.removeprefix("sqlite:///")) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM check_results ORDER BY rowid")]


NEGATIVE = {"name": "negative_amounts", "sql": "SELECT id, amount FROM orders WHERE amount < 0"}
STUCK = {
    "name": "stuck_count",
    "type": "threshold",
    "max": "0",
    "sql": "SELECT COUNT(*) AS value FROM orders WHERE status = 'stuck'",
}
FINE = {"name": "no_huge_orders", "sql": "SELECT id FROM orders WHERE amount > 1000"}


def test_document_has_the_spec_fields_and_alerts_exit_1(setup):
    report = execute(setup([NEGATIVE, STUCK, FINE]), RunOptions(now=NOW))
    doc = report.to_json()
    assert set(doc) == {"run_id", "started_at", "finished_at", "summary", "checks"}
    assert doc["summary"] == {"ok": 1, "alert": 2, "error": 0, "invalid": 0, "skipped": 0}
    negative = doc["checks"][0]
    assert set(negative) == {
        "name", "type", "status", "value", "row_count", "rows", "expected", "message", "duration_ms",
        "bytes_processed", "notified",
    }  # fmt: skip
    assert (negative["status"], negative["row_count"], negative["rows"]) == ("alert", 1, [{"id": 2, "amount": -5.0}])
    assert doc["checks"][1]["expected"] == [None, 0.0]
    assert report.exit_code() == 1


def test_document_rows_hold_the_first_rows_of_every_check_type(setup):
    five = "SELECT id, amount AS value FROM orders ORDER BY id"
    series = (
        "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 30) "
        "SELECT DATE_ADD(DATE '2026-10-23', INTERVAL x DAY) AS ts, 100 AS value FROM n"
    )
    checks = [
        {"name": "one", "type": "threshold", "min": "0", "sql": "SELECT 7 AS value"},
        {"name": "several", "type": "threshold", "min": "0", "sql": five},
        {"name": "series", "type": "anomaly", "sql": series},
    ]
    doc = execute(setup(checks), RunOptions(now=NOW)).to_json()
    one, several, series_doc = doc["checks"]
    assert series_doc["status"] == "ok", series_doc["message"]
    assert (one["row_count"], one["rows"]) == (1, [{"value": 7}])
    assert several["status"] == "error" and several["row_count"] == len(several["rows"]) > 2
    assert (series_doc["row_count"], len(series_doc["rows"])) == (30, 20)
    assert series_doc["rows"][0] == {"ts": "2026-10-24", "value": 100}


def test_the_columns_value_and_ts_are_found_whatever_their_case_as_bigquery_names_are(setup):
    series = (
        "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 30) "
        "SELECT DATE_ADD(DATE '2026-10-23', INTERVAL x DAY) AS TS, 100 + x % 3 AS Value, x FROM n"
    )
    checks = [
        {"name": "mixed_case", "type": "threshold", "max": "0", "sql": "SELECT 5 AS Value, 3 AS other"},
        {"name": "mixed_series", "type": "anomaly", "sql": series},
    ]
    threshold, anomaly = execute(setup(checks), RunOptions(now=NOW)).results
    assert (threshold.status, threshold.value, threshold.message) == ("alert", 5.0, "5 is above the maximum 0")
    assert anomaly.status == "ok" and anomaly.value == 100 + 30 % 3, anomaly.message
    assert anomaly.rows[0] == {"TS": "2026-10-24", "Value": 101, "x": 1}  # the document keeps the query's names


def test_a_bool_column_is_no_metric_and_reads_true_or_false_on_sqlite_as_on_bigquery(setup):
    checks = [
        {"name": "count_and_flag", "type": "threshold", "max": "10", "sql":
            "SELECT COUNT(*) AS n, COUNT(*) > 100 AS too_many FROM orders"},
        {"name": "only_a_flag", "type": "threshold", "max": "0", "sql": "SELECT TRUE AS flag"},
        {"name": "flags", "sql": "SELECT id, amount < 0 AS negative, status IS NULL AS unknown, 2 AS two FROM orders"},
    ]  # fmt: skip
    doc = execute(setup(checks), RunOptions(now=NOW)).to_json()
    count, flag, flags = doc["checks"]
    assert (count["status"], count["value"], count["rows"]) == ("ok", 3.0, [{"n": 3, "too_many": False}])
    assert flag["status"] == "error" and "cannot tell which column is the metric" in flag["message"]
    assert flags["rows"][:2] == [
        {"id": 1, "negative": False, "unknown": False, "two": 2},
        {"id": 2, "negative": True, "unknown": False, "two": 2},
    ]


def test_expected_is_a_range_for_every_judged_threshold_and_anomaly_check(setup):
    stopped = (
        "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 30) "
        "SELECT DATE_ADD(DATE '2026-10-10', INTERVAL x DAY) AS ts, 100 AS value FROM n"
    )  # the feed stopped on 2026-11-09
    checks = [STUCK, {"name": "stopped", "type": "anomaly", "sql": stopped}, NEGATIVE]
    stuck, stopped_doc, rows = execute(setup(checks), RunOptions(now=NOW)).to_json()["checks"]
    assert stuck["expected"] == [None, 0.0]
    assert stopped_doc["status"] == "alert" and stopped_doc["message"].startswith("no data since 2026-11-09")
    assert stopped_doc["expected"] == [None, None]
    assert rows["expected"] is None


def test_a_rows_check_has_no_value_in_the_document(setup):
    doc = execute(setup([NEGATIVE, FINE]), RunOptions(now=NOW)).to_json()
    assert [(c["value"], c["row_count"]) for c in doc["checks"]] == [(None, 1), (None, 0)]


def test_a_result_naming_a_column_twice_is_an_error_as_on_bigquery_not_a_row_missing_a_column(setup):
    twice = {"name": "twice", "sql": "SELECT o.id, p.ID FROM orders o JOIN orders p ON p.id = o.id"}
    report = execute(setup([twice, NEGATIVE]), RunOptions(now=NOW))
    by_name = {r.name: r for r in report.results}
    assert by_name["twice"].status == "error" and by_name["negative_amounts"].status == "alert"
    assert "Duplicate column names in the result are not supported. Found duplicate(s): id" in by_name["twice"].message


def test_all_ok_exits_0_and_every_result_is_recorded(setup):
    settings = setup([FINE, dict(FINE, name="disabled_one", enabled="FALSE")])
    report = execute(settings, RunOptions(now=NOW))
    assert [r.status for r in report.results] == ["ok", "skipped"]
    assert report.exit_code() == 0
    rows = history(settings)
    assert list(rows[0]) == COLUMNS
    assert [(r["check_name"], r["status"]) for r in rows] == [("no_huge_orders", "ok")], "skipped is not recorded"


def test_a_broken_check_and_an_invalid_row_do_not_stop_the_others(setup):
    broken = {"name": "broken", "sql": "SELECT missing_column FROM orders"}
    invalid = {"name": "invalid", "sql": "SELECT 1", "type": "threshold"}
    report = execute(setup([broken, invalid, NEGATIVE]), RunOptions(now=NOW))
    by_name = {r.name: r for r in report.results}
    assert by_name["broken"].status == "error"
    assert "missing_column" in by_name["broken"].message
    assert by_name["invalid"].status == "invalid"
    assert by_name["negative_amounts"].status == "alert"
    assert report.exit_code() == 2


def test_a_slow_check_times_out_without_blocking_the_others(setup):
    slow = {"name": "slow", "sql": SLOW_SQL}
    report = execute(setup([slow, NEGATIVE], query_timeout_s=0.3, max_workers=2), RunOptions(now=NOW))
    by_name = {r.name: r for r in report.results}
    assert by_name["slow"].status == "error"
    assert "timed out after 0.3 s" in by_name["slow"].message
    assert by_name["negative_amounts"].status == "alert"


def test_dry_run_records_nothing(setup):
    settings = setup([NEGATIVE])
    report = execute(settings, RunOptions(dry_run=True, now=NOW))
    assert report.results[0].status == "alert"
    assert not report.results[0].notified
    assert history(settings) == []


def test_selection_by_name_and_tag(setup):
    tagged = dict(FINE, name="tagged", tags="hourly, finance")
    settings = setup([NEGATIVE, tagged])
    assert [r.name for r in execute(settings, RunOptions(tags=("hourly",), now=NOW)).results] == ["tagged"]
    assert [r.name for r in execute(settings, RunOptions(tags=(" Hourly",), now=NOW)).results] == ["tagged"]
    assert [r.name for r in execute(settings, RunOptions(checks=("negative_amounts",), now=NOW)).results] == [
        "negative_amounts"
    ]
    with pytest.raises(UnknownCheckError, match="no check named 'nope'"):
        execute(settings, RunOptions(checks=("nope",), now=NOW))


def test_unreadable_registry_fails_the_run(setup, tmp_path):
    settings = dataclasses.replace(setup([FINE]), checks_source=str(tmp_path / "missing.csv"))
    with pytest.raises(RegistryError):
        execute(settings, RunOptions(now=NOW))


def test_the_printed_document_is_the_document_written_one_check_at_a_time(setup):
    report = execute(setup([NEGATIVE, STUCK, FINE]), RunOptions(now=NOW))
    assert "".join(report.json_text()) == json.dumps(report.to_json(), indent=2)
    empty = dataclasses.replace(report, results=[])
    assert "".join(empty.json_text()) == json.dumps(empty.to_json(), indent=2)


@given(
    st.lists(
        st.builds(
            CheckResult,
            name=st.text(),
            type=st.sampled_from([*CheckType, None]),
            status=st.sampled_from(Status),
            message=st.text(),
            value=st.none() | st.floats(),
            rows=st.lists(st.dictionaries(st.text(), st.none() | st.integers() | st.text() | st.lists(st.text()))),
        ),
        max_size=4,
    )
)
def test_any_document_is_printed_as_json_dumps_writes_it(results: list[CheckResult]) -> None:
    report = RunReport("run1", NOW, NOW, results)
    assert "".join(report.json_text()) == json.dumps(report.to_json(), indent=2)


def cli_args(settings: Settings) -> list[str]:
    return ["--checks", settings.checks_source, "--warehouse", settings.warehouse_url, "--state", settings.state_url]


@pytest.mark.parametrize(("rows", "code"), [([FINE], 0), ([FINE, NEGATIVE], 1), ([FINE, {"name": "x", "sql": ""}], 2)])
def test_cli_exit_codes_and_json_on_stdout(setup, rows, code):
    done = cli("run", "--json", "--now", "2026-11-23T09:00:00Z", *cli_args(setup(rows)))
    assert done.returncode == code, done.stderr
    doc = json.loads(done.stdout)
    assert len(doc["checks"]) == len(rows)
    assert doc["started_at"].startswith("2026-11-23T09:00:00")


def test_cli_bad_option_and_unreachable_registry_exit_3(setup, tmp_path):
    assert cli("run", "--no-such-option").returncode == 3
    assert cli("run", "--now", "yesterday").returncode == 3
    done = cli("run", "--checks", str(tmp_path / "missing.csv"), "--warehouse", setup([FINE]).warehouse_url)
    assert done.returncode == 3
    assert "does not exist" in done.stderr


def test_cli_text_output_shows_summary_and_alert(setup):
    done = cli("run", *cli_args(setup([NEGATIVE, FINE])))
    assert done.returncode == 1
    assert "negative_amounts" in done.stdout and "ALERT" in done.stdout
    assert "amount" in done.stdout and "-5" in done.stdout


def test_cli_text_output_says_when_no_check_was_selected(setup):
    tagged = dict(FINE, tags="daily")
    done = cli("run", "--check", "negative_amounts", "--tag", "daily", *cli_args(setup([NEGATIVE, tagged])))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("run ") and done.stdout.rstrip().endswith(": no checks")


def test_validate_lists_each_check_and_exits_1_on_invalid(setup):
    settings = setup([FINE, {"name": "Bad", "sql": "SELECT 1"}])
    done = cli("validate", "--json", "--checks", settings.checks_source, "--warehouse", settings.warehouse_url)
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert [(c["name"], c["valid"]) for c in doc["checks"]] == [("no_huge_orders", True), ("Bad", False)]
    assert set(doc["checks"][0]) == {"name", "valid", "message", "bytes"}


def test_validate_names_the_row_the_check_and_the_sql_column_of_a_query_that_cannot_be_prepared(setup):
    settings = setup([FINE, {"name": "refunds_now", "sql": "SELECT id FROM refunds"}])
    done = cli("validate", "--json", "--checks", settings.checks_source, "--warehouse", settings.warehouse_url)
    assert done.returncode == 1
    [_, doc] = json.loads(done.stdout)["checks"]
    assert doc["valid"] is False
    assert doc["message"].startswith('checks row 3 (name "refunds_now"): column "sql": ')
    assert "no such table: refunds" in doc["message"]


def test_validate_of_a_registry_without_checks_says_so_and_exits_0(setup):
    settings = setup([FINE])
    Path(settings.checks_source).write_text("name,sql\n")
    done = cli("validate", "--checks", settings.checks_source, "--warehouse", settings.warehouse_url)
    assert (done.returncode, done.stdout) == (0, f"no checks in {settings.checks_source}\n")


def test_validate_reports_a_disabled_check_whose_query_fails_without_failing(setup):
    waiting = {"name": "refunds_later", "enabled": "FALSE", "sql": "SELECT id FROM refunds"}
    settings = setup([FINE, waiting])
    done = cli("validate", "--json", "--checks", settings.checks_source, "--warehouse", settings.warehouse_url)
    assert done.returncode == 0, done.stdout
    [_, doc] = json.loads(done.stdout)["checks"]
    assert doc["valid"] is True
    assert doc["message"].startswith("disabled; its query would fail:") and "refunds" in doc["message"]


def test_rows_check_keeps_20_rows_for_alerts_and_more_for_its_export_sheet(setup):
    many = "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 30) SELECT x FROM n"
    report = execute(setup([{"name": "many", "sql": many, "export_sheet": "late orders"}]), RunOptions(now=NOW))
    [result] = report.results
    assert (result.row_count, len(result.rows), len(result.export_rows)) == (30, 20, 30)
    assert len(report.to_json()["checks"][0]["rows"]) == 20


def test_overlapping_runs_take_turns_and_a_check_runs_once_per_tick(setup):
    slowish = (
        "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 300000) SELECT x FROM n LIMIT 1"
    )
    settings = setup([{"name": "hourly", "sql": slowish, "schedule": "0 * * * *"}])
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda _: execute(settings, RunOptions(now=NOW)), range(2)))
    statuses = sorted(str(r.results[0].status) for r in reports)
    assert statuses == ["alert", "skipped"], [r.results[0].message for r in reports]
    assert [row["check_name"] for row in history(settings)] == ["hourly"]


def test_a_run_that_waited_for_the_lock_judges_with_the_time_it_got_it(setup):
    """The run's instant is taken once the run lock is held, and is what CURRENT_TIMESTAMP() means in its SQL."""
    settings = setup([{"name": "clock", "sql": "SELECT CURRENT_TIMESTAMP() AS at"}])
    with ThreadPoolExecutor(max_workers=1) as pool:
        with SqliteStateStore.from_url(settings.state_url).run_lock("another run"):
            waiting = pool.submit(execute, settings, RunOptions())
            time.sleep(0.5)  # lets the run reach the lock; were it slower, what follows would still hold
            released = dt.datetime.now(dt.UTC)
        report = waiting.result()
    [result] = report.results
    assert report.started_at >= released
    seen = dt.datetime.fromisoformat(result.rows[0]["at"]).replace(tzinfo=dt.UTC)
    assert seen == report.started_at.replace(microsecond=report.started_at.microsecond // 1000 * 1000)


def test_an_invalid_row_reports_the_type_it_declares_or_none(setup):
    rows = [
        {"name": "no_bounds", "sql": "SELECT 1 AS value", "type": "threshold"},  # threshold without min or max
        {"name": "bad_type", "sql": "SELECT 1", "type": "sometimes"},
        {"name": "no_sql", "sql": "", "type": ""},  # blank type: rows, the default
    ]
    doc = execute(setup(rows), RunOptions(now=NOW)).to_json()
    types = {c["name"]: (c["status"], c["type"]) for c in doc["checks"]}
    assert types == {
        "no_bounds": ("invalid", "threshold"),
        "bad_type": ("invalid", None),
        "no_sql": ("invalid", "rows"),
    }
    assert json.loads(json.dumps(doc))["checks"][1]["type"] is None


def test_statuses_go_to_the_publisher_after_a_real_run_only(tmp_path):
    class Sheet:  # the outside world a status publisher writes to
        def __init__(self) -> None:
            self.reports: list = []

        def publish(self, report) -> None:
            self.reports.append(report)

    sheet = Sheet()
    backends = dataclasses.replace(local_backends(tmp_path, "unsettled,rows,SELECT 1 AS x,,,,,\n"), publisher=sheet)
    run(backends, RunOptions(now=NOW, dry_run=True))
    assert sheet.reports == []
    report = run(backends, RunOptions(now=NOW))
    assert sheet.reports == [report]
