"""Bytes a run's state queries scan on BigQuery: estimated from the table layout, and dry-run on the emulator.

    PYTHONPATH=functions:. .venv/bin/python benchmarks/state_scan.py [--checks 500] [--every-min 10] [--emulator]

BigQuery bills the columns a query reads over the partitions its filter keeps (clustering can only lower it).
The estimate sizes each column as BigQuery does (8 bytes for INT64/FLOAT64/TIMESTAMP, 1 for BOOL, 2 + length
for STRING, 0 for NULL) with the typical lengths below. With --emulator, the same queries are dry-run against
a state table the BigQuery emulator creates, to show they plan with their partition filter (the emulator's
byte counts are its own storage's, not BigQuery's).
"""

from __future__ import annotations

import argparse
import datetime as dt

from anomaly_monitor.state import bigquery as store
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA

FIXED = {"INT64": 8, "FLOAT64": 8, "TIMESTAMP": 8, "BOOL": 1}
# typical text lengths, and how often a column holds a value (an open incident's columns: 10 % of rows)
TEXT = {"run_id": 12, "check_name": 24, "status": 5, "message": 60, "slack_channel": 11, "slack_ts": 17}
TEXT |= {"incident_id": 12, "announced": 5, "cause": 12}
FILLED = {"slack_channel": 0.1, "slack_ts": 0.1, "incident_id": 0.1, "incident_start": 0.1, "announced": 0.1}
FILLED |= {"last_notice_at": 0.1, "cause": 0.01, "value": 0.5, "bytes_processed": 0.5}
POINT_COLUMNS = ("check_name", "checked_at", "status", "value")
MB = 1_000_000


def row_bytes(columns: list[str]) -> float:
    kinds = {name: kind for name, kind, _ in CHECK_RESULTS_SCHEMA}
    size = 0.0
    for name in columns:
        one = FIXED.get(kinds[name], 2 + TEXT.get(name, 10))
        size += one * FILLED.get(name, 1.0)
    return size


def estimate(checks: int, every_min: int) -> dict[str, float]:
    rows_per_day = checks * 24 * 60 / every_min
    everything = row_bytes([name for name, _, _ in CHECK_RESULTS_SCHEMA])
    points = row_bytes(list(POINT_COLUMNS))
    days = {
        "latest state (2-day window, + today's partial partition)": (store.LATEST_WINDOWS_DAYS[0] + 1, everything),
        "anomaly points (7-day window, + today)": (store.POINTS_WINDOWS_DAYS[0] + 1, points),
        "a year of history, all columns (what an unfiltered read would scan)": (365, everything),
        "before: the 90-day history query of every run": (90, everything),
    }
    return {label: d * rows_per_day * size for label, (d, size) in days.items()}


def dry_run_on_emulator() -> None:
    from google.cloud import bigquery

    from anomaly_monitor.clients.bigquery import bigquery_client
    from tests import bq_emulator

    try:
        emulator = bq_emulator.start()
    except Exception as exc:  # no PyPI to build .venv-bqemu from, no DuckDB extension, ...
        print(f"emulator dry run: skipped, the BigQuery emulator cannot start here ({type(exc).__name__}: {exc})")
        return
    client = bigquery_client(emulator.project, emulator.endpoint)
    client.create_dataset("state_scan", exists_ok=True)
    state = store.BigQueryStateStore(emulator.project, "state_scan", emulator.endpoint)
    now = dt.datetime.now(dt.UTC)
    state.latest(["a"], now)  # creates both tables
    config = bigquery.QueryJobConfig(
        dry_run=True,
        use_query_cache=False,
        query_parameters=[
            bigquery.ArrayQueryParameter("names", "STRING", ["a"]),
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - dt.timedelta(days=2)),
            bigquery.ScalarQueryParameter("now", "TIMESTAMP", now),
            bigquery.ScalarQueryParameter("limit", "INT64", 1000),
        ],
    )
    for label, sql in (
        ("latest", store.LATEST_SQL.format(table=state.table_id, reserved="")),
        ("points", store.POINTS_SQL.format(table=state.table_id)),
    ):
        job = client.query(sql, job_config=config)
        print(f"emulator dry run, {label}: plans fine, {job.total_bytes_processed} bytes (its own storage's figure)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--every-min", type=int, default=10)
    parser.add_argument("--emulator", action="store_true", help="also dry-run the queries on the BigQuery emulator")
    args = parser.parse_args()
    print(f"{args.checks} checks every {args.every_min} min: {args.checks * 24 * 60 // args.every_min:,} rows a day")
    scans = estimate(args.checks, args.every_min)
    for label, scanned in scans.items():
        print(f"  {scanned / MB:10,.1f} MB  {label}")
    run, before = sum(list(scans.values())[:2]), list(scans.values())[3]
    print(f"state scan: a run's state queries read {run / MB:,.1f} MB, {run / before:.3f} x the 90-day read of "
          f"before, the same with a year or ten of history (target: bounded by the checks, not the age)")  # fmt: skip
    if args.emulator:
        dry_run_on_emulator()


if __name__ == "__main__":
    main()
