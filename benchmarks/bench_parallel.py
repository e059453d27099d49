"""Checks wait on BigQuery in parallel: N checks take about N / MAX_WORKERS x one check's latency.

    PYTHONPATH=functions .venv/bin/python benchmarks/bench_parallel.py [--delay 0.5] [--workers 8 16 32]

The real BigQuery client talks to the local emulator (tests/bq_emulator.py) through a proxy that holds every
request (job insert, results, ...) for --delay seconds, as a distant BigQuery would. One check alone gives the
latency of a check (its requests x the delay, plus the emulator's own time); then for each MAX_WORKERS value W a
run of 4 x W checks is timed against ceil(N / W) x that latency. Target: at most 1.3 x.
Needs the emulator's virtual environment (.venv-bqemu, built on first use from PyPI); skipped with a line saying
why when it cannot start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly_monitor.clients.bigquery import bigquery_client
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from tests import bq_emulator
from tests.local_files import write_registry
from tests.recording_proxy import recording

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
TARGET = 1.3
ROUNDS = 4  # each run has 4 x W checks: four rounds of W checks waiting at once


def build_dataset(emulator: bq_emulator.Emulator) -> str:
    dataset = f"bench_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(emulator.project, emulator.endpoint)
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.payments (id INT64, amount FLOAT64)").result()
    client.query(f"INSERT INTO {dataset}.payments VALUES (1, 10.5), (2, 20), (3, 30.25)").result()
    return dataset


def build_registry(folder: Path, checks: int, dataset: str) -> Path:
    sql = "SELECT COUNT(*) AS value FROM {dataset}.payments WHERE amount > {n}"
    rows = [
        {"name": f"check_{n:03d}", "type": "threshold", "min": "0", "sql": sql.format(dataset=dataset, n=n % 30)}
        for n in range(checks)
    ]
    return write_registry(folder / f"checks-{checks}.csv", rows)


def timed_run(registry: Path, state: Path, url: str, endpoint: str, workers: int) -> float:
    settings = Settings(
        checks_source=str(registry),
        warehouse_url=url,
        state_url=f"sqlite:///{state}",
        bigquery_api_endpoint=endpoint,
        max_workers=workers,
    )
    state.unlink(missing_ok=True)
    started = time.perf_counter()
    report = execute(settings, RunOptions(force=True, now=NOW))
    seconds = time.perf_counter() - started
    statuses = {str(r.status) for r in report.results}
    assert statuses == {"ok"}, [(r.name, r.message) for r in report.results if str(r.status) != "ok"][:3]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.5, help="seconds each request to BigQuery is held")
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({Settings().max_workers, 16, 32}))
    args = parser.parse_args()
    try:
        emulator = bq_emulator.start()
    except Exception as exc:  # no PyPI to build .venv-bqemu from, no DuckDB extension, ...
        print(f"parallel wait: skipped, the BigQuery emulator cannot start here ({type(exc).__name__}: {exc})")
        return
    dataset = build_dataset(emulator)
    url = f"bigquery://{emulator.project}/{dataset}"
    with tempfile.TemporaryDirectory() as tmp, recording(emulator.endpoint, args.delay) as proxy:
        folder = Path(tmp)
        state = folder / "state.db"
        one = build_registry(folder, 1, dataset)
        most = max(args.workers)  # the client built, as many connections open as the runs will use
        timed_run(build_registry(folder, most, dataset), state, url, proxy.url, most)
        before = len(proxy.requests)
        latency = min(timed_run(one, state, url, proxy.url, 1) for _ in range(3))
        calls = (len(proxy.requests) - before) // 3
        print(f"parallel wait: every BigQuery request held {args.delay:g} s; one check alone {latency:.2f} s "
              f"({calls} requests)")  # fmt: skip
        for workers in args.workers:
            checks = ROUNDS * workers
            seconds = timed_run(build_registry(folder, checks, dataset), state, url, proxy.url, workers)
            ideal = math.ceil(checks / workers) * latency
            print(f"  MAX_WORKERS={workers}: {checks} checks in {seconds:.2f} s, {seconds / ideal:.2f} x "
                  f"N / MAX_WORKERS x one check's latency ({ideal:.2f} s; target at most {TARGET:g})")  # fmt: skip


if __name__ == "__main__":
    main()
