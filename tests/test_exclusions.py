"""Exclusion windows, values marked Expected and open incidents: what an anomaly baseline leaves out."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_monitor.exclusions import parse_exclusions
from anomaly_monitor.incidents import Lifecycle
from anomaly_monitor.judge import Baseline, judge_points
from anomaly_monitor.models import Action, Check, CheckType, IncidentEvent, Seasonality, Status
from anomaly_monitor.runner import RunOptions, baseline_for
from anomaly_monitor.service import execute
from anomaly_monitor.settings import Settings
from anomaly_monitor.state.sqlite import SqliteStateStore

START = dt.datetime(2026, 8, 3, tzinfo=dt.UTC)  # a Monday
SQL = "SELECT DATE(created_at) AS ts, COUNT(*) AS value FROM orders GROUP BY 1"


def anomaly_check(**fields: object) -> Check:
    return Check(name="orders_daily", sql=SQL, type=CheckType.ANOMALY, seasonality=Seasonality.DAY_OF_WEEK, **fields)


def days(values: list[float]) -> list[tuple[dt.datetime, float | None]]:
    return [(START + dt.timedelta(days=i), v) for i, v in enumerate(values)]


def noisy(n: int, level: float = 500.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [float(round(level * (1 + rng.gauss(0, 0.03)))) for _ in range(n)]


def run_at(points: list[tuple[dt.datetime, float | None]]) -> dt.datetime:
    return points[-1][0] + dt.timedelta(days=1, hours=7)  # 07:00 the next day: the last day is complete


# -- the exclusions worksheet / exclusions.csv ---------------------------------------------------------------------


def test_rows_become_windows_and_bad_rows_are_reported_naming_row_and_column() -> None:
    rows = [
        {"check": "*", "from": "2026-12-25", "to": "2026-12-26", "reason": "Christmas"},
        {"check": "orders_daily", "from": "2026-11-02T01:00:00Z", "to": "2026-11-02T03:00:00Z", "reason": ""},
        {"check": "", "from": "2026-12-25", "to": "2026-12-25", "reason": "no check"},
        {"check": "x", "from": "Christmas", "to": "2026-12-25", "reason": ""},
        {"check": "x", "from": "2026-12-26", "to": "2026-12-25", "reason": "backwards"},
        {"check": "", "from": "", "to": "", "reason": ""},  # a blank line is not an error
    ]
    exclusions = parse_exclusions(rows)
    assert [w.row_number for w in exclusions.windows] == [2, 3]
    assert len(exclusions.for_check("orders_daily")) == 2 and len(exclusions.for_check("other")) == 1
    problems = dict(exclusions.problems)
    assert 'column "check" is empty' in problems[4]
    assert 'exclusions row 5: column "from" is not an ISO-8601 date or time: "Christmas"' in problems[5]
    assert 'column "to" (2026-12-25) is before column "from"' in problems[6]
    results = exclusions.invalid_results()
    assert [r.status for r in results] == [Status.INVALID] * 3 and results[0].name == "_exclusions_row_4"


def test_a_date_is_the_whole_day_in_the_checks_time_zone() -> None:
    (window,) = parse_exclusions([{"check": "*", "from": "2026-12-25", "to": "2026-12-25", "reason": ""}]).windows
    start, end = window.span("Europe/Berlin")
    assert start == dt.datetime(2026, 12, 24, 23, tzinfo=dt.UTC) and end == dt.datetime(2026, 12, 25, 23, tzinfo=dt.UTC)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["check", "from", "to", "reason", "other", " From "]), st.text()), max_size=8
    )
)
def test_no_exclusion_row_crashes_the_parser(rows: list[dict[str, str]]) -> None:
    exclusions = parse_exclusions(rows)
    assert len(exclusions.windows) + len(exclusions.problems) <= len(rows)
    for window in exclusions.windows:
        window.span("UTC")


# -- what the judgement leaves out ------------------------------------------------------------------------------------


def test_a_judged_point_inside_a_window_is_ok_with_a_note_naming_it() -> None:
    points = days([*noisy(84), 40.0])  # a holiday: almost nothing
    day = points[-1][0]
    baseline = Baseline(windows=((day, day + dt.timedelta(days=1), "exclusion window 2026-10-26 (bank holiday)"),))
    assert judge_points(anomaly_check(), points, run_at(points)).status is Status.ALERT
    verdict = judge_points(anomaly_check(), points, run_at(points), baseline)
    assert verdict.status is Status.OK and "bank holiday" in verdict.message and "not judged" in verdict.message


def test_points_inside_a_window_are_left_out_of_the_baseline() -> None:
    # a week-long outage in the history, then an ordinary day: with the outage excluded, a drop to 60% alerts
    values = noisy(84)
    for i in range(70, 77):
        values[i] = 5.0
    points = days([*values, 300.0])
    outage = (points[70][0], points[77][0], "exclusion window (known outage)")
    plain = judge_points(anomaly_check(), points, run_at(points))
    excluded = judge_points(anomaly_check(), points, run_at(points), Baseline(windows=(outage,)))
    assert excluded.status is Status.ALERT
    assert excluded.expected[0] > (plain.expected[0] or 0)  # the band no longer reaches down towards the outage


def test_values_marked_expected_are_left_out_of_the_baseline() -> None:
    values = noisy(84)
    points = days([*values, 900.0, *noisy(2, seed=5), 880.0])
    marked = points[84][0] + dt.timedelta(days=1, hours=8)  # someone clicked Expected on the 900 the next morning
    with_mark = judge_points(anomaly_check(), points, run_at(points), Baseline(expected_at=(marked,)))
    without = judge_points(anomaly_check(), points, run_at(points))
    assert with_mark.expected[1] <= without.expected[1]


def test_an_open_incident_is_judged_against_the_range_from_before_it() -> None:
    # a level that stays broken: 30 days at 60%; without the incident it has become the level
    points = days([*noisy(84), *noisy(30, level=300.0, seed=9)])
    began = points[84][0] + dt.timedelta(days=1, hours=7)  # the run that first alerted on the drop
    plain = judge_points(anomaly_check(), points, run_at(points))
    assert plain.status is Status.OK
    verdict = judge_points(anomaly_check(), points, run_at(points), Baseline(incident_since=began))
    assert verdict.status is Status.ALERT
    assert "below the expected range" in verdict.message and "before the incident began" in verdict.message
    assert verdict.expected[0] > 400  # the pre-incident range, not the outage's


# -- the state store: incident_events ---------------------------------------------------------------------------------


def event(check: str, at: dt.datetime, action: Action = Action.EXPECTED, event_id: str = "e1") -> IncidentEvent:
    return IncidentEvent(event_id, check, "C1", "1700000000.000100", action, None, "U1", "ana", at, "value 900")


def test_a_baseline_leaves_out_the_run_a_click_marked_and_lifts_an_incident_resolved_as_expected() -> None:
    check = anomaly_check()
    judged = dt.datetime(2026, 11, 23, 7, tzinfo=dt.UTC)
    clicked = event("orders_daily", judged + dt.timedelta(hours=5))  # after the next period completed
    marked = dataclasses.replace(clicked, detail=json.dumps({"value": 900, "run_id": "r1", "checked_at": str(judged)}))
    assert baseline_for(check, None, (), [marked]).expected_at == (judged,), "the run whose value was marked"
    assert baseline_for(check, None, (), [clicked]).expected_at == (clicked.at,), "a row that does not say: the click"
    incident = Lifecycle("r0", judged - dt.timedelta(days=2), 3, Status.ALERT, "low", announced=Status.ALERT)
    assert baseline_for(check, incident, (), []).incident_since == incident.since
    assert baseline_for(check, incident, (), [marked]).incident_since is None, "a person accepted it"
    resolved_as_expected = dataclasses.replace(incident, announced=Status.OK)  # its click no longer read (BigQuery
    # reads a year of clicks), or a journal that got there first
    assert baseline_for(check, resolved_as_expected, (), []).incident_since is None


def test_incident_events_are_appended_once_and_read_back(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    at = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
    store.append_events([event("a", at), event("a", at)])  # Slack delivered the click twice
    store.append_events(
        [event("b", at, Action.SNOOZE, "e2"), event("a", at + dt.timedelta(hours=1), Action.MUTE, "e3")]
    )
    events = store.incident_events(["a", "c"], at + dt.timedelta(days=1))
    assert [(e.event_id, e.action) for e in events] == [("e1", Action.EXPECTED), ("e3", Action.MUTE)]
    assert events[0] == event("a", at)


# -- a whole run: exclusions.csv beside the checks, events in the state store ----------------------------------------


@pytest.fixture
def demo(tmp_path: Path, warehouse, registry):
    rows = "".join(
        f"INSERT INTO daily VALUES ('{(START + dt.timedelta(days=i)).date()}', {v});\n"
        for i, v in enumerate([*noisy(84), 900.0])
    )
    wh = warehouse("CREATE TABLE daily (ts TEXT, value REAL);\n" + rows)
    checks = registry([{"name": "orders_daily", "type": "anomaly", "seasonality": "day_of_week",
                        "sql": "SELECT ts, value FROM daily ORDER BY ts"}])  # fmt: skip
    settings = Settings(
        checks_source=str(checks), warehouse_url=f"sqlite:///{wh}", state_url=f"sqlite:///{tmp_path}/s.db"
    )
    return settings, START + dt.timedelta(days=85, hours=7)


def write_exclusions(folder: Path, rows: list[dict[str, str]]) -> None:
    with (folder / "exclusions.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["check", "from", "to", "reason"])
        writer.writeheader()
        writer.writerows(rows)


def test_a_run_honours_exclusions_csv_and_reports_its_bad_rows(demo) -> None:
    settings, now = demo
    assert execute(settings, RunOptions(now=now, dry_run=True)).results[0].status is Status.ALERT
    day = (START + dt.timedelta(days=84)).date().isoformat()
    write_exclusions(Path(settings.checks_source).parent, [
        {"check": "orders_daily", "from": day, "to": day, "reason": "launch day"},
        {"check": "*", "from": "soon", "to": day, "reason": ""},
    ])  # fmt: skip
    report = execute(settings, RunOptions(now=now, dry_run=True))
    by_name = {r.name: r for r in report.results}
    assert by_name["orders_daily"].status is Status.OK and "launch day" in by_name["orders_daily"].message
    assert by_name["_exclusions_row_3"].status is Status.INVALID
    assert 'column "from"' in by_name["_exclusions_row_3"].message
    assert report.exit_code() == 2


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "UTC", "Asia/Tokyo"])
def test_a_date_window_holds_the_same_day_of_a_daily_date_series_in_any_time_zone(tmp_path, warehouse, registry, zone):
    rows = "".join(
        f"INSERT INTO daily VALUES ('{(START + dt.timedelta(days=i)).date()}', {v});\n"
        for i, v in enumerate([*noisy(84), 900.0])
    )
    wh = warehouse("CREATE TABLE daily (ts TEXT, value REAL);\n" + rows)
    checks = registry([{"name": "orders_daily", "type": "anomaly", "timezone": zone,
                        "sql": "SELECT DATE(ts) AS ts, value FROM daily"}])  # fmt: skip
    settings = Settings(
        checks_source=str(checks), warehouse_url=f"sqlite:///{wh}", state_url=f"sqlite:///{tmp_path}/s.db"
    )
    now = START + dt.timedelta(days=85, hours=12)
    first, before, launch = ((START + dt.timedelta(days=n)).date().isoformat() for n in (0, 83, 84))
    write_exclusions(checks.parent, [{"check": "orders_daily", "from": launch, "to": launch, "reason": "launch"}])
    [result] = execute(settings, RunOptions(now=now, dry_run=True)).results
    assert result.status is Status.OK and f"{launch} is inside the exclusion window" in result.message
    write_exclusions(checks.parent, [{"check": "*", "from": first, "to": before, "reason": "the history"}])
    [result] = execute(settings, RunOptions(now=now, dry_run=True)).results
    assert result.status is Status.OK and "only 0 comparable points" in result.message


def test_an_exclusions_csv_naming_a_column_twice_applies_no_window_and_reports_its_rows(demo) -> None:
    settings, now = demo
    day = (START + dt.timedelta(days=84)).date().isoformat()
    (Path(settings.checks_source).parent / "exclusions.csv").write_text(
        f"check,from,to,reason, FROM\norders_daily,{day},{day},launch day,2026-01-01\n\n"
    )
    report = execute(settings, RunOptions(now=now, dry_run=True))
    by_name = {r.name: r for r in report.results}
    assert by_name["orders_daily"].status is Status.ALERT  # no window guessed from either "from"
    assert 'the header names column "from" 2 times (columns B, E)' in by_name["_exclusions_row_2"].message
    assert len(report.results) == 2 and report.exit_code() == 2  # the blank line is not reported


def test_a_run_leaves_a_value_marked_expected_out_and_an_open_incident_keeps_its_baseline(demo) -> None:
    settings, now = demo
    first = execute(settings, RunOptions(now=now))
    assert first.results[0].status is Status.ALERT
    later = execute(dataclasses.replace(settings), RunOptions(now=now + dt.timedelta(hours=1)))
    assert "before the incident began" in later.results[0].message  # the open incident's own baseline
    SqliteStateStore.from_url(settings.state_url).append_events([event("orders_daily", now + dt.timedelta(hours=2))])
    marked = execute(settings, RunOptions(now=now + dt.timedelta(hours=3)))
    assert "before the incident began" not in marked.results[0].message  # a person accepted it
