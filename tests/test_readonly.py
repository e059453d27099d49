"""Only a single read-only BigQuery SELECT gets past the guard; everything else is refused with a reason."""

import pytest

from anomaly_monitor.readonly import read_only_error

ACCEPTED = [
    "SELECT 1",
    "SELECT 1;",
    "  select id from `proj.ds.orders` where amount > 10 ;  ",
    "WITH recent AS (SELECT * FROM ds.t WHERE ts > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)) "
    "SELECT COUNT(*) AS value FROM recent",
    "SELECT 1 AS a UNION ALL SELECT 2",
    "(SELECT 1) UNION DISTINCT (SELECT 2)",
    "SELECT * FROM t WHERE x IN (SELECT y FROM u) QUALIFY ROW_NUMBER() OVER (PARTITION BY x ORDER BY y) = 1",
    "SELECT ';' AS semicolon_in_a_string, 'DELETE FROM t' AS not_a_statement",
    "SELECT 1 -- a trailing comment",
    "/* leading comment */ SELECT 1",
    "SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_single_select_is_accepted(sql: str) -> None:
    assert read_only_error(sql) is None


REFUSED = [
    ("", "SQL is empty"),
    ("   \n ", "SQL is empty"),
    ("-- just a comment", "SQL is empty"),
    (";", "SQL is empty"),
    ("SELEC 1", "SQL does not parse: Invalid expression / Unexpected token at line 1, column 7"),
    ("SELECT 'unterminated", "SQL does not parse"),
    ("SELECT * FROM (DELETE FROM t)", "SQL does not parse"),
    ("SELECT 1; DELETE FROM t WHERE TRUE", "only one statement is allowed, found 2 (SELECT, DELETE)"),
    ("SELECT 1; SELECT 2", "only one statement is allowed, found 2 (SELECT, SELECT)"),
    ("CREATE TEMP FUNCTION f(x INT64) AS (x); SELECT f(1)", "only one statement is allowed, found 2"),
    ("BEGIN SELECT 1; END", "only one statement is allowed, found 2"),
    ("DELETE FROM t WHERE TRUE", "only SELECT is allowed, found DELETE"),
    ("UPDATE t SET a = 1 WHERE TRUE", "only SELECT is allowed, found UPDATE"),
    ("INSERT INTO t (a) SELECT 1", "only SELECT is allowed, found INSERT"),
    ("MERGE t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "only SELECT is allowed, found MERGE"),
    ("CREATE TABLE x AS SELECT 1", "only SELECT is allowed, found CREATE TABLE"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", "only SELECT is allowed, found CREATE VIEW"),
    ("DROP TABLE x", "only SELECT is allowed, found DROP TABLE"),
    ("ALTER TABLE t ADD COLUMN c INT64", "only SELECT is allowed, found ALTER"),
    ("TRUNCATE TABLE t", "only SELECT is allowed, found TRUNCATE TABLE"),
    ("EXPORT DATA OPTIONS (uri = 'gs://b/*.csv', format = 'CSV') AS SELECT 1", "found EXPORT DATA"),
    ("LOAD DATA INTO t FROM FILES (format = 'CSV', uris = ['gs://b/x.csv'])", "found LOAD DATA"),
    ("CALL ds.my_procedure()", "only SELECT is allowed, found CALL"),
    ("EXECUTE IMMEDIATE 'DROP TABLE t'", "only SELECT is allowed, found EXECUTE"),
    ("BEGIN TRANSACTION", "only SELECT is allowed, found BEGIN"),
    ("COMMIT", "only SELECT is allowed, found COMMIT"),
    ("ROLLBACK", "only SELECT is allowed, found ROLLBACK"),
    ("SET x = 1", "only SELECT is allowed, found SET"),
    ("DECLARE x INT64 DEFAULT 1", "only SELECT is allowed, found DECLARE"),
    ("GRANT `roles/bigquery.dataViewer` ON TABLE t TO 'user:a@example.com'", "found GRANT"),
    ("REVOKE `roles/bigquery.dataViewer` ON TABLE t FROM 'user:a@example.com'", "found REVOKE"),
    ("ASSERT (SELECT COUNT(*) FROM t) > 0", "only SELECT is allowed, found ASSERT"),
    ("WITH x AS (INSERT INTO t VALUES (1)) SELECT 1", "DML/DDL inside the query (INSERT in a CTE) is not allowed"),
]


@pytest.mark.parametrize(("sql", "message"), REFUSED, ids=[r[0][:40] or "empty" for r in REFUSED])
def test_anything_but_one_select_is_refused_with_a_reason(sql: str, message: str) -> None:
    error = read_only_error(sql)
    assert error is not None
    assert message in error


def test_parse_error_message_is_short_and_single_line() -> None:
    error = read_only_error("SELECT (" + "a, " * 500)
    assert error is not None and error.startswith("SQL does not parse: ")
    assert "\n" not in error and len(error) < 200
