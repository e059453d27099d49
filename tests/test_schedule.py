"""Schedules: a check is due when a cron tick passed since its last recorded run, whenever the invocation comes."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from anomaly_monitor.models import Check, Status
from anomaly_monitor.runner import RunOptions, run
from anomaly_monitor.schedule import ScheduleError, check_schedule, is_due, next_tick
from tests.cloud_fixtures import local_backends

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


HOURLY = Check(name="hourly", sql="SELECT 1", schedule="0 * * * *")
LONDON_9AM = Check(name="morning", sql="SELECT 1", schedule="0 9 * * *", timezone="Europe/London")


def test_first_run_is_always_due() -> None:
    assert is_due(HOURLY, None, at("2026-11-23 09:17"))


def test_no_schedule_means_every_invocation() -> None:
    check = Check(name="always", sql="SELECT 1")
    assert is_due(check, at("2026-11-23 09:17"), at("2026-11-23 09:18"))


def test_a_delayed_invocation_still_runs_the_missed_tick_once() -> None:
    # ran at 08:00; the 09:00 invocation came 40 minutes late
    assert is_due(HOURLY, at("2026-11-23 08:00"), at("2026-11-23 09:40"))
    # and the regular invocation ten minutes later does not run it again for the same tick
    assert not is_due(HOURLY, at("2026-11-23 09:40"), at("2026-11-23 09:50"))


def test_a_retried_invocation_does_not_run_twice_for_one_tick() -> None:
    assert not is_due(HOURLY, at("2026-11-23 09:00:03"), at("2026-11-23 09:02"))
    assert is_due(HOURLY, at("2026-11-23 09:00:03"), at("2026-11-23 10:00"))


def test_a_run_exactly_on_the_tick_counts_for_that_tick() -> None:
    assert is_due(HOURLY, at("2026-11-23 08:00"), at("2026-11-23 09:00"))
    assert not is_due(HOURLY, at("2026-11-23 09:00"), at("2026-11-23 09:00:30"))


def test_local_time_follows_the_clock_change_in_london() -> None:
    # 29 March 2026: clocks go forward; 09:00 in London is 09:00 UTC the day before, 08:00 UTC that day
    assert next_tick(LONDON_9AM, at("2026-03-28 10:00")) == at("2026-03-29 08:00")
    ran = at("2026-03-28 09:00")
    assert not is_due(LONDON_9AM, ran, at("2026-03-29 07:59"))
    assert is_due(LONDON_9AM, ran, at("2026-03-29 08:00"))
    # 25 October 2026: clocks go back; 09:00 in London is 09:00 UTC again
    assert not is_due(LONDON_9AM, at("2026-10-24 08:00"), at("2026-10-25 08:30"))
    assert is_due(LONDON_9AM, at("2026-10-24 08:00"), at("2026-10-25 09:00"))


def statuses(report) -> dict[str, Status]:
    return {r.name: r.status for r in report.results}


CHECKS = (
    "hourly,rows,SELECT id FROM orders WHERE amount > 100,,,0 * * * *,,ops\n"
    "morning,rows,SELECT id FROM orders WHERE amount > 100,,,0 9 * * *,Europe/London,finance\n"
    "always,rows,SELECT id FROM orders WHERE amount > 100,,,,,ops\n"
)


def test_the_runner_skips_what_is_not_due_and_runs_it_after_the_next_tick(tmp_path) -> None:
    first = run(local_backends(tmp_path, CHECKS), RunOptions(now=at("2026-03-29 08:05")))
    assert statuses(first) == {"hourly": Status.OK, "morning": Status.OK, "always": Status.OK}

    retried = run(local_backends(tmp_path, CHECKS), RunOptions(now=at("2026-03-29 08:07")))
    assert statuses(retried) == {"hourly": Status.SKIPPED, "morning": Status.SKIPPED, "always": Status.OK}
    skipped = {r.name: r.message for r in retried.results}
    assert skipped["hourly"].startswith("not due: next run 2026-03-29T09:00")
    assert "2026-03-30T09:00+01:00" in skipped["morning"]  # shown in the check's own time zone

    late = run(local_backends(tmp_path, CHECKS), RunOptions(now=at("2026-03-29 09:45")))
    assert statuses(late) == {"hourly": Status.OK, "morning": Status.SKIPPED, "always": Status.OK}


def test_force_ignores_schedules_and_tags_select_checks(tmp_path) -> None:
    now = at("2026-03-29 08:05")
    run(local_backends(tmp_path, CHECKS), RunOptions(now=now))
    later = now + dt.timedelta(minutes=2)
    forced = run(local_backends(tmp_path, CHECKS), RunOptions(force=True, tags=("ops",), now=later))
    assert statuses(forced) == {"hourly": Status.OK, "always": Status.OK}


BERLIN = "Europe/Berlin"


def invocations(check: Check, start: str, end: str, every_minutes: int = 5) -> list[dt.datetime]:
    """When the check runs if the function is invoked every few minutes from start to end (UTC)."""
    last, ran, now = None, [], at(start)
    while now <= at(end):
        if is_due(check, last, now):
            ran.append(now)
            last = now
        now += dt.timedelta(minutes=every_minutes)
    return ran


def on_local_day(runs: list[dt.datetime], day: str) -> list[str]:
    local = [r.astimezone(ZoneInfo(BERLIN)) for r in runs]
    return [f"{r:%H:%M%z}" for r in local if r.date().isoformat() == day]


def test_autumn_clock_change_a_2am_check_runs_once_at_the_first_2am() -> None:
    check = Check(name="nightly", sql="SELECT 1", schedule="0 2 * * *", timezone=BERLIN)
    runs = invocations(check, "2026-10-24 12:00", "2026-10-26 12:00")
    assert on_local_day(runs, "2026-10-25") == ["02:00+0200"]  # not again at 02:00+0100
    assert on_local_day(runs, "2026-10-26") == ["02:00+0100"]


def test_autumn_clock_change_an_hourly_check_runs_in_both_passes_of_the_repeated_hour() -> None:
    check = Check(name="hourly", sql="SELECT 1", schedule="0 * * * *", timezone=BERLIN)
    runs = on_local_day(invocations(check, "2026-10-24 12:00", "2026-10-26 12:00"), "2026-10-25")
    assert len(runs) == 25  # the day has 25 hours: none missed, none twice
    assert runs[:4] == ["00:00+0200", "01:00+0200", "02:00+0200", "02:00+0100"]


def test_spring_clock_change_a_check_in_the_skipped_hour_runs_once_right_after_it() -> None:
    check = Check(name="nightly", sql="SELECT 1", schedule="30 2 * * *", timezone=BERLIN)
    runs = invocations(check, "2026-03-28 12:00", "2026-03-30 12:00")
    assert on_local_day(runs, "2026-03-29") == ["03:00+0200"]  # 02:30 does not exist that night
    assert on_local_day(runs, "2026-03-30") == ["02:30+0200"]


def test_spring_clock_change_an_hourly_check_runs_every_real_hour() -> None:
    check = Check(name="hourly", sql="SELECT 1", schedule="0 * * * *", timezone=BERLIN)
    runs = invocations(check, "2026-03-28 12:00", "2026-03-30 12:00")
    day = on_local_day(runs, "2026-03-29")
    assert len(day) == 23 and day[:3] == ["00:00+0100", "01:00+0100", "03:00+0200"]
    gaps = {later - earlier for earlier, later in itertools.pairwise(runs)}
    assert gaps == {dt.timedelta(hours=1)}


def test_a_schedule_that_never_fires_is_refused() -> None:
    for expression in ("0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"):
        with pytest.raises(ScheduleError, match="never fires"):
            check_schedule(expression)
    check_schedule("0 0 29 2 *")  # leap years only: rare, but it fires
    check_schedule("0 0 * 2 1#5")  # a fifth Monday in February: once in decades


def test_rare_schedules_are_due_again_even_near_the_year_3000() -> None:
    check = Check(name="leap", sql="SELECT 1", schedule="0 0 * 2 1#5")
    assert next_tick(check, at("2999-12-31 23:59")).year == 3008
