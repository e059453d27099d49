"""No check holds a run past QUERY_TIMEOUT_S: the runner stops waiting, records the others and lets the next run in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from anomaly_monitor.deadline import run_all
from anomaly_monitor.models import Status
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from tests.cloud_fixtures import ORDERS_SCRIPT as TABLES
from tests.local_files import REPO

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def series_sql(points: int) -> str:
    """An hourly anomaly series of `points` rows: fetching and judging it takes seconds per 100,000 points."""
    return (
        f"WITH RECURSIVE n AS (SELECT 0 AS i UNION ALL SELECT i + 1 FROM n WHERE i < {points}) "
        "SELECT TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL i HOUR) AS ts, MOD(i, 24) AS value FROM n"
    )


QUICK = {"name": "quick", "sql": "SELECT 1 AS x WHERE 1 = 0"}


@pytest.fixture
def settings(tmp_path: Path, warehouse, registry):
    def make(rows, **overrides) -> Settings:
        base = Settings(
            checks_source=str(registry(rows)),
            warehouse_url=f"sqlite:///{warehouse(TABLES)}",
            state_url=f"sqlite:///{tmp_path / 'state.db'}",
        )
        return dataclasses.replace(base, **overrides)

    return make


def test_a_task_past_its_deadline_is_given_up_and_the_queue_moves_on() -> None:
    release = threading.Event()
    tasks = {"stuck": lambda: release.wait(60), **{f"t{i}": (lambda i=i: i) for i in range(5)}}
    try:
        # one worker: the queued tasks only start because the stuck one stops counting at its deadline
        results = run_all(tasks, max_workers=1, timeout_s=0.2)
    finally:
        release.set()
    assert results == {"stuck": None, "t0": 0, "t1": 1, "t2": 2, "t3": 3, "t4": 4}


def test_an_enormous_timeout_waits_rather_than_overflows() -> None:
    assert run_all({"quick": lambda: 1}, max_workers=1, timeout_s=1e300) == {"quick": 1}


def test_a_task_that_raises_re_raises_in_the_caller() -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        run_all({"broken": broken}, max_workers=2, timeout_s=5)


def test_a_large_anomaly_series_cannot_hold_the_run_past_its_deadline(settings) -> None:
    """The issue's case: fetching and judging a large series took 11.7 s under a 5 s timeout.

    Whichever step the deadline falls in (the query, the fetch the warehouse interrupts, or the judgement the
    runner stops waiting for: test_a_task_past_its_deadline_... pins that one), the check ends timed out."""
    big = {"name": "big_series", "type": "anomaly", "sql": series_sql(1_000_000)}
    report = execute(settings([big, QUICK], query_timeout_s=1), RunOptions(now=NOW))
    by_name = {r.name: r for r in report.results}
    assert by_name["big_series"].status is Status.ERROR
    assert by_name["big_series"].message.startswith("timed out after 1 s"), by_name["big_series"].message
    assert by_name["quick"].status is Status.OK
    assert report.finished_at - report.started_at < dt.timedelta(seconds=1 + 20)  # the series alone takes far longer


def cli_run(settings: Settings) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {"PYTHONPATH": str(REPO / "functions"), "QUERY_TIMEOUT_S": str(settings.query_timeout_s)}
    options = ["--checks", settings.checks_source, "--warehouse", settings.warehouse_url, "--state", settings.state_url]
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly_monitor", "run", "--json", "--force", *options],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_hung_run_blocks_the_next_one_no_longer_than_its_deadline(settings) -> None:
    """Two real processes: the first holds the run lock with a check that would take minutes."""
    hung = {"name": "hung", "type": "anomaly", "sql": series_sql(5_000_000)}
    config = settings([hung, QUICK], query_timeout_s=1)
    first = cli_run(config)
    for line in first.stderr:  # the first run logs its plan once it holds the lock
        if "checks due" in line:
            break
    started = time.monotonic()
    second = cli_run(config)
    second_out, _ = second.communicate(timeout=120)
    waited = time.monotonic() - started
    first_out, _ = first.communicate(timeout=120)
    assert waited < 1 + 20, f"the second run waited {waited:.1f} s"  # the hung check alone takes minutes
    for out, code in ((first_out, first.returncode), (second_out, second.returncode)):
        assert code == 2
        by_name = {c["name"]: c for c in json.loads(out)["checks"]}
        assert by_name["hung"]["message"].startswith("timed out after 1 s"), by_name["hung"]
        assert by_name["quick"]["status"] == "ok"
