"""An anomaly check gives the same verdict on BigQuery and on SQLite: the detector runs on the fetched series."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid

import pytest

from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.models import Check, CheckType, Seasonality, Status
from anomaly_monitor.runner import evaluate
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses import open_warehouse
from tests import bq_emulator

bigquery_emulator = bq_emulator.bigquery_emulator
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
START = dt.date(2026, 1, 1)


def daily_series(last: float) -> list[tuple[str, float]]:
    """Sixty days with a weekday pattern and some noise, then `last` on the newest day."""
    values = [1000 - 150 * (d % 7 in (5, 6)) + (d * 37 % 23) for d in range(60)]  # quieter weekends
    values[-1] = last
    return [((START + dt.timedelta(days=d)).isoformat(), float(v)) for d, v in enumerate(values)]


SERIES = {"spiky": daily_series(2400.0), "ordinary": daily_series(1010.0)}
SQL = "SELECT ts, value FROM daily_orders WHERE series = '{name}' ORDER BY ts"


def check(name: str) -> Check:
    return Check(name=name, sql=SQL.format(name=name), type=CheckType.ANOMALY, seasonality=Seasonality.DAY_OF_WEEK)


@pytest.fixture(scope="module")
def sqlite_warehouse(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("parity") / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE daily_orders (series TEXT, ts TEXT, value REAL)")
        conn.executemany(
            "INSERT INTO daily_orders VALUES (?, ?, ?)", [(n, t, v) for n, s in SERIES.items() for t, v in s]
        )
    return open_warehouse(f"sqlite:///{path}", Settings())


@pytest.fixture(scope="module")
def bigquery_warehouse(bigquery_emulator: bq_emulator.Emulator):
    dataset = f"parity_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.daily_orders (series STRING, ts DATE, value FLOAT64)").result()
    rows = ", ".join(f"('{n}', DATE '{t}', {v})" for n, s in SERIES.items() for t, v in s)
    client.query(f"INSERT INTO {dataset}.daily_orders VALUES {rows}").result()
    settings = Settings(bigquery_api_endpoint=bigquery_emulator.endpoint)
    return open_warehouse(f"bigquery://{bigquery_emulator.project}/{dataset}", settings)


@pytest.mark.parametrize(("name", "status"), [("spiky", Status.ALERT), ("ordinary", Status.OK)])
def test_same_verdict_on_bigquery_and_sqlite(sqlite_warehouse, bigquery_warehouse, name: str, status: Status):
    on_sqlite = evaluate(check(name), sqlite_warehouse, Settings(), NOW, [])
    on_bigquery = evaluate(check(name), bigquery_warehouse, Settings(), NOW, [])
    assert on_sqlite.status is on_bigquery.status is status
    assert on_sqlite.value == on_bigquery.value
    assert on_sqlite.expected == on_bigquery.expected
    assert on_sqlite.message == on_bigquery.message
    assert on_sqlite.series == on_bigquery.series
