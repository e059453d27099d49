"""How a run scales with MAX_WORKERS: a run of N checks against one taken one at a time, in the same process.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_run.py [--checks 16] [--rows 200000]

Prints ratios against the baseline measured in the same run (MAX_WORKERS=1), never absolute targets:
these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
CHECK_SQL = (
    "SELECT merchant_id, COUNTIF(status = 'failed') AS failed, COUNT(*) AS total FROM payments"
    " WHERE created_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {days} DAY)"
    " GROUP BY merchant_id HAVING SAFE_DIVIDE(COUNTIF(status = 'failed'), COUNT(*)) > 0.5"
)


def build(folder: Path, rows: int, checks: int) -> Settings:
    rng = random.Random(7)
    db = folder / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE payments (id INTEGER, merchant_id INTEGER, status TEXT, created_at TEXT)")
        start = NOW - dt.timedelta(days=60)
        conn.executemany(
            "INSERT INTO payments VALUES (?, ?, ?, ?)",
            (
                (
                    i,
                    rng.randrange(50),
                    "failed" if rng.random() < 0.03 else "ok",
                    (start + dt.timedelta(seconds=i * 60 * 60 * 24 * 60 / rows)).strftime("%Y-%m-%d %H:%M:%S"),
                )
                for i in range(rows)
            ),
        )
    registry = folder / "checks.csv"
    with registry.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "sql"])
        writer.writerows([f"failed_share_{n}", CHECK_SQL.format(days=30 + n)] for n in range(checks))
    return Settings(
        checks_source=str(registry), warehouse_url=f"sqlite:///{db}", state_url=f"sqlite:///{folder / 'state.db'}"
    )


def timed(settings: Settings, workers: int, repeat: int) -> float:
    settings = dataclasses.replace(settings, max_workers=workers)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        report = execute(settings, RunOptions(force=True, dry_run=True, now=NOW))
        times.append(time.perf_counter() - start)
        assert report.summary()["error"] == 0, [r.message for r in report.results if r.status == "error"]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = build(Path(tmp), args.rows, args.checks)
        baseline = timed(settings, 1, args.repeat)
        for workers in (2, 8):
            ratio = timed(settings, workers, args.repeat) / baseline
            ideal = 1 / min(workers, os.cpu_count() or 1)  # SQLite's work is the process's own: one CPU a query
            print(f"run of {args.checks} checks, MAX_WORKERS={workers}: {ratio:.2f}x the time of MAX_WORKERS=1 "
                  f"(ideal on {os.cpu_count()} CPUs: {ideal:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
