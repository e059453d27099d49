"""Time is exact: --now stays within 1970-2999, and every timestamp in the state store reads back."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from conftest import NOW
from test_runner import TABLES, cli

from anomaly_monitor.models import HistoryRecord, Status
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.state.sqlite import SqliteStateStore

HOURLY = {"name": "hourly", "sql": "SELECT 1 AS x WHERE 1 = 0", "schedule": "0 * * * *"}


@pytest.fixture
def settings(tmp_path: Path, warehouse, registry) -> Settings:
    return Settings(
        checks_source=str(registry([HOURLY])),
        warehouse_url=f"sqlite:///{warehouse(TABLES)}",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
    )


def record(at: dt.datetime) -> HistoryRecord:
    return HistoryRecord("r1", "hourly", at, Status.OK, 1.0, 0, "", 1, None, False, None, None)


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("now", ["0226-03-29T10:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "3000-01-01"])
def test_a_now_outside_1970_to_2999_is_a_bad_option(settings: Settings, command: str, now: str) -> None:
    args = ["--checks", settings.checks_source, "--warehouse", settings.warehouse_url]
    done = cli(command, "--now", now, *args)
    assert done.returncode == 3, done.stdout
    assert f"{now!r} is not between 1970 and 2999" in done.stderr
    assert not Path(settings.state_url.removeprefix("sqlite:///")).exists()  # nothing was recorded


@pytest.mark.parametrize("now", ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59.999999Z"])
def test_the_first_and_last_allowed_moments_run_and_record(settings: Settings, now: str) -> None:
    args = ["--checks", settings.checks_source, "--warehouse", settings.warehouse_url, "--state", settings.state_url]
    assert cli("run", "--now", now, *args).returncode == 0
    assert cli("run", *args).returncode == 0  # a later run reads that row back


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(226, 3, 29, 10, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ],
)
def test_sqlite_state_timestamps_read_back_whatever_the_year(tmp_path: Path, at: dt.datetime) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    store.append([record(at)])
    back = store.latest(["hourly"], at)["hourly"]
    assert back.checked_at == at and back.checked_at.tzinfo == dt.UTC


def test_a_row_with_an_unpadded_year_from_an_older_version_still_reads(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    store.append([record(NOW)])
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE check_results SET checked_at = '226-03-29 10:00:00.000000'")
    back = store.latest(["hourly"], dt.datetime(2999, 1, 1, tzinfo=dt.UTC))["hourly"]
    assert back.checked_at == dt.datetime(226, 3, 29, 10, tzinfo=dt.UTC)


def test_a_run_recorded_in_the_future_does_not_silence_the_check(settings: Settings) -> None:
    future = execute(settings, RunOptions(now=dt.datetime(2999, 1, 1, tzinfo=dt.UTC)))
    assert future.results[0].status is Status.OK
    today = execute(settings, RunOptions(now=NOW))
    assert today.results[0].status is Status.OK, today.results[0].message  # due by its own schedule
    again = execute(settings, RunOptions(now=NOW + dt.timedelta(minutes=5)))
    assert again.results[0].status is Status.SKIPPED
