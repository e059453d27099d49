"""BigQuery SQL run through the SQLite dialect returns what BigQuery returns, on real SQLite files."""

import datetime
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.warehouses.sqlite_connection import connect_readonly
from anomaly_monitor.warehouses.sqlite_dialect import to_sqlite, translate
from tests.seed_rows import SEED_ORDERS as ORDERS
from tests.seed_rows import SEED_TRANSACTIONS as TRANSACTIONS

NOW = datetime.datetime(2025, 10, 16, 12, 30, 0, tzinfo=datetime.UTC)

# Timestamps in the forms the contract allows: space or T, optional fraction, optional Z / +00:00.
EVENTS = [
    (1, "2025-10-15 23:59:59", "2025-10-15", 10, 2.5, "alpha", 1),
    (2, "2025-10-16 00:00:00", "2025-10-16", 20, -2.5, "beta", 0),
    (3, "2025-10-16T05:00:00Z", "2025-10-16", 30, 1.25, "Gamma", 1),
    (4, "2025-10-16 11:30:00.250+00:00", "2025-10-12", 40, None, "delta42", None),
    (5, "2025-10-09 12:30:00", "2025-10-09", 50, 0.5, None, 0),
]


def populate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE orders (id INTEGER, created_date TIMESTAMP, merchant_id INTEGER)")
    conn.execute(
        "CREATE TABLE transactions (id INTEGER, created_date TIMESTAMP, transaction_type TEXT,"
        " order_id INTEGER, transaction_status TEXT)"
    )
    conn.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMP, d DATE, amount INTEGER, price REAL, s TEXT, flag)")
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", ORDERS)
    conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?)", TRANSACTIONS)
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", EVENTS)
    conn.commit()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.db"
    with sqlite3.connect(path) as conn:
        populate(conn)
    conn.close()
    return path


@pytest.fixture
def conn(warehouse: Path) -> Iterator[sqlite3.Connection]:
    connection = connect_readonly(str(warehouse), NOW)
    yield connection
    connection.close()


def run(conn: sqlite3.Connection, bigquery_sql: str) -> list[tuple]:
    return conn.execute(to_sqlite(bigquery_sql)).fetchall()


# (BigQuery SQL, the rows BigQuery returns). Timestamps come back as UTC text `YYYY-MM-DD HH:MM:SS`.
SCALAR_CASES = [
    # TIMESTAMP_DIFF: whole units, truncated toward zero.
    ("SELECT TIMESTAMP_DIFF(TIMESTAMP '2025-01-08 00:00:00', TIMESTAMP '2025-01-01 00:00:01', DAY)", 6),
    ("SELECT TIMESTAMP_DIFF(TIMESTAMP '2025-01-01 00:00:01', TIMESTAMP '2025-01-08 00:00:00', DAY)", -6),
    ("SELECT TIMESTAMP_DIFF(TIMESTAMP '2010-07-07 10:20:00+00', TIMESTAMP '2008-12-25 15:30:00+00', HOUR)", 13410),
    ("SELECT TIMESTAMP_DIFF(TIMESTAMP '2010-07-07 10:20:00+00', TIMESTAMP '2008-12-25 15:30:00+00', DAY)", 558),
    ("SELECT TIMESTAMP_DIFF('2025-01-01 00:00:01.500', '2025-01-01 00:00:00', SECOND)", 1),
    ("SELECT TIMESTAMP_DIFF('2025-01-01 00:00:01.500', '2025-01-01 00:00:00', MILLISECOND)", 1500),
    ("SELECT TIMESTAMP_DIFF('2025-01-01T00:10:00Z', '2025-01-01 00:00:30', MINUTE)", 9),
    ("SELECT TIMESTAMP_DIFF(TIMESTAMP '2025-01-01 02:00:00+02', TIMESTAMP '2025-01-01 00:00:00', SECOND)", 0),
    # DATE_DIFF and DATETIME_DIFF from DAY up: boundaries crossed.
    ("SELECT DATE_DIFF(DATE '2025-01-01', DATE '2024-12-31', DAY)", 1),
    ("SELECT DATE_DIFF(DATE '2024-12-31', DATE '2025-01-01', DAY)", -1),
    ("SELECT DATE_DIFF(DATE '2025-01-01', DATE '2024-12-31', YEAR)", 1),
    ("SELECT DATE_DIFF(DATE '2025-03-01', DATE '2025-01-31', MONTH)", 2),
    ("SELECT DATE_DIFF(DATE '2025-04-01', DATE '2025-03-31', QUARTER)", 1),
    ("SELECT DATE_DIFF(DATE '2017-10-15', DATE '2017-10-14', WEEK)", 1),
    ("SELECT DATE_DIFF(DATE '2017-12-18', DATE '2017-12-17', WEEK)", 0),
    ("SELECT DATE_DIFF(DATE '2017-12-18', DATE '2017-12-17', ISOWEEK)", 1),
    ("SELECT DATE_DIFF(DATE '2017-12-18', DATE '2017-12-17', WEEK(MONDAY))", 1),
    ("SELECT DATETIME_DIFF(DATETIME '2010-07-07 10:20:00', DATETIME '2008-12-25 15:30:00', DAY)", 559),
    ("SELECT DATETIME_DIFF(DATETIME '2025-01-01 10:59:00', DATETIME '2025-01-01 10:00:01', HOUR)", 0),
    # Adding intervals.
    ("SELECT TIMESTAMP_SUB(TIMESTAMP '2025-01-01 00:00:00', INTERVAL 1 SECOND)", "2024-12-31 23:59:59"),
    ("SELECT TIMESTAMP_ADD('2025-01-01T10:00:00Z', INTERVAL 90 MINUTE)", "2025-01-01 11:30:00"),
    ("SELECT TIMESTAMP_ADD(TIMESTAMP '2025-01-01 10:00:00', INTERVAL 2 HOUR)", "2025-01-01 12:00:00"),
    ("SELECT TIMESTAMP_SUB(TIMESTAMP '2025-03-01 00:00:00', INTERVAL 1 DAY)", "2025-02-28 00:00:00"),
    ("SELECT TIMESTAMP_ADD(TIMESTAMP '2025-01-01 00:00:00', INTERVAL 1500 MILLISECOND)", "2025-01-01 00:00:01.5"),
    ("SELECT TIMESTAMP_ADD(TIMESTAMP '2025-01-01 00:00:00', INTERVAL -3 * 2 DAY)", "2024-12-26 00:00:00"),
    ("SELECT TIMESTAMP '2025-01-01 00:00:00' - INTERVAL 1 WEEK", "2024-12-25 00:00:00"),
    ("SELECT DATE_ADD(DATE '2025-01-01', INTERVAL 2 WEEK)", "2025-01-15"),
    ("SELECT DATE_SUB(DATE '2025-03-01', INTERVAL 1 DAY)", "2025-02-28"),
    ("SELECT DATE_ADD(DATE '2025-01-31', INTERVAL 1 MONTH)", "2025-02-28"),
    ("SELECT DATE_SUB(DATE '2024-03-31', INTERVAL 1 MONTH)", "2024-02-29"),
    ("SELECT DATE_ADD(DATE '2024-02-29', INTERVAL 1 YEAR)", "2025-02-28"),
    ("SELECT DATE_ADD(DATE '2025-01-15', INTERVAL 1 QUARTER)", "2025-04-15"),
    # Truncation.
    ("SELECT DATE_TRUNC(DATE '2025-10-16', WEEK)", "2025-10-12"),
    ("SELECT DATE_TRUNC(DATE '2025-10-12', WEEK)", "2025-10-12"),
    ("SELECT DATE_TRUNC(DATE '2025-10-16', WEEK(MONDAY))", "2025-10-13"),
    ("SELECT DATE_TRUNC(DATE '2025-10-16', ISOWEEK)", "2025-10-13"),
    ("SELECT DATE_TRUNC(DATE '2025-10-16', MONTH)", "2025-10-01"),
    ("SELECT DATE_TRUNC(DATE '2025-08-20', QUARTER)", "2025-07-01"),
    ("SELECT DATE_TRUNC(DATE '2025-08-20', YEAR)", "2025-01-01"),
    ("SELECT DATE_TRUNC(TIMESTAMP '2025-08-20 10:00:00', MONTH)", "2025-08-01 00:00:00"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12.5', SECOND)", "2025-10-16 13:45:12"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12', MINUTE)", "2025-10-16 13:45:00"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12', HOUR)", "2025-10-16 13:00:00"),
    ("SELECT TIMESTAMP_TRUNC('2025-10-16T13:45:12Z', DAY)", "2025-10-16 00:00:00"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12', WEEK)", "2025-10-12 00:00:00"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12', MONTH)", "2025-10-01 00:00:00"),
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 13:45:12', DAY, 'UTC')", "2025-10-16 00:00:00"),
    ("SELECT DATETIME_TRUNC(DATETIME '2025-10-16 13:45:12', HOUR)", "2025-10-16 13:00:00"),
    # EXTRACT: DAYOFWEEK is 1 = Sunday.
    ("SELECT EXTRACT(DAYOFWEEK FROM DATE '2025-10-12')", 1),
    ("SELECT EXTRACT(DAYOFWEEK FROM TIMESTAMP '2025-10-18 23:00:00')", 7),
    ("SELECT EXTRACT(HOUR FROM TIMESTAMP '2025-10-16 13:45:12')", 13),
    ("SELECT EXTRACT(MINUTE FROM TIMESTAMP '2025-10-16 13:45:12')", 45),
    ("SELECT EXTRACT(SECOND FROM TIMESTAMP '2025-10-16 13:45:12.75')", 12),
    ("SELECT EXTRACT(MILLISECOND FROM TIMESTAMP '2025-10-16 13:45:12.75')", 750),
    ("SELECT EXTRACT(YEAR FROM DATE '2025-10-16')", 2025),
    ("SELECT EXTRACT(MONTH FROM DATE '2025-10-16')", 10),
    ("SELECT EXTRACT(DAY FROM DATE '2025-10-16')", 16),
    ("SELECT EXTRACT(DAYOFYEAR FROM DATE '2025-02-01')", 32),
    ("SELECT EXTRACT(QUARTER FROM DATE '2025-08-20')", 3),
    ("SELECT EXTRACT(WEEK FROM DATE '2025-01-04')", 0),
    ("SELECT EXTRACT(WEEK FROM DATE '2025-01-05')", 1),
    ("SELECT EXTRACT(ISOWEEK FROM DATE '2024-12-30')", 1),
    ("SELECT EXTRACT(ISOYEAR FROM DATE '2024-12-30')", 2025),
    ("SELECT EXTRACT(ISOWEEK FROM DATE '2021-01-03')", 53),
    ("SELECT EXTRACT(DATE FROM TIMESTAMP '2025-10-16 23:59:59')", "2025-10-16"),
    ("SELECT EXTRACT(HOUR FROM TIMESTAMP '2025-10-16 13:45:12' AT TIME ZONE 'UTC')", 13),
    # Time zones: wall clock in the zone (Python zoneinfo); UTC stays native.
    ("SELECT TIMESTAMP_TRUNC(TIMESTAMP '2025-10-16 23:30:00', DAY, 'Europe/Berlin')", "2025-10-16 22:00:00"),
    ("SELECT EXTRACT(HOUR FROM TIMESTAMP '2025-10-16 13:45:12' AT TIME ZONE 'America/New_York')", 9),
    ("SELECT DATE(TIMESTAMP '2025-10-16 23:30:00', 'Europe/Berlin')", "2025-10-17"),
    ("SELECT DATETIME(TIMESTAMP '2025-10-16 23:30:00', 'Asia/Kolkata')", "2025-10-17 05:00:00"),
    ("SELECT TIMESTAMP('2025-01-01 00:00:00', 'America/Los_Angeles')", "2025-01-01 08:00:00"),
    ("SELECT FORMAT_TIMESTAMP('%F %H:%M', TIMESTAMP '2025-10-16 23:30:00', '+05:30')", "2025-10-17 05:00"),
    ("SELECT CURRENT_DATE('Pacific/Kiritimati')", "2025-10-17"),
    ("SELECT CURRENT_DATETIME('America/New_York')", "2025-10-16 08:30:00"),
    # FORMAT_TIMESTAMP / FORMAT_DATE.
    ("SELECT FORMAT_TIMESTAMP('%Y-%m-%d %H:%M', TIMESTAMP '2025-10-16 13:45:12')", "2025-10-16 13:45"),
    ("SELECT FORMAT_TIMESTAMP('%F %T %Z', '2025-10-16T13:45:12Z')", "2025-10-16 13:45:12 UTC"),
    ("SELECT FORMAT_TIMESTAMP('%I:%M %p', TIMESTAMP '2025-10-16 13:45:12')", "01:45 PM"),
    ("SELECT FORMAT_TIMESTAMP('%E3S', TIMESTAMP '2025-10-16 13:45:12.5')", "12.500"),
    ("SELECT FORMAT_TIMESTAMP('%s', TIMESTAMP '1970-01-02 00:00:00')", "86400"),
    ("SELECT FORMAT_DATE('%A %d %B %Y', DATE '2025-10-16')", "Thursday 16 October 2025"),
    ("SELECT FORMAT_DATE('%a %b %e', DATE '2025-10-06')", "Mon Oct  6"),
    ("SELECT FORMAT_DATE('%Y%m', DATE '2025-10-06')", "202510"),
    ("SELECT FORMAT_DATE('%j %u %U %W %y %Q', DATE '2025-10-16')", "289 4 41 41 25 4"),
    ("SELECT FORMAT_DATE('%D', DATE '2025-10-06')", "10/06/25"),
    ("SELECT FORMAT_DATETIME('%H:%M:%S', DATETIME '2025-10-16 07:08:09')", "07:08:09"),
    # Conversions.
    ("SELECT DATE(TIMESTAMP '2025-10-16 23:59:59')", "2025-10-16"),
    ("SELECT DATE('2025-10-16T23:59:59Z')", "2025-10-16"),
    ("SELECT DATE(2025, 2, 3)", "2025-02-03"),
    ("SELECT TIMESTAMP('2025-10-16')", "2025-10-16 00:00:00"),
    ("SELECT TIMESTAMP('2025-10-16 10:00:00+02:00')", "2025-10-16 08:00:00"),
    ("SELECT DATETIME('2025-10-16T10:00:00')", "2025-10-16 10:00:00"),
    ("SELECT CAST('2025-10-16T10:00:00Z' AS TIMESTAMP)", "2025-10-16 10:00:00"),
    ("SELECT CAST('2025-10-16 10:00:00' AS DATE)", "2025-10-16"),
    ("SELECT TIMESTAMP_SECONDS(86400)", "1970-01-02 00:00:00"),
    ("SELECT TIMESTAMP_MILLIS(1500)", "1970-01-01 00:00:01.5"),
    ("SELECT UNIX_SECONDS(TIMESTAMP '1970-01-02 00:00:00')", 86400),
    ("SELECT UNIX_MILLIS(TIMESTAMP '1970-01-01 00:00:01.5')", 1500),
    ("SELECT PARSE_DATE('%Y%m%d', '20251016')", "2025-10-16"),
    ("SELECT PARSE_DATE('%Y-%m-%d', '2025-10-16')", "2025-10-16"),
    ("SELECT PARSE_TIMESTAMP('%d/%m/%Y %H:%M', '16/10/2025 13:45')", "2025-10-16 13:45:00"),
    # The clock: the connection's `now`.
    ("SELECT CURRENT_TIMESTAMP()", "2025-10-16 12:30:00"),
    ("SELECT CURRENT_TIMESTAMP", "2025-10-16 12:30:00"),
    ("SELECT CURRENT_DATETIME()", "2025-10-16 12:30:00"),
    ("SELECT CURRENT_DATE()", "2025-10-16"),
    ("SELECT CURRENT_DATE('UTC')", "2025-10-16"),
    ("SELECT DATE_SUB(CURRENT_DATE(), INTERVAL 1 DAY)", "2025-10-15"),
    ("SELECT TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 36 HOUR)", "2025-10-15 00:30:00"),
    # Arithmetic and casts.
    ("SELECT 7 / 2", 3.5),
    ("SELECT 8 / 2", 4.0),
    ("SELECT DIV(7, 2)", 3),
    ("SELECT DIV(-7, 2)", -3),
    ("SELECT MOD(7, 3)", 1),
    ("SELECT SAFE_DIVIDE(3, 2)", 1.5),
    ("SELECT SAFE_DIVIDE(1, 0)", None),
    ("SELECT CAST(2.5 AS INT64)", 3),
    ("SELECT CAST(-2.5 AS INT64)", -3),
    ("SELECT CAST('42' AS INT64)", 42),
    ("SELECT SAFE_CAST('abc' AS INT64)", None),
    ("SELECT SAFE_CAST(' 42 ' AS INT64)", 42),
    ("SELECT SAFE_CAST('007' AS INT64)", 7),
    ("SELECT SAFE_CAST('0x1F' AS INT64)", 31),
    ("SELECT SAFE_CAST('1_000' AS INT64)", None),
    ("SELECT SAFE_CAST(4.5 AS INT64)", 5),
    ("SELECT SAFE_CAST(7 AS FLOAT64)", 7.0),
    ("SELECT SAFE_CAST('4.5' AS FLOAT64)", 4.5),
    ("SELECT SAFE_CAST('x' AS FLOAT64)", None),
    ("SELECT SAFE_CAST('2025-13-01' AS DATE)", None),
    ("SELECT CAST('7' AS FLOAT64)", 7.0),
    ("SELECT CAST(12.5 AS NUMERIC)", 12.5),
    ("SELECT CAST(42 AS STRING)", "42"),
    ("SELECT CAST('true' AS BOOL)", True),
    ("SELECT CAST(0 AS BOOL)", False),
    # Conditionals and strings.
    ("SELECT IF(1 > 2, 'a', 'b')", "b"),
    ("SELECT IFNULL(NULL, 5)", 5),
    ("SELECT COALESCE(NULL, NULL, 'x')", "x"),
    ("SELECT REGEXP_CONTAINS('abc123', r'\\d+$')", True),
    ("SELECT REGEXP_CONTAINS('abc', r'^B')", False),
    ("SELECT REGEXP_EXTRACT('order-123-x', r'order-(\\d+)')", "123"),
    ("SELECT REGEXP_REPLACE('a1b22', r'\\d', '#')", "a#b##"),
    ("SELECT 'abc' LIKE 'A%'", False),
    ("SELECT 'b' IN UNNEST(['a', 'b'])", True),
    ("SELECT 'c' IN UNNEST(['a', 'b'])", False),
    ("SELECT CONCAT('a', 'b', 'c')", "abc"),
    ("SELECT TIMESTAMP '2025-10-16 00:00:00' = '2025-10-16'", True),
    ("SELECT TIMESTAMP_ADD(TIMESTAMP '2025-10-15 23:00:00', INTERVAL 1 HOUR) = '2025-10-16'", True),
    ("SELECT TIMESTAMP_TRUNC('2025-10-16T13:00:00Z', DAY) > '2025-10-16T00:00:00+00:00'", False),
    ("SELECT DATE('2025-10-16 23:00:00-05:00')", "2025-10-17"),
    ("SELECT DATE_ADD(DATE('2025-10-16T23:00:00Z'), INTERVAL 1 DAY)", "2025-10-17"),
    ("SELECT DATE '2025-10-16' BETWEEN '2025-10-01' AND '2025-10-31'", True),
]


@pytest.mark.parametrize(("bigquery_sql", "expected"), SCALAR_CASES, ids=[c[0][7:60] for c in SCALAR_CASES])
def test_scalar_expression_returns_bigquery_value(
    conn: sqlite3.Connection, bigquery_sql: str, expected: object
) -> None:
    assert run(conn, bigquery_sql) == [(expected,)]


TABLE_CASES = [
    # A TIMESTAMP column against a date literal: midnight is not after 2025-10-16; T/Z forms compare as instants.
    ("SELECT id FROM events WHERE ts > '2025-10-16' ORDER BY id", [(3,), (4,)]),
    ("SELECT id FROM events WHERE ts >= '2025-10-16' ORDER BY id", [(2,), (3,), (4,)]),
    ("SELECT id FROM events WHERE ts = TIMESTAMP '2025-10-16 05:00:00' ORDER BY id", [(3,)]),
    (
        "SELECT id FROM events WHERE ts BETWEEN '2025-10-16 00:00:00' AND '2025-10-16 05:00:00' ORDER BY id",
        [(2,), (3,)],
    ),
    ("SELECT id FROM events WHERE ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)", [(4,)]),
    ("SELECT id FROM events WHERE d < DATE_SUB(CURRENT_DATE(), INTERVAL 6 DAY)", [(5,)]),
    ("SELECT id FROM events WHERE DATE(ts) = CURRENT_DATE() ORDER BY id", [(2,), (3,), (4,)]),
    ("SELECT id FROM events WHERE DATE(ts) >= '2025-10-16' ORDER BY id", [(2,), (3,), (4,)]),
    ("SELECT id FROM events WHERE TIMESTAMP_TRUNC(ts, HOUR) = '2025-10-16 11:00:00'", [(4,)]),
    ("SELECT id FROM events WHERE d BETWEEN DATE '2025-10-10' AND CURRENT_DATE()", [(1,), (2,), (3,), (4,)]),
    ("SELECT id, TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), ts, HOUR) FROM events WHERE id IN (1, 5)", [(1, 12), (5, 168)]),
    (
        "SELECT EXTRACT(DAYOFWEEK FROM ts) AS dow, COUNT(*) AS n "
        "FROM `my-project.shop.events` GROUP BY dow ORDER BY dow",
        [(4, 1), (5, 4)],
    ),
    (
        "SELECT DATE_TRUNC(d, WEEK) AS week, SUM(amount) AS total FROM shop.events "
        "GROUP BY 1 HAVING total > 50 ORDER BY 1",
        [("2025-10-12", 100)],
    ),
    ("SELECT COUNTIF(flag = 1) AS on_, COUNTIF(price < 0) AS neg FROM events", [(2, 1)]),
    ("SELECT COUNTIF(flag = 1) FROM events WHERE id > 100", [(0,)]),
    ("SELECT SUM(amount) / COUNT(*) FROM events", [(30.0,)]),
    ("SELECT STRING_AGG(s, '|') FROM (SELECT s FROM events WHERE id < 3 ORDER BY id)", [("alpha|beta",)]),
    ("SELECT id FROM events WHERE s IN UNNEST(['beta', 'Gamma']) ORDER BY id", [(2,), (3,)]),
    ("SELECT id FROM events WHERE REGEXP_CONTAINS(s, r'^[a-z]+\\d+$')", [(4,)]),
    ("SELECT id FROM events WHERE s LIKE 'g%'", []),
    ("SELECT SAFE_CAST(price AS INT64) FROM events WHERE id <= 2 ORDER BY id", [(3,), (-3,)]),
    ("SELECT n FROM UNNEST([3, 1, 2]) AS n ORDER BY n DESC", [(3,), (2,), (1,)]),
    ("SELECT x, i FROM UNNEST(['a', 'b']) AS x WITH OFFSET AS i ORDER BY i", [("a", 0), ("b", 1)]),
    ("SELECT e.id FROM events AS e JOIN UNNEST([2, 4]) AS wanted ON e.id = wanted ORDER BY 1", [(2,), (4,)]),
    # Window functions and QUALIFY (LIMIT and ORDER BY apply after QUALIFY; no helper column leaks out).
    (
        "SELECT id, SUM(amount) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running "
        "FROM events ORDER BY id LIMIT 3",
        [(1, 10), (2, 30), (3, 60)],
    ),
    ("SELECT id, LAG(amount) OVER (ORDER BY id) FROM events ORDER BY id LIMIT 2", [(1, None), (2, 10)]),
    (
        "SELECT d, id FROM events QUALIFY ROW_NUMBER() OVER (PARTITION BY d ORDER BY id DESC) = 1 ORDER BY d LIMIT 3",
        [("2025-10-09", 5), ("2025-10-12", 4), ("2025-10-15", 1)],
    ),
    (
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY d ORDER BY id) AS rn FROM events QUALIFY rn > 1",
        [(3, 2)],
    ),
    (
        "SELECT * FROM events WHERE id > 1 QUALIFY ROW_NUMBER() OVER (PARTITION BY d ORDER BY id) = 1 ORDER BY id",
        [EVENTS[1], EVENTS[3], EVENTS[4]],
    ),
    (
        "SELECT DISTINCT flag FROM events QUALIFY COUNT(*) OVER (PARTITION BY flag) > 1 ORDER BY flag",
        [(0,), (1,)],
    ),
    (
        "SELECT d, COUNT(*) FROM events GROUP BY d QUALIFY RANK() OVER (ORDER BY COUNT(*) DESC) = 1",
        [("2025-10-16", 2)],
    ),
    (
        "WITH daily AS (SELECT DATE(ts) AS day, COUNT(*) AS n FROM `p.shop.events` GROUP BY day) "
        "SELECT day, n FROM daily WHERE n > 1 UNION ALL SELECT DATE '2000-01-01', 0 ORDER BY day",
        [("2000-01-01", 0), ("2025-10-16", 3)],
    ),
    ("SELECT COUNT(*) FROM events LIMIT 1", [(5,)]),
    # Spread (Python aggregates, also as window functions), string predicates.
    (
        "SELECT ROUND(STDDEV(amount), 6), VARIANCE(amount), STDDEV_POP(amount), VAR_POP(amount) FROM events",
        [(15.811388, 250.0, 14.142135623730951, 200.0)],
    ),
    ("SELECT STDDEV(amount) FROM events WHERE id = 1", [(None,)]),
    (
        "SELECT id, VAR_SAMP(amount) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM events LIMIT 3",
        [(1, None), (2, 50.0), (3, 50.0)],
    ),
    ("SELECT APPROX_COUNT_DISTINCT(d) FROM events", [(4,)]),
    ("SELECT id FROM events WHERE STARTS_WITH(s, 'de') OR ENDS_WITH(s, 'mma')", [(3,), (4,)]),
]


@pytest.mark.parametrize(("bigquery_sql", "expected"), TABLE_CASES, ids=[c[0][:60] for c in TABLE_CASES])
def test_query_on_tables_returns_bigquery_rows(conn: sqlite3.Connection, bigquery_sql: str, expected: list) -> None:
    assert run(conn, bigquery_sql) == expected


ORIGIN_CHECK_WITH_DIFF = """
WITH auths AS (
  SELECT order_id, MAX(created_date) AS authorised_at
  FROM `payments-prod.shop.transactions`
  WHERE transaction_type = 'auth' AND transaction_status = 'success'
  GROUP BY order_id
),
closes AS (
  SELECT order_id, MIN(created_date) AS closed_at
  FROM `payments-prod.shop.transactions`
  WHERE transaction_type IN ('settle', 'void') AND transaction_status = 'success'
  GROUP BY order_id
)
SELECT a.order_id, o.merchant_id
FROM auths AS a
JOIN `payments-prod.shop.orders` AS o ON o.id = a.order_id
LEFT JOIN closes AS c ON c.order_id = a.order_id
WHERE c.closed_at IS NULL OR TIMESTAMP_DIFF(c.closed_at, a.authorised_at, SECOND) > 7 * 24 * 60 * 60
ORDER BY a.order_id
"""

ORIGIN_CHECK_WITH_INTERVAL = """
WITH auths AS (
  SELECT order_id, created_date AS authorised_at
  FROM transactions
  WHERE transaction_type = 'auth' AND transaction_status = 'success'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY created_date DESC) = 1
)
SELECT a.order_id, o.merchant_id
FROM auths AS a
JOIN orders AS o ON o.id = a.order_id
WHERE NOT EXISTS (
  SELECT 1 FROM transactions AS t
  WHERE t.order_id = a.order_id
    AND t.transaction_type IN UNNEST(['settle', 'void'])
    AND t.transaction_status = 'success'
    AND t.created_date <= TIMESTAMP_ADD(TIMESTAMP(a.authorised_at), INTERVAL 7 DAY)
)
ORDER BY a.order_id
"""

FLAGGED = [(1, 1), (4, 3), (6, 1), (7, 2), (8, 4), (9, 4), (10, 4)]


@pytest.mark.parametrize("check_sql", [ORIGIN_CHECK_WITH_DIFF, ORIGIN_CHECK_WITH_INTERVAL], ids=["diff", "interval"])
def test_origin_check_flags_orders_not_settled_within_7_days(conn: sqlite3.Connection, check_sql: str) -> None:
    assert run(conn, check_sql) == FLAGGED


def test_origin_check_grouped_by_merchant(conn: sqlite3.Connection) -> None:
    grouped = (
        f"SELECT merchant_id, COUNT(*) AS n FROM ({ORIGIN_CHECK_WITH_DIFF}) GROUP BY merchant_id ORDER BY n DESC, 1"
    )
    assert run(conn, grouped) == [(4, 3), (1, 2), (2, 1), (3, 1)]


def test_current_timestamp_follows_each_connections_now(warehouse: Path) -> None:
    sql = (
        "SELECT CURRENT_TIMESTAMP(), CURRENT_DATE(), "
        "COUNTIF(ts < TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)) FROM events"
    )
    later = connect_readonly(str(warehouse), datetime.datetime(2025, 10, 20, 8, 0, 0, 123000, tzinfo=datetime.UTC))
    other_zone = datetime.timezone(datetime.timedelta(hours=2))
    earlier = connect_readonly(str(warehouse), datetime.datetime(2025, 10, 16, 2, 0, tzinfo=other_zone))
    assert run(later, sql) == [("2025-10-20 08:00:00.123", "2025-10-20", 5)]
    assert run(earlier, sql) == [("2025-10-16 00:00:00", "2025-10-16", 1)]


def test_naive_now_is_refused(warehouse: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        connect_readonly(str(warehouse), datetime.datetime(2025, 10, 16))


def test_writing_through_readonly_connection_fails(conn: sqlite3.Connection) -> None:
    for statement in ("DELETE FROM events", "CREATE TABLE x (a)", "PRAGMA query_only = OFF"):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute(statement)
    conn.set_authorizer(None)  # below the authorizer, the file itself is open read-only
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        conn.execute("DELETE FROM events")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("CREATE TABLE x (a)")


def test_missing_warehouse_file_is_a_clear_error_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError, match="does not exist"):
        connect_readonly(str(missing), NOW)
    assert not missing.exists()


@pytest.mark.parametrize(
    ("bigquery_sql", "message"),
    [
        ("SELECT FROM WHERE", "does not parse"),
        ("DELETE FROM events WHERE TRUE", "only SELECT is allowed, found DELETE"),
        ("SELECT 1; DROP TABLE events", "only one statement is allowed, found 2"),
        ("SELECT x FROM t, UNNEST(t.items) AS x", "UNNEST of anything but a literal array"),
        ("SELECT TIMESTAMP_TRUNC(ts, DAY, 'Mars/Olympus') FROM t", "unknown time zone 'Mars/Olympus'"),
        ("SELECT FORMAT_TIMESTAMP('%H %Z', ts, 'Europe/Berlin') FROM t", "FORMAT_TIMESTAMP with a time zone"),
        ("SELECT * EXCEPT (ts) FROM t", "SELECT \\* EXCEPT/REPLACE needs the columns of t: no such table"),
        ("SELECT REGEXP_CONTAINS(s, r'(unclosed') FROM t", "invalid regular expression"),
        ("SELECT ARRAY_AGG(s) OVER (PARTITION BY d) FROM t", "as a window function is not supported on SQLite"),
        ("SELECT SPLIT(s, ',')[OFFSET(0)] FROM t", "not supported on SQLite"),
        ("SELECT *, COUNT(*) FROM t GROUP BY ALL", "GROUP BY ALL with SELECT \\*"),
        ("SELECT DATETIME(DATE '2025-01-01', TIME '10:00:00')", "DATETIME\\(date, time\\)"),
        ("SELECT FORMAT_TIMESTAMP('%G-%V', ts) FROM t", "format element %G"),
    ],
)
def test_untranslatable_sql_raises_query_error(bigquery_sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        to_sqlite(bigquery_sql)


def test_translation_is_cached() -> None:
    sql = "SELECT DATE_TRUNC(d, MONTH) FROM events"
    before = translate.cache_info().hits
    assert to_sqlite(sql) == to_sqlite(sql)
    assert translate.cache_info().hits > before


def test_dates_and_timestamps_become_native_sqlite_not_python_functions() -> None:
    sql = to_sqlite(
        "SELECT TIMESTAMP_DIFF(a, b, DAY), DATE_TRUNC(d, WEEK), EXTRACT(DAYOFWEEK FROM a), "
        "TIMESTAMP_SUB(a, INTERVAL 1 HOUR), FORMAT_TIMESTAMP('%A %F', a) FROM t"
    ).lower()
    assert "bq_" not in sql
    assert "julianday" in sql and "strftime" in sql


def test_unnamed_result_columns_are_named_like_bigquery(conn: sqlite3.Connection) -> None:
    cursor = conn.execute(to_sqlite("SELECT COUNT(*), id AS x, MAX(amount) / 2, id FROM events GROUP BY id LIMIT 1"))
    assert [c[0] for c in cursor.description] == ["f0_", "x", "f1_", "id"]
