"""BigQuery features analysts reach for first answer alike on SQLite (translated) and on BigQuery (the emulator)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from pathlib import Path

import pytest

from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.errors import QueryError
from anomaly_monitor.models import GB
from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from tests import bq_emulator

bigquery_emulator = bq_emulator.bigquery_emulator
NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
SALES = [
    (1, "north", 10, "a", "2026-01-01"),
    (2, "north", 30, None, "2026-01-02"),
    (3, "south", 20, "b", "2026-01-01"),
    (4, "south", 5, "a", "2026-02-03"),
    (5, "east", 15, "c", "2026-01-02"),
]

# (BigQuery SQL, the rows BigQuery returns); ARRAY columns come back as lists on both.
CASES = [
    (
        "SELECT * EXCEPT (tag, day) FROM sales WHERE id <= 2 ORDER BY id",
        [{"id": 1, "region": "north", "amount": 10}, {"id": 2, "region": "north", "amount": 30}],
    ),
    (
        "SELECT * REPLACE (amount * 2 AS amount, UPPER(region) AS region) FROM sales WHERE id = 1",
        [{"id": 1, "region": "NORTH", "amount": 20, "tag": "a", "day": "2026-01-01"}],
    ),
    (
        "WITH s AS (SELECT * EXCEPT (day) FROM sales) SELECT s.* EXCEPT (tag) FROM s WHERE id < 3 ORDER BY id",
        [{"id": 1, "region": "north", "amount": 10}, {"id": 2, "region": "north", "amount": 30}],
    ),
    (
        "SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM sales GROUP BY ALL ORDER BY region",
        [
            {"region": "east", "n": 1, "total": 15},
            {"region": "north", "n": 2, "total": 40},
            {"region": "south", "n": 2, "total": 25},
        ],
    ),
    (
        "SELECT region, EXTRACT(MONTH FROM day) AS month, COUNT(*) AS n FROM sales "
        "WHERE region = 'south' GROUP BY ALL ORDER BY month",
        [{"region": "south", "month": 1, "n": 1}, {"region": "south", "month": 2, "n": 1}],
    ),
    (
        "SELECT region FROM sales GROUP BY ALL HAVING COUNT(*) > 1 ORDER BY region",
        [{"region": "north"}, {"region": "south"}],
    ),
    (
        "SELECT region, ARRAY_AGG(id ORDER BY amount DESC) AS ids FROM sales GROUP BY region ORDER BY region",
        [{"region": "east", "ids": [5]}, {"region": "north", "ids": [2, 1]}, {"region": "south", "ids": [3, 4]}],
    ),
    ("SELECT ARRAY_AGG(id ORDER BY id) AS ids FROM sales WHERE id > 100", [{"ids": []}]),
    ("SELECT ARRAY_AGG(id ORDER BY tag DESC, id) AS ids FROM sales", [{"ids": [5, 3, 1, 4, 2]}]),
    ("SELECT ARRAY_AGG(id ORDER BY tag, id DESC) AS ids FROM sales", [{"ids": [2, 4, 1, 3, 5]}]),
    (
        "SELECT region, STRING_AGG(CAST(id AS STRING), '-' ORDER BY amount) AS ids FROM sales "
        "GROUP BY region ORDER BY region",
        [{"region": "east", "ids": "5"}, {"region": "north", "ids": "1-2"}, {"region": "south", "ids": "4-3"}],
    ),
    ("SELECT STRING_AGG(DISTINCT region, ',' ORDER BY region DESC) AS r FROM sales", [{"r": "south,north,east"}]),
    ("SELECT STRING_AGG(tag ORDER BY id DESC LIMIT 3) AS r FROM sales", [{"r": "c,a,b"}]),
    ("SELECT ARRAY_LENGTH(ARRAY_AGG(id)) AS n FROM sales", [{"n": 5}]),
    ("SELECT ARRAY_LENGTH([1, 2, 3]) AS n, ARRAY_LENGTH(SPLIT('a,b', ',')) AS m", [{"n": 3, "m": 2}]),
    (
        "WITH big AS (SELECT ARRAY_AGG(id) AS ids FROM sales WHERE amount >= 15) "
        "SELECT id FROM sales, big WHERE id IN UNNEST(big.ids) ORDER BY id",
        [{"id": 2}, {"id": 3}, {"id": 5}],
    ),
    ("SELECT id FROM sales WHERE region IN UNNEST(['east', 'south']) ORDER BY id", [{"id": 3}, {"id": 4}, {"id": 5}]),
    (
        "WITH r AS (SELECT region, ARRAY_AGG(amount ORDER BY amount) AS amounts FROM sales GROUP BY region) "
        "SELECT region, amounts FROM r ORDER BY region",
        [
            {"region": "east", "amounts": [15]},
            {"region": "north", "amounts": [10, 30]},
            {"region": "south", "amounts": [5, 20]},
        ],
    ),
    ("SELECT REGEXP_EXTRACT_ALL('a1b22', r'\\d+') AS x, SPLIT('x|y', '|') AS y", [{"x": ["1", "22"], "y": ["x", "y"]}]),
]

# What the emulator cannot run (its own translation breaks IGNORE NULLS with ORDER BY), from BigQuery's docs.
SQLITE_ONLY = [
    ("SELECT ARRAY_AGG(tag IGNORE NULLS ORDER BY tag LIMIT 2) AS tags FROM sales", [{"tags": ["a", "a"]}]),
    ("SELECT ARRAY_AGG(DISTINCT tag IGNORE NULLS ORDER BY tag) AS tags FROM sales", [{"tags": ["a", "b", "c"]}]),
    (
        "SELECT region, DATE_TRUNC(day, MONTH) AS month FROM `p.shop.sales` GROUP BY ALL ORDER BY region, month",
        [
            {"region": "east", "month": "2026-01-01"},
            {"region": "north", "month": "2026-01-01"},
            {"region": "south", "month": "2026-01-01"},
            {"region": "south", "month": "2026-02-01"},
        ],
    ),
]


@pytest.fixture(scope="module")
def sqlite_warehouse(tmp_path_factory: pytest.TempPathFactory) -> SqliteWarehouse:
    path = tmp_path_factory.mktemp("parity") / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER, region TEXT, amount INTEGER, tag TEXT, day DATE)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", SALES)
    conn.close()
    return SqliteWarehouse(Path(path))


@pytest.fixture(scope="module")
def bigquery_warehouse(bigquery_emulator: bq_emulator.Emulator) -> BigQueryWarehouse:
    dataset = f"parity_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.sales (id INT64, region STRING, amount INT64, tag STRING, day DATE)").result()
    values = ", ".join(f"({i}, '{r}', {a}, {'NULL' if t is None else repr(t)}, DATE '{d}')" for i, r, a, t, d in SALES)
    client.query(f"INSERT INTO {dataset}.sales VALUES {values}").result()
    return BigQueryWarehouse(bigquery_emulator.project, dataset, bigquery_emulator.endpoint)


def rows(warehouse, sql: str) -> list[dict]:
    return warehouse.query(sql, check_name="parity", limit=None, timeout_s=30, max_bytes=GB, now=NOW).rows


@pytest.mark.parametrize(("sql", "expected"), CASES + SQLITE_ONLY, ids=[c[0][:70] for c in CASES + SQLITE_ONLY])
def test_sqlite_answers_as_bigquery(sqlite_warehouse: SqliteWarehouse, sql: str, expected: list[dict]) -> None:
    assert rows(sqlite_warehouse, sql) == expected


@pytest.mark.slow
@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0][:70] for c in CASES])
def test_bigquery_emulator_gives_the_same_answer(bigquery_warehouse: BigQueryWarehouse, sql: str, expected) -> None:
    assert rows(bigquery_warehouse, sql) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT ARRAY_AGG(tag) AS tags FROM sales", "an array cannot hold NULL"),
        ("SELECT * EXCEPT (nope) FROM sales", "column nope in SELECT \\* EXCEPT/REPLACE is not among"),
        ("SELECT * EXCEPT (id) FROM missing", "needs the columns of missing: no such table"),
        ("SELECT x.* EXCEPT (id) FROM sales", "x.\\* names no table in FROM"),
    ],
)
def test_array_and_star_misuse_is_a_clear_error(sqlite_warehouse: SqliteWarehouse, sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        rows(sqlite_warehouse, sql)
