"""The BigQuery state store and a whole run on BigQuery, against a local BigQuery emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from anomaly_monitor import gcp
from anomaly_monitor.models import HistoryRecord, Status
from anomaly_monitor.notifiers.console import ConsoleNotifier
from anomaly_monitor.runner import Backends, RunOptions, run
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.csv_source import CsvSource
from anomaly_monitor.state import open_state
from anomaly_monitor.state.bigquery import BigQueryStateStore
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA
from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse
from tests import bq_emulator

bigquery_emulator = bq_emulator.bigquery_emulator


def new_dataset(emulator: bq_emulator.Emulator) -> str:
    dataset = f"state_{uuid.uuid4().hex[:8]}"
    gcp.bigquery_client(emulator.project, emulator.endpoint).create_dataset(dataset)
    return dataset


def store_in(emulator: bq_emulator.Emulator, dataset: str) -> BigQueryStateStore:
    settings = Settings(bigquery_api_endpoint=emulator.endpoint)
    store = open_state(f"bigquery://{emulator.project}/{dataset}", settings)
    assert isinstance(store, BigQueryStateStore)
    return store


def record(name: str, minutes_ago: int, status: Status = Status.OK, **extra) -> HistoryRecord:
    values = dict(value=None, row_count=None, message="", duration_ms=5, bytes_processed=None, notified=False)
    values |= dict(slack_channel=None, slack_ts=None) | extra
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=minutes_ago)
    return HistoryRecord(run_id=f"run{minutes_ago}", check_name=name, checked_at=at, status=status, **values)


def test_the_table_is_created_day_partitioned_and_clustered(bigquery_emulator: bq_emulator.Emulator) -> None:
    dataset = new_dataset(bigquery_emulator)
    store = store_in(bigquery_emulator, dataset)
    assert store.history(["a"], limit=5) == {}
    table = gcp.bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint).get_table(store.table_id)
    legacy = {"FLOAT": "FLOAT64", "INTEGER": "INT64", "BOOLEAN": "BOOL"}  # BigQuery answers these names
    assert [(f.name, legacy.get(f.field_type, f.field_type), f.mode) for f in table.schema] == CHECK_RESULTS_SCHEMA
    assert table.time_partitioning.type_ == "DAY"
    assert table.time_partitioning.field == "checked_at"
    assert table.clustering_fields == ["check_name"]


def test_appended_rows_read_back_newest_per_check_oldest_first(bigquery_emulator: bq_emulator.Emulator) -> None:
    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    store.append([record("a", 30), record("b", 25, Status.ALERT, value=7.5, row_count=3, notified=True)])
    store.append(
        [
            record("a", 20, Status.ALERT, message="4 rows", slack_channel="C1", slack_ts="1.2", notified=True),
            record("a", 10, Status.ERROR, message="boom", bytes_processed=1024),
        ]
    )
    history = store.history(["a", "b", "c"], limit=2)
    assert set(history) == {"a", "b"}
    assert [(r.status, r.message) for r in history["a"]] == [(Status.ALERT, "4 rows"), (Status.ERROR, "boom")]
    assert history["a"][0].slack_ts == "1.2" and history["a"][1].bytes_processed == 1024
    (b,) = history["b"]
    assert (b.value, b.row_count, b.notified, b.checked_at.tzinfo) == (7.5, 3, True, dt.UTC)


def test_a_missing_dataset_is_a_state_error(bigquery_emulator: bq_emulator.Emulator) -> None:
    from anomaly_monitor.errors import StateError

    store = store_in(bigquery_emulator, "no_such_dataset")
    with pytest.raises(StateError, match="no_such_dataset does not exist"):
        store.history(["a"], limit=5)


def test_a_run_on_bigquery_records_and_remembers(bigquery_emulator: bq_emulator.Emulator, tmp_path) -> None:
    """One end-to-end run: checks from CSV, queries and history on the emulator, alerts on the console."""
    dataset = new_dataset(bigquery_emulator)
    client = gcp.bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.query(f"CREATE TABLE {dataset}.orders (id INT64, status STRING, amount FLOAT64)").result()
    client.query(f"INSERT INTO {dataset}.orders VALUES (1, 'authorised', 10), (2, 'settled', 20), (3, 'authorised', 5)")
    checks = tmp_path / "checks.csv"
    checks.write_text(
        "name,type,sql,min,max\n"
        "unsettled,rows,SELECT id FROM orders WHERE status = 'authorised' ORDER BY id,,\n"
        "total,threshold,SELECT SUM(amount) AS value FROM orders,,100\n"
        "broken,rows,SELECT * FROM missing_table,,\n"
    )
    settings = Settings(bigquery_api_endpoint=bigquery_emulator.endpoint, max_workers=4)
    url = f"bigquery://{bigquery_emulator.project}/{dataset}"
    backends = Backends(
        source=CsvSource(checks),
        warehouse=BigQueryWarehouse.from_url(url, settings),
        state=store_in(bigquery_emulator, dataset),
        notifier=ConsoleNotifier(None),
        settings=settings,
    )
    report = run(backends, RunOptions(force=True))
    by_name = {r.name: r for r in report.results}
    assert by_name["unsettled"].status is Status.ALERT
    assert by_name["unsettled"].row_count == 2 and by_name["unsettled"].rows == [{"id": 1}, {"id": 3}]
    assert (by_name["total"].status, by_name["total"].value) == (Status.OK, 35)
    assert by_name["broken"].status is Status.ERROR and "missing_table" in by_name["broken"].message

    history = backends.state.history(["unsettled", "total", "broken"], limit=10)
    assert {name: [r.status for r in rows] for name, rows in history.items()} == {
        "unsettled": [Status.ALERT],
        "total": [Status.OK],
        "broken": [Status.ERROR],
    }
    assert history["unsettled"][0].run_id == report.run_id


def test_timestamps_at_the_edges_of_the_allowed_years_read_back(bigquery_emulator: bq_emulator.Emulator) -> None:
    from anomaly_monitor.state.bigquery import from_row

    store = store_in(bigquery_emulator, new_dataset(bigquery_emulator))
    first, last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    store.append([dataclasses.replace(record("early", 0), checked_at=first)])
    store.append([dataclasses.replace(record("late", 0), checked_at=last)])
    assert [r.checked_at for r in store.history(["late"], limit=5)["late"]] == [last]
    client = gcp.bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    [row] = client.query(f"SELECT * FROM `{store.table_id}` WHERE check_name = 'early'").result()
    assert from_row(row).checked_at == first  # history() looks back 90 days only; the row itself round-trips
