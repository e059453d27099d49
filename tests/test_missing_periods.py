"""Missing periods are seen: the judged point is the newest complete period as of the run, not the newest row."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_monitor.judge import judge_points
from anomaly_monitor.models import Check, CheckType, Seasonality, Status
from anomaly_monitor.periods import complete_periods, infer_step, upper_bound

HOURLY_SQL = (
    "SELECT TIMESTAMP_TRUNC(ts, HOUR) AS ts, COUNT(*) AS value FROM events"
    " WHERE ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 14 DAY) GROUP BY 1"
)
DAILY_SQL = "SELECT DATE(created_at) AS ts, COUNT(*) AS value FROM orders GROUP BY 1"


def check(sql: str, seasonality: Seasonality = Seasonality.NONE) -> Check:
    return Check(name="feed", sql=sql, type=CheckType.ANOMALY, seasonality=seasonality)


def hourly(hours: int, end: dt.datetime, level: float = 40.0) -> list[tuple[dt.datetime, float | None]]:
    rng = random.Random(1)
    return [(end - dt.timedelta(hours=h), float(round(level + rng.gauss(0, 4)))) for h in range(hours, 0, -1)]


def daily(days: int, end: dt.date, level: float = 500.0) -> list[tuple[dt.datetime, float | None]]:
    rng = random.Random(2)
    start = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
    return [(start - dt.timedelta(days=d), float(round(level + rng.gauss(0, 20)))) for d in range(days, 0, -1)]


def test_an_hourly_feed_that_stops_alerts_no_data_since_with_the_periods_missing() -> None:
    stopped = dt.datetime(2026, 11, 23, 4, tzinfo=dt.UTC)  # rows for every hour up to 03:00
    points = hourly(24 * 14, stopped)
    now = dt.datetime(2026, 11, 23, 9, 20, tzinfo=dt.UTC)  # 04:00 .. 08:00 are complete and empty
    verdict = judge_points(check(HOURLY_SQL, Seasonality.HOUR_OF_DAY), points, now)
    assert verdict.status is Status.ALERT
    assert verdict.value is None
    assert "no data since 2026-11-23 03:00 UTC, 5 periods missing" in verdict.message
    assert "2026-11-23 08:00 UTC" in verdict.message  # the newest complete period


def test_a_daily_feed_that_stops_alerts_and_one_that_is_current_is_judged() -> None:
    points = daily(60, dt.date(2026, 11, 21))  # the last row is 2026-11-20
    now = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)  # 11-21 and 11-22 are complete days without a row
    verdict = judge_points(check(DAILY_SQL, Seasonality.DAY_OF_WEEK), points, now)
    assert verdict.status is Status.ALERT
    assert "no data since 2026-11-20, 2 periods missing" in verdict.message
    current = daily(60, dt.date(2026, 11, 23))  # up to 11-22: nothing missing
    verdict = judge_points(check(DAILY_SQL, Seasonality.DAY_OF_WEEK), current, now)
    assert verdict.status is Status.OK and "within the expected range" in verdict.message


def test_a_sparse_daily_count_counts_an_empty_day_as_zero_and_judges_it() -> None:
    rng = random.Random(3)
    start = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    # chargebacks: about one a day, so a third of the days have no row at all
    points = [(start + dt.timedelta(days=d), float(n)) for d in range(110) if (n := rng.choice([0, 0, 1, 1, 2, 3]))]
    now = start + dt.timedelta(days=113, hours=6)  # the last days are empty, which is usual for this series
    verdict = judge_points(check(DAILY_SQL), points, now)
    assert "no data since" not in verdict.message
    assert verdict.status is Status.OK
    assert verdict.value == 0.0  # the newest complete day, empty, judged as zero
    assert verdict.series is not None


def test_a_sparse_count_still_alerts_when_the_zero_is_itself_anomalous() -> None:
    rng = random.Random(4)
    start = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    # a count of about 30 a day with a day off now and then (no row): an empty weekday is a real drop
    points = [(start + dt.timedelta(days=d), float(rng.randint(25, 35))) for d in range(100) if d % 8 != 3]
    periods = complete_periods(points, start + dt.timedelta(days=101, hours=1))
    assert periods.missing == 0 and periods.points[-1] == (start + dt.timedelta(days=100), 0.0)
    verdict = judge_points(check(DAILY_SQL), points, start + dt.timedelta(days=101, hours=1))
    assert verdict.status is Status.ALERT and verdict.value == 0.0


def test_a_newest_period_still_in_progress_is_not_judged() -> None:
    end = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    points = [*hourly(24 * 14, end), (end, 3.0)]  # 09:00 is in progress at 09:20 and only 3 events so far
    now = dt.datetime(2026, 11, 23, 9, 20, tzinfo=dt.UTC)
    verdict = judge_points(check(HOURLY_SQL, Seasonality.HOUR_OF_DAY), points, now)
    assert verdict.status is Status.OK  # 08:00 is judged, and it is ordinary
    assert "for 08:00" in verdict.message and verdict.value != 3.0


def test_a_query_bounded_by_a_literal_judges_its_last_period_not_today() -> None:
    # a backtest or benchmark query asks for data up to a fixed day: later periods are not missing
    sql = "SELECT ts, value FROM series_points WHERE series_id = 'a' AND ts <= '2025-10-16' ORDER BY ts"
    points = daily(90, dt.date(2025, 10, 17))
    verdict = judge_points(check(sql), points, dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC))
    assert "no data since" not in verdict.message
    assert verdict.status is Status.OK


def test_upper_bounds_are_read_from_the_query_and_only_from_ts() -> None:
    assert upper_bound("SELECT ts, value FROM t WHERE ts <= '2025-10-16'") == (
        dt.datetime(2025, 10, 16, tzinfo=dt.UTC),
        True,
    )
    bound = upper_bound(
        "SELECT DATE(created) AS ts, COUNT(*) AS value FROM t"
        " WHERE created < TIMESTAMP '2025-01-02 00:00:00' GROUP BY 1"
    )
    assert bound == (dt.datetime(2025, 1, 2, tzinfo=dt.UTC), False)
    assert upper_bound("SELECT ts, value FROM t WHERE '2025-03-01' > ts") == (
        dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
        False,
    )
    assert upper_bound("SELECT ts, value FROM t WHERE ts >= '2025-10-16'") is None  # a lower bound
    assert upper_bound("SELECT ts, value FROM t WHERE amount < '2025-10-16'") is None  # not the time column
    assert upper_bound("SELECT ts, value FROM t WHERE ts < CURRENT_TIMESTAMP()") is None  # moves with the run


def test_the_step_is_the_most_common_gap() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    times = [start + dt.timedelta(hours=h) for h in (0, 1, 2, 3, 5, 6, 9)]
    assert infer_step(times) == dt.timedelta(hours=1)
    assert infer_step(times[:2]) is None
    months = [dt.datetime(2026, m, 1, tzinfo=dt.UTC) for m in range(1, 8)]
    assert infer_step(months) is None  # months are not a fixed step: judged on the newest row


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=24 * 90), max_size=60),
    values=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=60, max_size=60),
    now_hours=st.integers(min_value=-48, max_value=24 * 120),
    sql=st.sampled_from([HOURLY_SQL, DAILY_SQL, "SELECT ts, value FROM t WHERE ts <= '2026-02-01'", "SELECT 1"]),
)
def test_no_series_crashes_the_judgement(
    offsets: list[int], values: list[float | None], now_hours: int, sql: str
) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    points = [(start + dt.timedelta(hours=o), values[i]) for i, o in enumerate(offsets)]
    now = start + dt.timedelta(hours=now_hours)
    if not points:
        return
    verdict = judge_points(check(sql), points, now)
    assert verdict.status in (Status.OK, Status.ALERT)
    assert isinstance(verdict.message, str) and verdict.message
