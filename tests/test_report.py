"""The terminal rendering: aligned tables and alerts that read like the Slack message."""

from __future__ import annotations

import datetime as dt

from anomaly_monitor.alerts import for_result
from anomaly_monitor.display import text_table
from anomaly_monitor.models import Check, CheckResult, CheckType, Severity, Status
from anomaly_monitor.report import render_alert

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def test_numbers_right_align_even_with_nulls_and_text_left_aligns():
    table = text_table([{"merchant": "acme", "amount": -22.61}, {"merchant": "bramble & birch", "amount": None}])
    assert table.splitlines() == [
        "merchant         amount",
        "---------------  ------",
        "acme             -22.61",
        "bramble & birch    NULL",
    ]


def test_long_cells_are_cut():
    [_, _, row] = text_table([{"note": "x" * 100}], width=10).splitlines()
    assert row == "x" * 9 + "…"


def test_an_alert_shows_its_rows_owners_runbook_and_how_many_more():
    check = Check(
        name="late_settle",
        sql="SELECT 1",
        severity=Severity.CRITICAL,
        description="Orders not settled in 7 days",
        owners=("U024BE7LH", "payments@example.com"),
        runbook="https://example.com/runbook",
    )
    result = CheckResult("late_settle", "rows", Status.ALERT, "25 rows returned", row_count=25, check=check)
    result.rows = [{"order_id": n} for n in range(20)]
    text = render_alert(for_result(result, check, NOW))
    assert text.startswith("[CRITICAL] late_settle\n")
    assert "Orders not settled in 7 days" in text
    assert "… and 5 more rows" in text
    assert "owners: U024BE7LH, payments@example.com" in text
    assert "runbook: https://example.com/runbook" in text


def test_a_query_error_reads_differently_from_a_data_alert():
    check = Check(name="late_settle", sql="SELECT 1", severity=Severity.CRITICAL)
    result = CheckResult("late_settle", "rows", Status.ERROR, "timed out after 120 s", check=check)
    text = render_alert(for_result(result, check, NOW))
    assert text.startswith("[CRITICAL · QUERY ERROR] late_settle\n")
    assert "The query did not give a result, so the data was not checked:\n    timed out after 120 s" in text


def test_a_threshold_alert_shows_its_value_and_range_as_slack_does():
    check = Check(name="revenue", sql="SELECT 1", type=CheckType.THRESHOLD, min=5.0, severity=Severity.INFO)
    result = CheckResult(
        "revenue", "threshold", Status.ALERT, "4.50 is below the minimum 5", 4.5, 1, expected=(5.0, None), check=check
    )
    text = render_alert(for_result(result, check, NOW))
    assert text.splitlines()[0] == "[INFO] revenue"
    assert "value 4.50, expected at least 5" in text
    assert text.splitlines()[-1] == "Run 2026-11-23 09:00 UTC · threshold check · severity info"
