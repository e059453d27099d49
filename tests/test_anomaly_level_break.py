"""A many-hour level break in a low-count hourly rate, judged through a whole run at every kind of hour.

Authorisations arrive a handful an hour at night and a couple of dozen by day; 3% are declined, until an acquirer
outage declines 65% from 20:00. The hourly decline rate is a proportion of a small count (0, 1/25, 2/25 ...), so
the band is wide; the break must still read as outside the range its history expects, not only as a hard bound.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from anomaly_monitor.anomaly import judge
from anomaly_monitor.models import Status
from anomaly_monitor.runner import RunOptions
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings

START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday
BREAK = START + dt.timedelta(days=14, hours=20)  # the outage begins at 20:00 after two weeks of history
HOURS_AFTER = 27  # the series runs this many hours into the outage
SQL = """SELECT
  TIMESTAMP_TRUNC(created_date, HOUR) AS ts,
  SAFE_DIVIDE(COUNTIF(status = 'fail'), COUNT(*)) AS value
FROM authorisations
WHERE created_date >= TIMESTAMP_SUB(TIMESTAMP_TRUNC(CURRENT_TIMESTAMP(), HOUR), INTERVAL 14 DAY)
  AND created_date < TIMESTAMP_TRUNC(CURRENT_TIMESTAMP(), HOUR)
GROUP BY ts
ORDER BY ts"""


def authorisations(seed: int, outage: bool = True) -> list[tuple[dt.datetime, bool]]:
    """(time, declined) of every authorisation: 5-8 an hour from 00:00 to 07:00, 20-30 an hour by day."""
    rng = random.Random(seed)
    rows = []
    hour = START
    while hour < BREAK + dt.timedelta(hours=HOURS_AFTER):
        decline = 0.65 if outage and hour >= BREAK else 0.03
        for _ in range(rng.randint(5, 8) if hour.hour < 7 else rng.randint(20, 30)):
            rows.append((hour + dt.timedelta(seconds=rng.randrange(3600)), rng.random() < decline))
        hour += dt.timedelta(hours=1)
    return sorted(rows)


def hourly_rates(rows: list[tuple[dt.datetime, bool]]) -> list[tuple[dt.datetime, float | None]]:
    by_hour: dict[dt.datetime, list[bool]] = {}
    for at, declined in rows:
        by_hour.setdefault(at.replace(minute=0, second=0), []).append(declined)
    return [(hour, sum(d) / len(d)) for hour, d in sorted(by_hour.items())]


@pytest.fixture
def outage(tmp_path: Path, warehouse, registry) -> Settings:
    inserts = "".join(
        f"INSERT INTO authorisations VALUES ('{at:%Y-%m-%d %H:%M:%S}', '{'fail' if declined else 'success'}');\n"
        for at, declined in authorisations(seed=3)
    )
    wh = warehouse("CREATE TABLE authorisations (created_date TEXT, status TEXT);\n" + inserts)
    # no hard maximum: an alert can only come from the history
    checks = registry([{"name": "auth_failure_rate_hourly", "type": "anomaly", "sql": SQL,
                        "seasonality": "hour_of_day", "direction": "up"}])  # fmt: skip
    return Settings(checks_source=str(checks), warehouse_url=f"sqlite:///{wh}", state_url=f"sqlite:///{tmp_path}/s.db")


def run(settings: Settings, hours_in: int, state: str | None = None) -> tuple[Status, str]:
    """One run at 7 past the hour after the outage's `hours_in`-th hour: that hour is the newest complete one."""
    now = BREAK + dt.timedelta(hours=hours_in + 1, minutes=7)
    if state:
        settings = Settings(checks_source=settings.checks_source, warehouse_url=settings.warehouse_url, state_url=state)
    result = execute(settings, RunOptions(now=now)).results[0]
    return result.status, result.message


def test_fresh_runs_at_any_hour_of_the_outage_alert_from_its_history(outage: Settings, tmp_path: Path) -> None:
    # 3 hours in (the newest points just departed together), at night, in the morning, by day, and a day later
    for hours_in in (3, 7, 11, 13, 18, 22, 26):
        status, message = run(outage, hours_in, state=f"sqlite:///{tmp_path}/fresh-{hours_in}.db")
        judged = (BREAK + dt.timedelta(hours=hours_in)).hour
        assert status is Status.ALERT, f"{hours_in} hours in: {message}"
        assert f"is above the expected range for {judged:02d}:00" in message, message


def test_hourly_runs_sharing_one_state_keep_alerting_from_the_history_before_the_outage(outage: Settings) -> None:
    verdicts = [run(outage, hours_in) for hours_in in range(HOURS_AFTER - 1)]
    first = next(i for i, (status, _) in enumerate(verdicts) if status is Status.ALERT)
    assert first <= 3  # by the time three points have departed together, it alerts
    for status, message in verdicts[first + 1 :]:
        assert status is Status.ALERT and "is above the expected range" in message, message
        assert "before the incident began" in message, message


def test_the_same_rate_without_an_outage_stays_quiet_at_every_hour() -> None:
    rates = hourly_rates(authorisations(seed=3, outage=False))
    end = len(rates) - HOURS_AFTER
    alerts = [rates[i][0] for i in range(end, len(rates)) if judge(rates[i - 336 : i + 1], seasonality="hour_of_day",
                                                                     direction="up").anomalous]  # fmt: skip
    assert len(alerts) <= 1, alerts


def test_an_open_incident_still_accepts_the_old_level_at_every_hour() -> None:
    # judged against the history before the outage with its hour's own noise (departed=True), an ordinary
    # decline rate (none, or one of the hour's authorisations) is inside the range: the incident can resolve
    history = [p for p in hourly_rates(authorisations(seed=3)) if p[0] < BREAK]
    for hours_in in range(24):
        when = BREAK + dt.timedelta(hours=hours_in)
        trials = 6 if when.hour < 7 else 25
        for value in (0.0, 1 / trials):
            verdict = judge([*history, (when, value)], seasonality="hour_of_day", direction="up", departed=True)
            assert not verdict.anomalous, verdict.message
        assert judge([*history, (when, 0.65)], seasonality="hour_of_day", direction="up", departed=True).anomalous
