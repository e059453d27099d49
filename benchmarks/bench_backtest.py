"""How fast a backtest is on the demo warehouse, against doing the same by hand, in the same process.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_backtest.py [--series-days 90] [--rows-days 7]

- series: a backtest of `orders_hourly` (hourly ticks) fetches the series in a few queries and judges every tick;
  the baseline queries and judges each tick on its own (measured on a sample of ticks, scaled to all of them).
- rows: a backtest of `duplicate_transactions_24h` (hourly ticks) runs its queries on one connection; the
  baseline is one `run --check NAME --now TICK --dry-run` per tick.

Prints seconds and ratios against the baseline measured in the same run: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import init_db
from anomaly_monitor.backtest import BacktestOptions
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.runner import RunOptions, evaluate
from anomaly_monitor.schedule import ticks as cron_ticks
from anomaly_monitor.service import backtest, execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources import open_source
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
SAMPLE = 48  # ticks timed one by one for the series baseline
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series-days", type=int, default=90)
    parser.add_argument("--rows-days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "warehouse.db"
        with sqlite3.connect(db) as conn:
            init_db.populate(conn, NOW)
        settings = Settings(warehouse_url=f"sqlite:///{db}", state_url=f"sqlite:///{Path(folder) / 'state.db'}")
        checks = {c.name: c for c in parse_registry(open_source(settings.checks_source, settings).read_rows()).checks}

        start = NOW - dt.timedelta(days=args.series_days)
        replay, seconds = timed(lambda: backtest(settings, BacktestOptions("orders_hourly", start, NOW)))
        ticks = replay.ticks
        sample = ticks[:: max(len(ticks) // SAMPLE, 1)]
        warehouse = SqliteWarehouse(db)
        with warehouse.session() as session:
            _, by_hand = timed(lambda: [evaluate(checks["orders_hourly"], session, settings, t, []) for t in sample])
        baseline = by_hand / len(sample) * len(ticks)
        print(f"series: orders_hourly, {args.series_days} days, {len(ticks):,} hourly ticks, {replay.queries} queries")
        print(f"  backtest {seconds:.1f} s; each tick queried and judged: ~{baseline:.1f} s "
              f"(from {len(sample)} ticks); ratio {seconds / baseline:.2f} (target: a few seconds)")  # fmt: skip

        start = NOW - dt.timedelta(days=args.rows_days)
        options = BacktestOptions("duplicate_transactions_24h", start, NOW)
        replay, seconds = timed(lambda: backtest(settings, options))
        ticks = cron_ticks(checks["duplicate_transactions_24h"].schedule, "UTC", start, NOW, 10_000)
        one_by_one = RunOptions(checks=("duplicate_transactions_24h",), dry_run=True, force=True)
        _, baseline = timed(lambda: [execute(settings, dataclasses.replace(one_by_one, now=t)) for t in ticks])
        print(f"rows: duplicate_transactions_24h, {args.rows_days} days, {len(ticks)} ticks, {replay.queries} queries "
              f"on one connection")  # fmt: skip
        print(f"  backtest {seconds:.1f} s; a dry run per tick: {baseline:.1f} s; ratio {seconds / baseline:.2f} "
              f"(target: every tick's query in this process, on one connection)")  # fmt: skip


if __name__ == "__main__":
    main()
