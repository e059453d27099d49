"""The SQLite warehouse reads tables and calls safe functions, nothing else, and stops at its deadline."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from anomaly_monitor.errors import QueryError
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from anomaly_monitor.warehouses.sqlite_connection import connect_readonly
from anomaly_monitor.warehouses.sqlite_functions import MAX_VALUE_BYTES

NOW = dt.datetime(2025, 10, 16, 12, 0, tzinfo=dt.UTC)
INFINITE = "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n) "


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = tmp_path_factory.mktemp("sandbox") / "warehouse.db"
    with sqlite3.connect(file) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, s TEXT, pattern TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [(1, "a" * 30 + "!", r"^(a+)+$"), (2, "order-42 paid", r"(?=x)"), (3, "x1y22z333", r"\d+")],
        )
    conn.close()
    return file


@pytest.fixture(scope="module")
def warehouse(path: Path) -> SqliteWarehouse:
    return SqliteWarehouse(path)


def query(warehouse: SqliteWarehouse, sql: str, timeout_s: float = 30, limit: int | None = 20) -> list[dict]:
    return warehouse.query(sql, check_name="sandbox", limit=limit, timeout_s=timeout_s, max_bytes=None, now=NOW).rows


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("SELECT fts3_tokenizer('simple') AS p", "fts3_tokenizer"),
        ("SELECT load_extension('/tmp/evil.so') AS x", "load_extension"),
        ("SELECT sqlite_compileoption_get(0) AS x", "sqlite_compileoption_get"),
        ("SELECT * FROM t WHERE id = last_insert_rowid()", "last_insert_rowid"),
    ],
)
def test_functions_outside_the_safe_list_are_refused_by_name(warehouse: SqliteWarehouse, sql: str, refused: str):
    with pytest.raises(QueryError, match=f"SQLite refused function {refused}\\(\\): a check may only read"):
        query(warehouse, sql)


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA writable_schema = ON",
        "PRAGMA query_only = OFF",
        "CREATE TEMP TABLE x (a)",
        "CREATE VIRTUAL TABLE v USING fts4(a)",
        "INSERT INTO t VALUES (9, 'x', 'y')",
        "BEGIN",
        "SELECT * FROM pragma_table_info('t')",
    ],
)
def test_the_connection_itself_refuses_everything_but_reading(path: Path, statement: str) -> None:
    conn = connect_readonly(str(path), NOW)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute(statement)
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (3,)  # reading still works
    finally:
        conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT LENGTH(CAST(randomblob(1000000000) AS STRING)) AS n",
        f"SELECT LENGTH(REPEAT('ab', {MAX_VALUE_BYTES})) AS n",
        f"SELECT LENGTH(REGEXP_REPLACE('aaa', 'a', REPEAT('b', {MAX_VALUE_BYTES // 2}))) AS n",
    ],
)
def test_a_function_cannot_build_a_value_over_the_cap(warehouse: SqliteWarehouse, sql: str) -> None:
    with pytest.raises(QueryError, match=r"too big|over 16,777,216 bytes"):
        query(warehouse, sql)


def test_printf_past_the_cap_gives_null_not_a_huge_string(warehouse: SqliteWarehouse) -> None:
    assert query(warehouse, "SELECT FORMAT('%*d', 100000000, 1) AS v") == [{"v": None}]


def test_a_value_under_the_cap_is_fine(warehouse: SqliteWarehouse) -> None:
    assert query(warehouse, "SELECT LENGTH(REPEAT('ab', 1000000)) AS n") == [{"n": 2_000_000}]
    assert query(warehouse, "SELECT REPEAT('ab', 0) AS a, REPEAT(NULL, 2) AS b") == [{"a": "", "b": None}]


def test_catastrophic_backtracking_pattern_is_linear_in_re2(warehouse: SqliteWarehouse) -> None:
    rows = query(warehouse, "SELECT id, REGEXP_CONTAINS(s, r'^(a+)+$') AS hit FROM t ORDER BY id", timeout_s=5)
    assert rows == [{"id": 1, "hit": 0}, {"id": 2, "hit": 0}, {"id": 3, "hit": 0}]
    rows = query(warehouse, "SELECT REGEXP_CONTAINS(REPEAT('a', 100000) || '!', r'^(a+)+$') AS hit", timeout_s=5)
    assert rows == [{"hit": 0}]


def test_a_pattern_from_the_data_that_re2_refuses_is_an_error_with_re2s_reason(warehouse: SqliteWarehouse):
    with pytest.raises(QueryError, match=r"invalid regular expression '\(\?=x\)': invalid perl operator"):
        query(warehouse, "SELECT id FROM t WHERE REGEXP_CONTAINS(s, pattern)")


def test_patterns_from_the_data_work_when_re2_accepts_them(warehouse: SqliteWarehouse) -> None:
    rows = query(warehouse, "SELECT id FROM t WHERE id <> 2 AND REGEXP_CONTAINS(s, pattern) ORDER BY id")
    assert rows == [{"id": 3}]


REGEX_CASES = [
    ("REGEXP_EXTRACT('x1y22z333', r'\\d+')", "1"),
    ("REGEXP_EXTRACT('x1y22z333', r'[a-z](\\d+)', 2)", "22"),
    ("REGEXP_EXTRACT('x1y22z333', r'\\d+', 1, 3)", "333"),
    ("REGEXP_EXTRACT('x1y22z333', r'\\d+', 1, 4)", None),
    ("REGEXP_EXTRACT('abc', r'(x)?b')", None),
    ("REGEXP_SUBSTR('x1y22z333', r'\\d{2}')", "22"),
    ("REGEXP_INSTR('x1y22z333', r'\\d+', 1, 2)", 4),
    ("REGEXP_INSTR('x1y22z333', r'\\d+', 1, 2, 1)", 6),
    ("REGEXP_INSTR('x1y22z333', r'q')", 0),
    ("REGEXP_REPLACE('x1y22', r'(\\d+)', '<\\\\1>')", "x<1>y<22>"),
    ("REGEXP_REPLACE('x1y22', r'\\d+', '[\\\\0]')", "x[1]y[22]"),
    ("REGEXP_REPLACE('a.b', r'\\.', '\\\\\\\\')", "a\\b"),
    ("REGEXP_REPLACE('abc', r'b*', '-')", "-a-c-"),
    ("REGEXP_REPLACE('Ünïcödé', r'[^a-z]', '_')", "_n_c_d_"),
    ("REGEXP_CONTAINS('Ünïcödé', r'^\\p{Lu}')", 1),
    ("REGEXP_CONTAINS(NULL, r'a')", None),
]


@pytest.mark.parametrize(("expression", "expected"), REGEX_CASES, ids=[c[0] for c in REGEX_CASES])
def test_regular_expression_functions_answer_as_bigquery(warehouse, expression: str, expected: object) -> None:
    assert query(warehouse, f"SELECT {expression} AS v") == [{"v": expected}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT REGEXP_EXTRACT(s, r'(a)(b)') FROM t", "has 2 capturing groups; at most 1"),
        ("SELECT REGEXP_REPLACE(s, r'a', '\\\\q') FROM t", "a backslash must be followed by a digit"),
        ("SELECT REGEXP_REPLACE(s, r'(a)', '\\\\2') FROM t", "refers to group 2"),
        ("SELECT REGEXP_EXTRACT(s, r'a', 0) FROM t", "position and occurrence must be at least 1"),
    ],
)
def test_regular_expression_misuse_is_an_error_with_bigquerys_reason(warehouse, sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        query(warehouse, sql)


def test_the_deadline_interrupts_fetching_and_counting_rows(warehouse: SqliteWarehouse) -> None:
    with pytest.raises(QueryError, match=r"timed out after 0.5 s \(QUERY_TIMEOUT_S\)"):
        query(warehouse, INFINITE + "SELECT x FROM n", timeout_s=0.5, limit=20)
    with pytest.raises(QueryError, match=r"timed out after 0.5 s"):
        query(warehouse, INFINITE + "SELECT x FROM n", timeout_s=0.5, limit=None)


def test_a_python_function_does_not_start_past_the_deadline(path: Path) -> None:
    conn = connect_readonly(str(path), NOW)
    try:
        conn.deadline = 0  # long past: the progress handler has not fired yet in so short a statement
        with pytest.raises(sqlite3.OperationalError, match="user-defined function raised exception"):
            conn.execute("SELECT regexp('a', 'a')").fetchall()
        conn.deadline = float("inf")
        assert conn.execute("SELECT regexp('a', 'a')").fetchall() == [(1,)]
    finally:
        conn.close()


def test_the_deadline_stops_a_query_whose_rows_each_call_python(warehouse: SqliteWarehouse) -> None:
    slow_rows = INFINITE + "SELECT REGEXP_REPLACE(REPEAT('ab', 100000), 'b', 'c') AS v FROM n"
    with pytest.raises(QueryError, match=r"timed out after 0\.5 s"):
        query(warehouse, slow_rows, timeout_s=0.5)


def test_an_aggregate_gathers_a_bounded_amount_of_values(warehouse: SqliteWarehouse) -> None:
    big = INFINITE + "SELECT ARRAY_LENGTH(ARRAY_AGG(REPEAT('a', 100000) ORDER BY x DESC LIMIT 3)) AS n FROM n"
    with pytest.raises(QueryError, match="over more than 1,000,000 values or 16,777,216 bytes: aggregate fewer"):
        query(warehouse, big)


def test_an_ordered_aggregate_does_not_sort_past_the_deadline(path: Path) -> None:
    spec = '{"distinct": false, "ignore_nulls": false, "limit": null, "order": [[true, false]]}'
    conn = connect_readonly(str(path), NOW)
    try:
        assert conn.execute(f"SELECT bq_array_agg('{spec}', id, id) FROM t").fetchone() == ("[3,2,1]",)
        conn.deadline = 0  # long past: the sort (one long Python call) is not started
        with pytest.raises(sqlite3.OperationalError, match="'finalize' method raised error"):
            conn.execute(f"SELECT bq_array_agg('{spec}', id, id) FROM t").fetchone()
    finally:
        conn.close()
