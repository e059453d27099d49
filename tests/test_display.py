"""Numbers and ranges read the same everywhere: in verdict messages, in Slack's fields and in the terminal."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import init_db
from anomaly_monitor import anomaly
from anomaly_monitor.alerts import Measure, for_result
from anomaly_monitor.display import number, value_range
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.runner import evaluate
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.csv_source import CsvSource
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from tests.demo import DEMO_NOW


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.0, "12"),
        (12, "12"),
        (-3.0, "-3"),
        (1234567.0, "1,234,567"),
        (371.157, "371.16"),
        (4.5, "4.50"),
        (0.012345, "0.01235"),
        (0.0, "0"),
        (math.inf, "∞"),
        (-math.inf, "-∞"),
        (math.nan, "NaN"),
        (1.2345e20, "1.234e+20"),
        (999_999_999_999_999.0, "999,999,999,999,999"),
    ],
)
def test_numbers_read_as_people_write_them(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (371.157, 619.109, "371.16 to 619.11"),
        (None, 10.0, "at most 10"),
        (5.0, None, "at least 5"),
        (None, None, "any value"),
    ],
)
def test_ranges_read_in_words_and_never_say_none(low: float | None, high: float | None, text: str) -> None:
    assert value_range(low, high) == text


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
def test_any_number_is_one_short_line(value: float) -> None:
    text = number(value)
    assert text and "\n" not in text and len(text) <= 26


@given(st.none() | st.floats(), st.none() | st.floats())
def test_any_range_is_words_without_none(low: float | None, high: float | None) -> None:
    text = value_range(low, high)
    assert text and "none" not in text.lower()


def test_a_count_in_an_anomaly_message_has_no_decimals() -> None:
    day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    points = [(day + dt.timedelta(days=i), 50.0 + (i % 3)) for i in range(20)] + [(day + dt.timedelta(days=20), 12.0)]
    judgement = anomaly.judge(points)
    assert judgement.anomalous
    assert judgement.message.startswith("12 is below the expected range: ")
    assert "12.0" not in judgement.message


def test_demo_orders_daily_says_the_same_range_in_its_message_and_its_alert(demo_warehouse: Path) -> None:
    [check] = [
        c
        for c in parse_registry(CsvSource(init_db.DATA_DIR / "checks.csv").read_rows()).checks
        if c.name == "orders_daily"
    ]
    result = evaluate(check, SqliteWarehouse(demo_warehouse), Settings(), DEMO_NOW, [])
    assert result.expected is not None, result.message
    alert = for_result(result, check, DEMO_NOW)
    assert isinstance(alert.evidence, Measure)
    judged_day = f"{DEMO_NOW - dt.timedelta(days=1):%A}"  # yesterday's orders, against the same weekday
    assert f"the expected range for a {judged_day}: {alert.evidence.expected} (" in result.message
    assert alert.evidence.value == result.message.split(" is ")[0]
