"""Whatever SQL a registry row holds, the guard and the translator answer with a verdict or a clear error."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomaly_monitor.errors import QueryError
from anomaly_monitor.readonly import MAX_NESTING, UnsafeSql, parse_select, read_only_error
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.warehouses.sqlite_dialect import to_sqlite

BRACKETS = "SQL nests brackets more than 32 deep (line 1): simplify it, for instance with a WITH clause"
TOO_DEEP = "SQL is nested too deeply to parse: simplify it, for instance with a WITH clause"
DEEP = {
    "60 nested parentheses": ("SELECT " + "(" * 60 + "1" + ")" * 60, BRACKETS),
    "45 nested COALESCE": ("SELECT " + "COALESCE(" * 45 + "x" + ", 1)" * 45 + " FROM t", BRACKETS),
    "10,000 nested parentheses": ("SELECT " + "(" * 10_000 + "1" + ")" * 10_000, BRACKETS),
    "unbalanced 5,000 open parentheses": ("SELECT " + "(" * 5_000, BRACKETS),
    "60 nested subqueries": ("SELECT * FROM " + "(SELECT * FROM " * 60 + "t" + ")" * 60, BRACKETS),
    "60 nested arrays": ("SELECT " + "[" * 60 + "1" + "]" * 60, BRACKETS),
    "3,000 NOTs": ("SELECT 1 FROM t WHERE " + "NOT " * 3_000 + "x", TOO_DEEP),
    "1,000 nested CASEs": ("SELECT " + "CASE WHEN a THEN " * 1_000 + "1" + " END" * 1_000 + " FROM t", TOO_DEEP),
    "5,000 unary minuses": ("SELECT " + "- " * 5_000 + "1", TOO_DEEP),
}


@pytest.mark.parametrize(("sql", "reason"), DEEP.values(), ids=DEEP.keys())
def test_deeply_nested_sql_is_refused_with_a_reason_not_a_recursion_error(sql: str, reason: str) -> None:
    assert read_only_error(sql) == reason
    with pytest.raises(QueryError) as refused:
        to_sqlite(sql)
    assert str(refused.value) == reason


@pytest.mark.parametrize(("sql", "reason"), DEEP.values(), ids=DEEP.keys())
def test_deeply_nested_sql_makes_its_row_invalid_naming_sql(sql: str, reason: str) -> None:
    rows = [{"name": "deep", "sql": sql}, {"name": "fine", "sql": "SELECT 1"}]
    registry = parse_registry(rows)
    assert [c.name for c in registry.checks] == ["fine"]
    assert len(registry.invalid) == 1
    assert registry.invalid[0].message == f'checks row 2 (name "deep"): column "sql": {reason}'


def test_nesting_up_to_the_limit_is_accepted_and_translated() -> None:
    depth = MAX_NESTING - 2  # the function call and SELECT's own brackets
    sql = "SELECT " + "COALESCE(" * depth + "x" + ", 1)" * depth + " FROM t"
    assert read_only_error(sql) is None
    assert to_sqlite(sql).count("COALESCE") == depth


@pytest.mark.parametrize(
    "sql", ["SELECT * INTO newtab FROM t", "SELECT a INTO TEMP x FROM t", "WITH q AS (SELECT 1) SELECT * INTO n FROM q"]
)
def test_select_into_is_refused_as_a_write(sql: str) -> None:
    error = read_only_error(sql)
    assert error is not None and "INTO" in error and "may only read" in error


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT REGEXP_CONTAINS(s, r'(?=x)') FROM t", "invalid perl operator"),
        ("SELECT REGEXP_EXTRACT(s, '(a') FROM t", "missing )"),
        ("SELECT REGEXP_REPLACE(s, r'a{2000}', '') FROM t", "invalid repetition size"),
        ("SELECT * FROM t WHERE REGEXP_CONTAINS(s, r'\\1')", "invalid escape sequence"),
        ("SELECT REGEXP_EXTRACT_ALL(s, r'[z-a]') FROM t", "invalid character class range"),
        ("SELECT REGEXP_INSTR(s, r'x**') FROM t", "bad repetition operator"),
    ],
)
def test_a_literal_pattern_re2_refuses_is_invalid_with_re2s_reason(sql: str, reason: str) -> None:
    error = read_only_error(sql)
    assert error is not None and reason in error and "RE2" in error


def test_the_parsed_tree_is_the_one_select() -> None:
    tree = parse_select("WITH a AS (SELECT 1 AS x) SELECT x FROM a;")
    assert tree.sql("bigquery") == "WITH a AS (SELECT 1 AS x) SELECT x FROM a"
    with pytest.raises(UnsafeSql, match="only SELECT"):
        parse_select("DROP TABLE t")


# --- Generated SQL --------------------------------------------------------------------------------------------------

WORDS = [
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "HAVING", "LIMIT", "QUALIFY", "WITH", "AS", "UNION", "ALL",
    "DISTINCT", "INTO", "INSERT", "DELETE", "UPDATE", "CREATE", "DROP", "TABLE", "VALUES", "SET", "JOIN", "LEFT",
    "ON", "USING", "CASE", "WHEN", "THEN", "ELSE", "END", "AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "LIKE",
    "BETWEEN", "INTERVAL", "DAY", "HOUR", "MONTH", "WEEK", "OVER", "PARTITION", "ROWS", "UNNEST", "EXCEPT",
    "REPLACE", "STRUCT", "ARRAY", "CAST", "SAFE_CAST", "INT64", "STRING", "TIMESTAMP", "DATE", "COUNT", "SUM",
    "AVG", "MIN", "MAX", "COUNTIF", "COALESCE", "IF", "IFNULL", "DATE_TRUNC", "TIMESTAMP_DIFF", "TIMESTAMP_SUB",
    "DATE_ADD", "EXTRACT", "FORMAT_TIMESTAMP", "REGEXP_CONTAINS", "REGEXP_EXTRACT", "REGEXP_REPLACE", "STRING_AGG",
    "ARRAY_AGG", "ARRAY_LENGTH", "CURRENT_TIMESTAMP", "CURRENT_DATE", "SPLIT", "t", "u", "id", "ts", "d", "amount",
    "s", "x", "y",
]  # fmt: skip
PUNCTUATION = ["(", ")", "[", "]", ",", ";", ".", "*", "+", "-", "/", "=", "<", ">", "<=", "!=", "||", "`", "'", '"']
LITERALS = ["1", "0", "-1", "2.5", "1e308", "'a'", "''", "r'^(a+)+$'", "'2025-01-01'", "NULL", "`p.d.t`", "@x", "?"]
token_soup = st.lists(st.sampled_from(WORDS + PUNCTUATION + LITERALS), max_size=40).map(" ".join)


LEAVES = ["id", "amount", "s", "ts", "d", "1", "2.5", "'x'", "NULL", "TRUE", "CURRENT_TIMESTAMP()", "[1, 2]"]
WRAPPERS = [
    "({})", "NOT {}", "-{}", "COALESCE({}, 1)", "DATE_TRUNC({}, MONTH)", "TIMESTAMP_ADD({}, INTERVAL 1 DAY)",
    "CAST({} AS INT64)", "REGEXP_CONTAINS({}, r'a+')", "EXTRACT(DAYOFWEEK FROM {})", "(SELECT {} FROM t)",
    "CASE WHEN {} THEN 1 END", "ARRAY_LENGTH([{}])", "{} IN UNNEST([1, 2])", "STRING_AGG({}, ',')",
    "ARRAY_AGG({} IGNORE NULLS ORDER BY id DESC LIMIT 2)", "ARRAY_LENGTH(SPLIT({}))", "{} IN UNNEST(SPLIT(s))",
    "STRING_AGG(DISTINCT CAST({} AS STRING))",
]  # fmt: skip
OPERATORS = ["+", "*", "=", "<", "AND", "OR", "||", "IS NOT DISTINCT FROM"]
expression = st.deferred(
    lambda: st.one_of(
        st.sampled_from(LEAVES),
        st.tuples(st.sampled_from(WRAPPERS), expression).map(lambda p: p[0].format(p[1])),
        st.tuples(expression, st.sampled_from(OPERATORS), expression).map(" ".join),
    )
)


def nest(wrapper: str, times: int, inner: str) -> str:
    for _ in range(times):
        inner = wrapper.format(inner)
    return inner


# The same wrapper many times over: deep nesting, where parsers and translators recurse.
nested = st.builds(nest, st.sampled_from(WRAPPERS), st.integers(1, 120), expression)
SHAPES = [
    "SELECT {0} AS a FROM t WHERE {1}",
    "SELECT * EXCEPT (x) REPLACE ({0} AS y) FROM t WHERE {1}",
    "SELECT s, {0} AS a FROM t WHERE {1} GROUP BY ALL",
    "WITH w AS (SELECT {0} AS a, id FROM t) SELECT w.* EXCEPT (id) FROM w WHERE {1}",
    "SELECT {0} AS a FROM t WHERE {1} QUALIFY ROW_NUMBER() OVER (ORDER BY id) = 1",
]
queries = st.builds(
    lambda shape, a, b: shape.format(a, b), st.sampled_from(SHAPES), st.one_of(expression, nested), expression
)
# `make test` runs the same 150 examples of each every time (derandomized, no per-example deadline), so it stays
# bounded and never flaky; HYPOTHESIS_PROFILE=explore hunts with 2,000 random ones.
EXPLORE = os.environ.get("HYPOTHESIS_PROFILE") == "explore"
GENERATED = settings(
    max_examples=2000 if EXPLORE else 150,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def assert_verdict_or_clear_error(sql: str) -> None:
    verdict = read_only_error(sql)
    assert verdict is None or (isinstance(verdict, str) and verdict and "\n" not in verdict)
    try:
        translated = to_sqlite(sql)
    except QueryError as err:
        assert str(err)
    else:
        assert verdict is None and isinstance(translated, str)


@GENERATED
@given(st.text(max_size=200))
def test_any_text_gets_a_verdict_or_a_clear_error(sql: str) -> None:
    assert_verdict_or_clear_error(sql)


@GENERATED
@given(token_soup)
def test_any_token_soup_gets_a_verdict_or_a_clear_error(sql: str) -> None:
    assert_verdict_or_clear_error(sql)


@GENERATED
@given(queries)
def test_any_nesting_of_expressions_gets_a_verdict_or_a_clear_error(sql: str) -> None:
    assert_verdict_or_clear_error(sql)


@pytest.fixture(scope="module")
def tiny_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("guard") / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, amount REAL, s TEXT, ts TIMESTAMP, d DATE, x, y)")
        conn.execute("INSERT INTO t VALUES (1, 2.5, 'aaa', '2025-01-01 10:00:00', '2025-01-01', 1, 2)")
    conn.close()
    return path


@GENERATED
@given(sql=queries)
def test_generated_queries_that_pass_run_or_fail_as_a_query_error(tiny_warehouse: Path, sql: str) -> None:
    import datetime as dt

    from anomaly_monitor.warehouses.sqlite import SqliteWarehouse

    warehouse = SqliteWarehouse(tiny_warehouse)
    now = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    try:
        result = warehouse.query(sql, check_name="generated", limit=20, timeout_s=5, max_bytes=None, now=now)
    except QueryError as err:
        assert str(err)
    else:
        assert result.row_count <= 1


def test_nested_functions_that_repeat_their_argument_are_refused_before_the_translation_explodes() -> None:
    sql = "SELECT " + "CAST(" * 25 + "x" + " AS INT64)" * 25 + " FROM t"  # each level uses its argument 4 times
    assert read_only_error(sql) is None
    with pytest.raises(QueryError, match="translation of this query would be too large"):
        to_sqlite(sql)
    assert "CASE" in to_sqlite("SELECT " + "CAST(" * 3 + "x" + " AS INT64)" * 3 + " FROM t")
