"""The BigQuery warehouse: the real google-cloud-bigquery client against a local BigQuery emulator."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import responses
from google.api_core import exceptions as api

from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.errors import QueryError
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses import open_warehouse
from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse, json_safe, label_value
from tests import bq_emulator
from tests.recording_proxy import recording

NOW = dt.datetime(2026, 1, 6, 9, 0, tzinfo=dt.UTC)  # what CURRENT_TIMESTAMP() and its kin are pinned to

bigquery_emulator = bq_emulator.bigquery_emulator
GB = 1024**3


@pytest.fixture(scope="module")
def shop(bigquery_emulator: bq_emulator.Emulator) -> BigQueryWarehouse:
    """A dataset with five orders, three of them unsettled."""
    dataset = f"shop_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.create_dataset(dataset)
    client.query(
        f"CREATE TABLE {dataset}.orders (id INT64, amount NUMERIC, authorised_at TIMESTAMP, day DATE, settled BOOL)"
    ).result()
    client.query(
        f"INSERT INTO {dataset}.orders VALUES "
        "(1, 10.5, TIMESTAMP '2026-01-01 10:00:00', DATE '2026-01-01', FALSE),"
        "(2, 20, TIMESTAMP '2026-01-02 10:00:00', DATE '2026-01-02', TRUE),"
        "(3, 30.25, TIMESTAMP '2026-01-03 10:00:00', DATE '2026-01-03', FALSE),"
        "(4, 40, TIMESTAMP '2026-01-04 10:00:00', DATE '2026-01-04', TRUE),"
        "(5, 50, TIMESTAMP '2026-01-05 10:00:00', DATE '2026-01-05', FALSE)"
    ).result()
    settings = Settings(bigquery_api_endpoint=bigquery_emulator.endpoint)
    warehouse = open_warehouse(f"bigquery://{bigquery_emulator.project}/{dataset}", settings)
    assert isinstance(warehouse, BigQueryWarehouse)
    return warehouse


def run(warehouse: BigQueryWarehouse, sql: str, limit: int | None = 20, check_name: str = "late_settle"):
    return warehouse.query(sql, check_name=check_name, limit=limit, timeout_s=30, max_bytes=10 * GB, now=NOW)


def test_unqualified_tables_resolve_in_the_configured_dataset(shop: BigQueryWarehouse) -> None:
    result = run(shop, "SELECT id FROM orders WHERE NOT settled ORDER BY id")
    assert result.columns == ["id"]
    assert result.rows == [{"id": 1}, {"id": 3}, {"id": 5}]
    assert result.row_count == 3


def test_only_the_first_rows_are_kept_but_all_are_counted(shop: BigQueryWarehouse) -> None:
    result = run(shop, "SELECT id FROM orders ORDER BY id", limit=2)
    assert result.rows == [{"id": 1}, {"id": 2}]
    assert result.row_count == 5


def test_a_series_fetches_every_row(shop: BigQueryWarehouse) -> None:
    result = run(shop, "SELECT authorised_at AS ts, amount AS value FROM orders ORDER BY ts", limit=None)
    assert len(result.rows) == result.row_count == 5
    # values stay numbers, times become ISO-8601 text that judge.parse_ts reads
    assert result.rows[0] == {"ts": "2026-01-01T10:00:00+00:00", "value": 10.5}
    assert result.rows[1]["value"] == 20


def test_rows_are_json_safe(shop: BigQueryWarehouse) -> None:
    result = run(shop, "SELECT id, amount, authorised_at, day, settled FROM orders WHERE id = 3")
    assert result.rows == [
        {"id": 3, "amount": 30.25, "authorised_at": "2026-01-03T10:00:00+00:00", "day": "2026-01-03", "settled": False}
    ]


def test_bytes_processed_is_recorded(shop: BigQueryWarehouse) -> None:
    # Real BigQuery reports the bytes scanned; the emulator always reports 0.
    result = run(shop, "SELECT * FROM orders")
    assert isinstance(result.bytes_processed, int)


def test_jobs_carry_labels_a_byte_cap_and_the_default_dataset(
    shop: BigQueryWarehouse, bigquery_emulator: bq_emulator.Emulator
) -> None:
    """Asserted on the job requests as they went over the wire to the emulator (which does not keep labels)."""
    sent: list[dict] = []

    def record(response, *args, **kwargs):
        if response.request.method == "POST" and urlsplit(response.request.url).path.endswith("/jobs"):
            sent.append(json.loads(response.request.body))

    session = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)._http
    session.hooks["response"].append(record)
    try:
        shop.query("SELECT 1 AS one", check_name="Late Settle/EU", limit=20, timeout_s=30, max_bytes=3 * GB, now=NOW)
    finally:
        session.hooks["response"].remove(record)
    (job,) = sent
    assert job["configuration"]["labels"] == {"app": "anomaly-monitor", "check": "late_settle_eu"}
    assert job["configuration"]["query"]["maximumBytesBilled"] == str(3 * GB)
    assert job["configuration"]["query"]["defaultDataset"] == {"projectId": "test-project", "datasetId": shop.dataset}
    assert job["configuration"]["query"]["useLegacySql"] is False


def test_checks_waiting_at_once_each_keep_their_connection(
    shop: BigQueryWarehouse, bigquery_emulator: bq_emulator.Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """More checks wait at once than requests' 10 pooled connections: none is dropped after its request (each
    request is held at a proxy, so they all overlap)."""
    waiting = 24
    with recording(bigquery_emulator.endpoint, delay_s=0.3) as proxy, caplog.at_level(logging.WARNING):
        warehouse = BigQueryWarehouse(bigquery_emulator.project, shop.dataset, proxy.url)
        with ThreadPoolExecutor(max_workers=waiting) as pool:
            counts = list(pool.map(lambda n: run(warehouse, f"SELECT {n} AS n FROM orders").row_count, range(waiting)))
    assert counts == [5] * waiting
    assert proxy.count("POST", "/bigquery/v2/projects/test-project/jobs") == waiting
    assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_missing_table_is_an_error_naming_the_dataset(shop: BigQueryWarehouse) -> None:
    with pytest.raises(QueryError, match=r"not found: .*nope.*unqualified tables are looked up in test-project\.shop_"):
        run(shop, "SELECT * FROM nope")


def test_a_syntax_error_is_reported_as_rejected_sql(shop: BigQueryWarehouse) -> None:
    with pytest.raises(QueryError, match="BigQuery rejected the SQL: Syntax error"):
        run(shop, "SELEC 1")


def test_dry_run_validates_without_running(shop: BigQueryWarehouse) -> None:
    assert isinstance(shop.dry_run("SELECT * FROM orders", check_name="late_settle", now=NOW), int)
    with pytest.raises(QueryError, match="not found"):
        shop.dry_run("SELECT * FROM nope", check_name="late_settle", now=NOW)


# BigQuery's own error answers, as the client raises them (the emulator neither caps bytes nor checks IAM).
@pytest.mark.parametrize(
    ("status", "reason", "message", "expected"),
    [
        (
            400,
            "bytesBilledLimitExceeded",
            "Query exceeded limit for bytes billed: 10737418240. 21474836480 or higher required.",
            "would scan more than max_gb_billed=10 GB: raise the column max_gb_billed or filter on the partition col",
        ),
        (
            403,
            "accessDenied",
            "Access Denied: Table p:d.t: User does not have permission to query table p:d.t.",
            "permission denied: Access Denied: .*grant the function's service account BigQuery Data Viewer",
        ),
        (404, "notFound", "Not found: Table p:d.t was not found in location EU", "not found: Not found: Table p:d.t"),
        (400, "invalidQuery", "Unrecognized name: amonut at [1:8]", "BigQuery rejected the SQL: Unrecognized name"),
        (500, "backendError", "Backend error", "BigQuery error 500 backendError: Backend error"),
    ],
)
def test_bigquery_errors_become_messages_a_user_can_act_on(status, reason, message, expected) -> None:
    error = api.from_http_status(status, message, errors=[{"reason": reason, "message": message}])
    warehouse = BigQueryWarehouse("p", "d")
    assert re.search(expected, str(warehouse._query_error(error, 10 * GB)))


@pytest.mark.parametrize(
    ("status", "reason", "message", "cause"),
    [
        (
            403,
            "accessDenied",
            "Access Denied: Table sales:eu.orders: User does not have permission",
            "permission:sales.eu",
        ),
        (
            403,
            "accessDenied",
            "Access Denied: Dataset sales:eu: Permission bigquery.tables.get denied",
            "permission:sales.eu",
        ),
        (403, "quotaExceeded", "Quota exceeded: Your project exceeded quota for free query bytes scanned", "quota"),
        (403, "rateLimitExceeded", "Exceeded rate limits: too many concurrent queries", "quota"),
        (401, "unauthorized", "Request had invalid authentication credentials", "authentication"),
        (500, "backendError", "Backend error", "warehouse"),
        (400, "invalidQuery", "Unrecognized name: amonut at [1:8]", None),
        (404, "notFound", "Not found: Table p:d.t was not found in location EU", None),
    ],
)
def test_failures_outside_the_checks_sql_name_their_shared_cause(status, reason, message, cause) -> None:
    error = api.from_http_status(status, message, errors=[{"reason": reason, "message": message}])
    assert BigQueryWarehouse("p", "d")._query_error(error, 10 * GB).cause == cause


def test_an_unreachable_bigquery_is_a_shared_cause() -> None:
    assert BigQueryWarehouse("p", "d")._query_error(ConnectionRefusedError("refused"), None).cause == "warehouse"


def test_label_values_follow_bigquery_label_rules() -> None:
    assert label_value("Orders/Late Settle") == "orders_late_settle"
    assert len(label_value("x" * 80)) == 63


def test_json_safe_keeps_numbers_and_stringifies_times() -> None:
    import datetime as dt
    import decimal

    assert json_safe(decimal.Decimal("2.50")) == 2.5
    assert json_safe(decimal.Decimal("3")) == 3
    assert json_safe(dt.date(2026, 1, 2)) == "2026-01-02"
    assert json_safe({"a": [b"\x00"]}) == {"a": ["AA=="]}


def test_a_query_past_its_timeout_is_cancelled() -> None:
    """BigQuery's REST answers for a job that keeps running (the emulator finishes every job inside jobs.insert)."""
    endpoint, project = "http://bigquery.test", "slow-project"
    job = {"jobReference": {"projectId": project, "jobId": "job1", "location": "EU"}, "status": {"state": "RUNNING"}}
    job["configuration"] = {"query": {"query": "SELECT 1"}}
    base = f"{endpoint}/bigquery/v2/projects/{project}"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.post(f"{base}/jobs", json=job)
        api.get(f"{base}/queries/job1", json={"jobReference": job["jobReference"], "jobComplete": False})
        api.get(f"{base}/jobs/job1", json=job)
        api.post(f"{base}/jobs/job1/cancel", json={"job": {**job, "status": {"state": "DONE"}}})
        warehouse = BigQueryWarehouse(project, "d", endpoint)
        with pytest.raises(QueryError, match=r"timed out after 0\.5 s \(QUERY_TIMEOUT_S\) and was cancelled"):
            warehouse.query("SELECT 1", check_name="slow", limit=20, timeout_s=0.5, max_bytes=GB, now=NOW)
        assert [c.request.method for c in api.calls if c.request.url.split("?")[0].endswith("/cancel")] == ["POST"]
