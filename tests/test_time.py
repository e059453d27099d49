"""Time is exact: --now stays within 1970-2999, and every timestamp in the state store reads back."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from anomaly_monitor.models import HistoryRecord, Status
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.state.sqlite import SqliteStateStore
from tests.cloud_fixtures import ORDERS_SCRIPT as TABLES
from tests.servers import cli

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

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


LATEST_READING = "SELECT value FROM readings WHERE ts <= CURRENT_TIMESTAMP() ORDER BY ts DESC LIMIT 1"


def test_a_run_at_an_earlier_now_judges_a_single_value_against_the_values_before_it_only(
    tmp_path: Path, registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs recorded at later --now (a backfill, a demo) are not the past of a run at an earlier one: its single-value
    anomaly check is judged as if they had never run."""
    monkeypatch.chdir(tmp_path)  # the console notifier saves its charts under ./charts
    hours = range(-10, 11)
    with sqlite3.connect(tmp_path / "warehouse.db") as conn:
        conn.execute("CREATE TABLE readings (ts TEXT, value REAL)")
        readings = [(NOW + dt.timedelta(hours=h), 50.0 + h % 2 if h <= 0 else 5000.0 + h) for h in hours]
        conn.executemany("INSERT INTO readings VALUES (?, ?)", [(f"{t:%Y-%m-%d %H:%M:%S}", v) for t, v in readings])
    checks = registry([{"name": "level", "type": "anomaly", "sql": LATEST_READING}])

    def settings(state: str) -> Settings:
        warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
        return Settings(checks_source=str(checks), warehouse_url=warehouse, state_url=f"sqlite:///{tmp_path / state}")

    with_later, earlier_only = settings("with_later.db"), settings("earlier_only.db")
    for h in range(10, 0, -1):  # the later runs happen first, as when a day is replayed after the fact
        assert execute(with_later, RunOptions(now=NOW + dt.timedelta(hours=h))).results[0].value == 5000.0 + h
    for h in range(-10, 0):
        for state in (with_later, earlier_only):
            execute(state, RunOptions(now=NOW + dt.timedelta(hours=h)))
    [seen] = execute(with_later, RunOptions(now=NOW, dry_run=True)).results
    [alone] = execute(earlier_only, RunOptions(now=NOW, dry_run=True)).results
    assert (seen.status, seen.value, seen.expected, seen.message) == (alone.status, alone.value, alone.expected,
                                                                      alone.message)  # fmt: skip
    assert seen.status is Status.OK and seen.value == 50.0 and "comparable" not in seen.message, seen.message
