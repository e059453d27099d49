"""On BigQuery, CURRENT_TIMESTAMP() and its kin become literals of the run's instant; nothing else changes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_monitor.errors import QueryError
from anomaly_monitor.readonly import read_only_error, take_parsed
from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse
from anomaly_monitor.warehouses.clock import pin_now

NOW = dt.datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=dt.UTC)
STAMP = "TIMESTAMP '2026-03-29 00:30:15.123456+00:00'"

CASES = [
    ("SELECT CURRENT_TIMESTAMP()", f"SELECT {STAMP}"),
    ("SELECT current_timestamp AS t", f"SELECT {STAMP} AS t"),
    ("SELECT CURRENT_DATE()", "SELECT DATE '2026-03-29'"),
    ("SELECT CURRENT_DATE", "SELECT DATE '2026-03-29'"),
    ("SELECT CURRENT_DATE('America/Los_Angeles')", "SELECT DATE '2026-03-28'"),
    ("SELECT CURRENT_DATETIME()", "SELECT DATETIME '2026-03-29 00:30:15.123456'"),
    ("SELECT CURRENT_DATETIME('Europe/Berlin')", "SELECT DATETIME '2026-03-29 01:30:15.123456'"),
    ('SELECT CURRENT_DATETIME("Asia/Kolkata")', "SELECT DATETIME '2026-03-29 06:00:15.123456'"),
    ("SELECT CURRENT_TIME()", "SELECT TIME '00:30:15.123456'"),
    ("SELECT CURRENT_TIME('+05:30')", "SELECT TIME '06:00:15.123456'"),
    ("SELECT CURRENT_DATE(zone) FROM t", f"SELECT DATE({STAMP}, zone) FROM t"),
    (
        "SELECT * FROM t WHERE ts > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY) -- CURRENT_DATE()",
        f"SELECT * FROM t WHERE ts > TIMESTAMP_SUB({STAMP}, INTERVAL 1 DAY) -- CURRENT_DATE()",
    ),
    ("SELECT 'CURRENT_DATE()', `current_date`, t.current_date FROM t", None),
    ("SELECT  x ,\n  y  FROM   `p.d.t`  WHERE r'\\d' IS NOT NULL", None),
]


@pytest.mark.parametrize(("sql", "pinned"), CASES, ids=[c[0] for c in CASES])
def test_current_calls_become_literals_of_the_instant_and_the_rest_is_untouched(sql: str, pinned: str | None):
    assert pin_now(sql, NOW) == (pinned or sql)


def test_an_unknown_time_zone_is_a_query_error_naming_it() -> None:
    with pytest.raises(QueryError, match="unknown time zone 'Mars/Olympus' in CURRENT_DATE"):
        pin_now("SELECT CURRENT_DATE('Mars/Olympus')", NOW)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(["CURRENT_TIMESTAMP()", "CURRENT_DATE", "CURRENT_TIME('UTC')", "x", "1", "'CURRENT_DATE'"]),
        min_size=1,
        max_size=6,
    ),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2999, 12, 31), timezones=st.just(dt.UTC)),
)
def test_pinned_sql_is_still_one_select_without_current_calls(items: list[str], now: dt.datetime) -> None:
    pinned = pin_now(f"SELECT {', '.join(items)} FROM t", now)
    assert read_only_error(pinned) is None
    assert "CURRENT_TIMESTAMP()" not in pinned and "CURRENT_TIME(" not in pinned
    assert pinned.count("'CURRENT_DATE'") == items.count("'CURRENT_DATE'")


def test_the_dry_run_job_carries_the_pinned_sql() -> None:
    endpoint, project = "http://bigquery.invalid", "p"
    job = {
        "jobReference": {"projectId": project, "jobId": "dry", "location": "EU"},
        "status": {"state": "DONE"},
        "statistics": {"query": {"totalBytesProcessed": "2048"}},
        "configuration": {"dryRun": True, "query": {"query": "SELECT 1"}},
    }
    with responses.RequestsMock() as api:
        api.post(f"{endpoint}/bigquery/v2/projects/{project}/jobs", json=job)
        warehouse = BigQueryWarehouse(project, "d", endpoint)
        assert warehouse.dry_run("SELECT COUNT(*) FROM t WHERE d = CURRENT_DATE()", check_name="c", now=NOW) == 2048
        sent = json.loads(api.calls[0].request.body)["configuration"]
    assert sent["dryRun"] is True
    assert sent["query"]["query"] == "SELECT COUNT(*) FROM t WHERE d = DATE '2026-03-29'"


def test_the_registry_parse_is_taken_and_sql_without_current_calls_is_not_tokenized_again() -> None:
    plain, timed = "SELECT id FROM t WHERE id > 1", "SELECT id FROM t WHERE d = CURRENT_DATE()"
    assert read_only_error(plain) is None and read_only_error(timed) is None
    assert pin_now(plain, NOW) == plain
    assert pin_now(timed, NOW) == "SELECT id FROM t WHERE d = DATE '2026-03-29'"
    assert take_parsed(plain) is None and take_parsed(timed) is None  # each tree was taken by its query
