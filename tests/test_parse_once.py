"""A run parses each check's SQL once, when the registry row is read; the warehouse takes that tree."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import pytest

from anomaly_monitor.readonly import read_only_error, take_parsed
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses.clock import _BIGQUERY

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
TABLES = """
CREATE TABLE orders (id INTEGER, amount REAL, created_at TEXT);
INSERT INTO orders VALUES (1, 10.0, '2026-11-23 08:00:00'), (2, -5.0, '2026-11-22 08:00:00');
"""
CHECKS = [
    {"name": "negative", "sql": "SELECT id FROM orders WHERE amount < 0"},
    {"name": "recent", "type": "threshold", "min": "1", "sql": "SELECT COUNT(*) AS value FROM orders "
     "WHERE created_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)"},
    {"name": "by_day", "sql": "SELECT DATE(created_at) AS d, COUNT(*) AS n FROM orders GROUP BY ALL HAVING n > 5"},
    {"name": "disabled", "enabled": "FALSE", "sql": "SELECT id FROM orders WHERE id > 100"},
]  # fmt: skip


@pytest.fixture
def bigquery_parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts what sqlglot's BigQuery parser is asked to parse (a spy on the library: it still parses)."""
    parser = type(_BIGQUERY.parser())
    parse = parser.parse
    seen: Counter[str] = Counter()

    def counting(self, raw_tokens, sql: str | None = None):
        seen[sql or ""] += 1
        return parse(self, raw_tokens, sql)

    monkeypatch.setattr(parser, "parse", counting)
    return seen


def test_a_run_parses_each_checks_sql_once(tmp_path, warehouse, registry, bigquery_parses: Counter[str]) -> None:
    marker = f" -- {uuid.uuid4().hex}"  # texts no earlier test parsed: the caches by text start cold
    checks = [dict(check, sql=check["sql"] + marker) for check in CHECKS]
    settings = Settings(
        checks_source=str(registry(checks)),
        warehouse_url=f"sqlite:///{warehouse(TABLES)}",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
    )
    for run in range(2):
        bigquery_parses.clear()
        report = execute(settings, RunOptions(now=NOW, dry_run=True))
        statuses = {result.name: str(result.status) for result in report.results}
        assert statuses == {"negative": "alert", "recent": "ok", "by_day": "ok", "disabled": "skipped"}, run
        if run == 0:  # parsed by the registry's guard, and the warehouse took those trees
            assert bigquery_parses == Counter({check["sql"]: 1 for check in checks})
            assert all(take_parsed(check["sql"]) is None for check in checks[:3])
        else:  # verdicts and translations are cached by text: at most once again
            assert set(bigquery_parses) <= {check["sql"] for check in checks}
            assert max(bigquery_parses.values(), default=0) <= 1


def test_the_guards_tree_is_handed_over_once() -> None:
    sql = "SELECT 42 AS answer -- handed over once"
    assert read_only_error(sql) is None
    tree = take_parsed(sql)
    assert tree is not None and tree.sql("bigquery") == "SELECT 42 AS answer /* handed over once */"
    assert take_parsed(sql) is None
    assert read_only_error("DELETE FROM t") is not None and take_parsed("DELETE FROM t") is None


def test_kept_trees_stay_within_their_budget() -> None:
    first = "SELECT 1 AS x -- " + "a" * 20_000
    assert read_only_error(first) is None
    for n in range(15):  # 300,000 more characters than the first: it is dropped, the newest are kept
        assert read_only_error(f"SELECT {n} AS x -- " + "b" * 20_000) is None
    assert take_parsed(first) is None
    assert take_parsed("SELECT 14 AS x -- " + "b" * 20_000) is not None
