"""Thousands of cheap checks in one run: the product's overhead per check on top of SQLite, and its memory.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_scale.py [--checks 5000] [--small 500] [--large 20000]

- overhead: a real run (registry, state read, queries, judgement, history written, the JSON document) of N
  cheap checks, each with its own SQL text (so nothing is cached from an earlier run: every text is parsed and
  translated), against sqlite3 running the same translated statements, in the same process, alternately; the
  best of three each counts. Target: at most 1 ms per check.
- memory: the run's peak of Python allocations (tracemalloc) with the small and the large registry, the
  process's caches of guard verdicts and translations emptied first (what the run adds to them counts).
  tracemalloc rather than RSS: it counts what the run holds, exactly and repeatably, whereas RSS also moves with the
  allocator's arenas (memory freed is not returned to the system), the imports and SQLite's page cache
  (bounded by its cache size, not by the checks). Target: the large run at most 10 MB above the small one.
- the largest registry completes, every check ok.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

from anomaly_monitor.models import Status
from anomaly_monitor.readonly import read_only_error
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses.sqlite_connection import connect_readonly
from anomaly_monitor.warehouses.sqlite_dialect import translate

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
TARGET_MS, TARGET_MB = 1.0, 10.0
KINDS = ("card", "bank", "wallet", "voucher", "crypto")
CHECKS = (  # (type, min, SQL with {n}: each check's text differs)
    ("rows", "", "SELECT id, amount FROM payments WHERE kind = '{kind}' AND amount > {n} + 100000"),
    ("threshold", "0", "SELECT COUNT(*) AS value FROM payments WHERE kind = '{kind}' AND merchant_id = {n} % 50"),
    (
        "threshold",
        "0",
        "SELECT COALESCE(SAFE_DIVIDE(COUNTIF(status = 'failed'), COUNT(*)), 0) AS value FROM payments"
        " WHERE created_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {days} HOUR) AND merchant_id = {n} % 50",
    ),
)


def build_warehouse(folder: Path, rows: int = 2_000) -> Path:
    rng = random.Random(7)
    db = folder / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE payments (id INTEGER, merchant_id INTEGER, kind TEXT, status TEXT, amount REAL,"
                     " created_at TEXT)")  # fmt: skip
        conn.executemany(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    rng.randrange(50),
                    rng.choice(KINDS),
                    "failed" if rng.random() < 0.03 else "ok",
                    round(rng.uniform(1, 500), 2),
                    (NOW - dt.timedelta(minutes=i * 7)).strftime("%Y-%m-%d %H:%M:%S"),
                )
                for i in range(rows)
            ),
        )
    conn.close()
    return db


def build_registry(folder: Path, checks: int, tag: str) -> Path:
    """`checks` checks whose texts no earlier registry of this process used (`tag` differs per registry)."""
    registry = folder / f"checks-{tag}.csv"
    with registry.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "type", "min", "sql"])
        for n in range(checks):
            kind, low, sql = CHECKS[n % len(CHECKS)]
            text = sql.format(n=n, kind=KINDS[n % len(KINDS)], days=n % 48 + 1) + f" -- {tag}"
            writer.writerow([f"check_{n:05d}", kind, low, text])
    return registry


def product_run(warehouse: Path, registry: Path, state: Path) -> tuple[float, list[str]]:
    """Seconds for one run as the CLI does it (with its JSON document), and the statuses."""
    settings = Settings(
        checks_source=str(registry), warehouse_url=f"sqlite:///{warehouse}", state_url=f"sqlite:///{state}"
    )
    state.unlink(missing_ok=True)
    started = time.perf_counter()
    report = execute(settings, RunOptions(force=True, now=NOW))
    with open(os.devnull, "w") as out:
        out.writelines(report.json_text())
    return time.perf_counter() - started, [str(r.status) for r in report.results]


def sqlite_run(warehouse: Path, registry: Path) -> float:
    """Seconds for sqlite3 to run the registry's translated statements (translated beforehand), fetching every
    row, on one connection with the functions they call and nothing else (no authorizer, no progress handler)."""
    with registry.open(newline="") as f:
        statements = [translate(row["sql"]).sql for row in csv.DictReader(f)]
    conn = connect_readonly(str(warehouse), NOW)
    conn.set_authorizer(None)
    conn.set_progress_handler(None, 0)
    started = time.perf_counter()
    for statement in statements:
        conn.execute(statement).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def traced_peak(warehouse: Path, registry: Path, state: Path) -> float:
    """The run's peak, counting what its checks add to the process's caches (guard verdicts and translations,
    emptied first: the figure does not depend on what earlier runs left there)."""
    read_only_error.cache_clear()
    translate.cache_clear()
    tracemalloc.start()
    try:
        product_run(warehouse, registry, state)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5_000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warehouse, state = build_warehouse(folder), folder / "state.db"
        product_run(warehouse, build_registry(folder, 50, "warm-up"), state)  # imports, first connections

        products, engines = [], []
        for attempt in range(args.repeat):
            registry = build_registry(folder, args.checks, f"cold-{attempt}")
            seconds, statuses = product_run(warehouse, registry, state)
            assert set(statuses) <= {"ok", "alert"}, sorted(set(statuses))
            products.append(seconds)
            engines.append(sqlite_run(warehouse, registry))
        warm, _ = product_run(warehouse, registry, state)  # the same texts again, as a warm function instance
        product, engine = min(products), min(engines)
        per_check = (product - engine) / args.checks * 1000
        print(f"{args.checks:,} cheap checks, each its own SQL: run {product:.2f} s, sqlite3 alone {engine:.2f} s "
              f"({engine / args.checks * 1000:.2f} ms a check): overhead {per_check:.2f} ms a check "
              f"(target at most {TARGET_MS:g}); the same registry again (parsed and translated already): "
              f"{(warm - engine) / args.checks * 1000:.2f} ms a check")  # fmt: skip

        small = traced_peak(warehouse, build_registry(folder, args.small, "memory-small"), state)
        large = traced_peak(warehouse, build_registry(folder, args.checks, "memory-large"), state)
        print(f"memory (tracemalloc peak of the run): {args.small:,} checks {small:.1f} MB, {args.checks:,} checks "
              f"{large:.1f} MB: {large - small:+.1f} MB (target at most {TARGET_MB:g})")  # fmt: skip

        seconds, statuses = product_run(warehouse, build_registry(folder, args.large, "largest"), state)
        done = sum(s in (Status.OK, Status.ALERT) for s in statuses)
        print(f"{args.large:,} checks in one run: {done:,} ran to ok or alert in {seconds:.1f} s")


if __name__ == "__main__":
    main()
