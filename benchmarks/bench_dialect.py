"""Date-heavy BigQuery checks translated to SQLite, timed against the same questions hand-written in SQLite.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_dialect.py [--rows 1000000] [--repeats 5]

Each check runs translated and hand-written, alternately, on the same connection and file, so load from other
processes hits both alike; the best time of each counts. Prints each check's ratio and the overall ratio (total
translated time / total hand-written time) beside the targets: overall at most 1.2, no check above 1.5.
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from anomaly_monitor.warehouses.sqlite_connection import connect_readonly
from anomaly_monitor.warehouses.sqlite_dialect import to_sqlite

NOW = datetime.datetime(2025, 10, 16, 12, 0, tzinfo=datetime.UTC)
TARGET_OVERALL, TARGET_EACH = 1.2, 1.5

# name: (BigQuery SQL as an analyst writes it, what someone fluent in SQLite writes relying on the stored text)
CHECKS = {
    "hourly_profile": (
        """SELECT EXTRACT(HOUR FROM created_at) AS hour, COUNT(*) AS n, AVG(amount) AS avg_amount,
                  COUNTIF(TIMESTAMP_DIFF(settled_at, created_at, SECOND) > 7 * 24 * 3600) AS late
           FROM `proj.shop.payments`
           WHERE TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), created_at, DAY) < 60
             AND DATE_TRUNC(DATE(created_at), MONTH) >= '2025-09-01'
             AND EXTRACT(DAYOFWEEK FROM created_at) BETWEEN 2 AND 6
           GROUP BY hour ORDER BY hour""",
        """SELECT CAST(strftime('%H', created_at) AS INTEGER) AS hour, COUNT(*) AS n, AVG(amount) AS avg_amount,
                  SUM((unixepoch(settled_at) - unixepoch(created_at)) > 7 * 24 * 3600) AS late
           FROM payments
           WHERE julianday('2025-10-16 12:00:00') - julianday(created_at) < 60
             AND date(created_at, 'start of month') >= '2025-09-01'
             AND strftime('%w', created_at) BETWEEN '1' AND '5'
           GROUP BY hour ORDER BY hour""",
    ),
    "daily_last_30d": (
        """SELECT DATE(created_at) AS day, COUNT(*) AS n FROM payments
           WHERE created_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY) GROUP BY day ORDER BY day""",
        """SELECT date(created_at) AS day, COUNT(*) AS n FROM payments
           WHERE created_at >= '2025-09-16 12:00:00' GROUP BY day ORDER BY day""",
    ),
    "weekly": (
        "SELECT DATE_TRUNC(DATE(created_at), WEEK) AS week, SUM(amount) AS total FROM payments GROUP BY 1 ORDER BY 1",
        "SELECT date(created_at, '-6 days', 'weekday 0') AS week, SUM(amount) AS total FROM payments GROUP BY 1 "
        "ORDER BY 1",
    ),
    "monthly": (
        "SELECT FORMAT_TIMESTAMP('%Y-%m', created_at) AS month, COUNT(*) AS n FROM payments GROUP BY 1 ORDER BY 1",
        "SELECT strftime('%Y-%m', created_at) AS month, COUNT(*) AS n FROM payments GROUP BY 1 ORDER BY 1",
    ),
    "settle_minutes": (
        "SELECT AVG(TIMESTAMP_DIFF(settled_at, created_at, MINUTE)) AS value FROM payments",
        "SELECT AVG((unixepoch(settled_at) - unixepoch(created_at)) / 60) AS value FROM payments",
    ),
    "late_48h": (
        "SELECT COUNTIF(TIMESTAMP_DIFF(settled_at, created_at, HOUR) > 48) AS value FROM payments",
        "SELECT COUNT(*) AS value FROM payments WHERE unixepoch(settled_at) - unixepoch(created_at) >= 49 * 3600",
    ),
    "day_of_week": (
        "SELECT EXTRACT(DAYOFWEEK FROM created_at) AS dow, COUNT(*) AS n FROM payments GROUP BY dow ORDER BY dow",
        "SELECT CAST(strftime('%w', created_at) AS INTEGER) + 1 AS dow, COUNT(*) AS n FROM payments GROUP BY dow "
        "ORDER BY dow",
    ),
    "settled_3_days_later": (
        "SELECT COUNTIF(DATE_DIFF(DATE(settled_at), DATE(created_at), DAY) >= 3) AS value FROM payments",
        "SELECT COUNT(*) AS value FROM payments "
        "WHERE julianday(settled_at, 'start of day') - julianday(created_at, 'start of day') >= 3",
    ),
    "hourly_series": (
        "SELECT TIMESTAMP_TRUNC(created_at, HOUR) AS ts, COUNT(*) AS value FROM payments "
        "WHERE created_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 14 DAY) GROUP BY ts ORDER BY ts",
        "SELECT strftime('%Y-%m-%d %H:00:00', created_at) AS ts, COUNT(*) AS value FROM payments "
        "WHERE created_at >= '2025-10-02 12:00:00' GROUP BY ts ORDER BY ts",
    ),
    "last_7_days": (
        "SELECT COUNT(*) AS value FROM payments "
        "WHERE DATE(created_at) BETWEEN DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY) AND CURRENT_DATE()",
        "SELECT COUNT(*) AS value FROM payments WHERE date(created_at) BETWEEN '2025-10-09' AND '2025-10-16'",
    ),
    "year_month": (
        "SELECT EXTRACT(YEAR FROM created_at) * 100 + EXTRACT(MONTH FROM created_at) AS ym, COUNT(*) AS n "
        "FROM payments GROUP BY ym ORDER BY ym",
        "SELECT CAST(strftime('%Y', created_at) AS INTEGER) * 100 + CAST(strftime('%m', created_at) AS INTEGER) AS ym, "
        "COUNT(*) AS n FROM payments GROUP BY ym ORDER BY ym",
    ),
    "settled_after_a_week": (
        "SELECT COUNT(*) AS value FROM payments WHERE settled_at > TIMESTAMP_ADD(created_at, INTERVAL 7 DAY)",
        "SELECT COUNT(*) AS value FROM payments WHERE settled_at > datetime(created_at, '+7 days')",
    ),
}


def build(path: Path, rows: int) -> None:
    rng = random.Random(7)
    start = datetime.datetime(2025, 6, 1)
    span = int((NOW.replace(tzinfo=None) - start).total_seconds())

    def row(i: int) -> tuple:
        created = start + datetime.timedelta(seconds=rng.randrange(span))
        settled = created + datetime.timedelta(seconds=rng.randrange(10 * 24 * 3600))
        return i, created.strftime("%Y-%m-%d %H:%M:%S"), settled.strftime("%Y-%m-%d %H:%M:%S"), rng.randrange(1, 500)

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE payments (id INTEGER, created_at TIMESTAMP, settled_at TIMESTAMP, amount INTEGER)")
        conn.executemany("INSERT INTO payments VALUES (?, ?, ?, ?)", (row(i) for i in range(rows)))
    conn.close()


def best_times(conn: sqlite3.Connection, queries: list[str], repeats: int) -> tuple[list[float], list[list]]:
    """Best wall time of each query; runs alternate so that load from other processes hits both alike."""
    best, results = [math.inf] * len(queries), [[] for _ in queries]
    for _ in range(repeats):
        for index, sql in enumerate(queries):
            started = time.perf_counter()
            results[index] = conn.execute(sql).fetchall()
            best[index] = min(best[index], time.perf_counter() - started)
    return best, results


def same(left: list, right: list) -> bool:
    return len(left) == len(right) and all(
        len(a) == len(b) and all(x == y or (isinstance(x, float) and math.isclose(x, y)) for x, y in zip(a, b))
        for a, b in zip(left, right)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    translated = {name: to_sqlite(bigquery) for name, (bigquery, _) in CHECKS.items()}
    translate_ms = (time.perf_counter() - started) * 1000
    totals = [0.0, 0.0]
    worst = 0.0
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        build(path, args.rows)
        conn = connect_readonly(str(path), NOW)
        print(f"rows: {args.rows:,}  checks: {len(CHECKS)}  translate (first, uncached): {translate_ms:.0f} ms")
        print(f"{'check':24} {'native ms':>10} {'translated ms':>14} {'ratio':>6}")
        for name, (_, native) in CHECKS.items():
            (native_s, translated_s), (native_rows, translated_rows) = best_times(
                conn, [native, translated[name]], args.repeats
            )
            if not same(native_rows, translated_rows):
                raise SystemExit(f"{name}: translated and hand-written queries disagree")
            totals[0] += native_s
            totals[1] += translated_s
            worst = max(worst, translated_s / native_s)
            print(f"{name:24} {native_s * 1000:10.0f} {translated_s * 1000:14.0f} {translated_s / native_s:6.2f}")
        conn.close()
    overall = totals[1] / totals[0]
    print(f"overall: {overall:.2f}x hand-written (target <= {TARGET_OVERALL})  ", end="")
    print(f"worst check: {worst:.2f}x (target <= {TARGET_EACH})")


if __name__ == "__main__":
    main()
