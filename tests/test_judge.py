"""Verdicts for the three check types, and the shapes that make a check `error`."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from anomaly_monitor.judge import ShapeError, judge
from anomaly_monitor.models import Check, CheckType, QueryResult, Status

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def result(columns, rows, count=None):
    return QueryResult(columns, [tuple(r) for r in rows], len(rows) if count is None else count)


def threshold(**bounds) -> Check:
    return Check(name="t", sql="SELECT 1", type=CheckType.THRESHOLD, **bounds)


def test_rows_check_alerts_on_any_row_and_reports_the_total():
    check = Check(name="r", sql="SELECT 1")
    assert judge(check, result(["id"], [], 0), NOW).status is Status.OK
    verdict = judge(check, result(["id"], [(1,), (2,)], 4031), NOW)
    assert (verdict.status, verdict.message, verdict.value) == (Status.ALERT, "4,031 rows returned", 4031.0)


@pytest.mark.parametrize(
    ("bounds", "value", "status", "message"),
    [
        ({"max": 10}, 11, Status.ALERT, "11 is above the maximum 10"),
        ({"min": 5}, 4.5, Status.ALERT, "4.50 is below the minimum 5"),
        ({"min": 5, "max": 10}, 10, Status.OK, "10 is within the expected range (5 to 10)"),
    ],
)
def test_threshold_compares_the_value_with_its_bounds(bounds, value, status, message):
    verdict = judge(threshold(**bounds), result(["value"], [(value,)]), NOW)
    assert (verdict.status, verdict.message) == (status, message)
    assert verdict.expected == (bounds.get("min"), bounds.get("max"))


def test_threshold_takes_the_only_numeric_column_when_none_is_called_value():
    verdict = judge(threshold(max=1), result(["merchant", "late"], [("acme", decimal.Decimal("3"))]), NOW)
    assert verdict.value == 3.0


@pytest.mark.parametrize(
    ("columns", "rows", "message"),
    [
        (["value"], [], "no data: the query returned no row"),
        (["value"], [(None,)], "no data: the metric is NULL"),
        (["value"], [(1,), (2,)], "returned 2 rows; a threshold check needs exactly one"),
        (["a", "b"], [(1, 2)], "cannot tell which column is the metric among a, b: name it `value`"),
        (["ok"], [(True,)], "cannot tell which column is the metric"),
        (["value"], [("ten",)], "the metric is not a number: 'ten'"),
    ],
)
def test_threshold_shapes_it_cannot_judge_are_errors(columns, rows, message):
    with pytest.raises(ShapeError, match=message):
        judge(threshold(max=1), result(columns, rows), NOW)


def test_anomaly_series_judges_the_newest_row_whatever_the_row_order():
    check = Check(name="a", sql="SELECT 1", type=CheckType.ANOMALY)
    days = [(f"2026-11-{d:02d}", 100.0 + (d % 3)) for d in range(1, 22)]
    rows = [("2026-11-22", 400.0), *reversed(days)]  # 2026-11-22 is the newest complete day at NOW
    verdict = judge(check, result(["ts", "value"], rows), NOW)
    assert verdict.status is Status.ALERT
    assert verdict.value == 400.0
    assert verdict.series[-1] == (dt.datetime(2026, 11, 22, tzinfo=dt.UTC), 400.0)


def test_anomaly_single_value_is_judged_against_past_values():
    check = Check(name="a", sql="SELECT 1", type=CheckType.ANOMALY)
    past = [(NOW - dt.timedelta(hours=h), 50.0 + (h % 2)) for h in range(20, 0, -1)]
    assert judge(check, result(["value"], [(50.0,)]), NOW, past).status is Status.OK
    assert judge(check, result(["value"], [(500.0,)]), NOW, past).status is Status.ALERT


def test_anomaly_single_value_leaves_out_values_recorded_after_now():
    check = Check(name="a", sql="SELECT 1", type=CheckType.ANOMALY)
    past = [(NOW - dt.timedelta(hours=h), 50.0 + (h % 2)) for h in range(20, 0, -1)]
    later = [(NOW + dt.timedelta(hours=h), 5000.0) for h in range(1, 21)]
    alone, with_later = (judge(check, result(["value"], [(50.0,)]), NOW, p) for p in (past, past + later))
    assert with_later == alone and with_later.status is Status.OK and with_later.value == 50.0


def test_anomaly_with_too_little_history_is_ok():
    check = Check(name="a", sql="SELECT 1", type=CheckType.ANOMALY)
    assert judge(check, result(["value"], [(500.0,)]), NOW, []).status is Status.OK


def test_anomaly_series_with_a_bad_timestamp_is_an_error():
    check = Check(name="a", sql="SELECT 1", type=CheckType.ANOMALY)
    with pytest.raises(ShapeError, match="column ts holds 'yesterday'"):
        judge(check, result(["ts", "value"], [("yesterday", 1.0)]), NOW)
