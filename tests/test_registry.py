"""Registry rows become checks, or invalid results whose message names the row, the check and the column."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import CheckType, Direction, Seasonality, Severity
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.sources.csv_source import CsvSource

VALID = {"name": "late_settle", "sql": "SELECT 1 AS x"}


def parse(*rows: dict[str, str]):
    return parse_registry(rows)


def only_error(row: dict[str, str]) -> str:
    result = parse(row)
    assert not result.checks, result.checks
    assert len(result.invalid) == 1
    return result.invalid[0].message


def test_defaults_fill_blank_optional_cells():
    [check] = parse(dict(VALID, enabled="", type="", sensitivity="")).checks
    assert check.type is CheckType.ROWS
    assert check.enabled is True
    assert check.sensitivity == 3.0
    assert check.seasonality is Seasonality.NONE
    assert check.direction is Direction.BOTH
    assert check.severity is Severity.WARNING
    assert check.timezone == "UTC"
    assert (check.alert_after, check.renotify_hours) == (1, 24.0)
    assert check.row_number == 2


def test_every_column_is_read():
    row = dict(
        VALID,
        enabled="no",
        type="Threshold",
        min="1.5",
        max="10",
        schedule="*/15 * * * *",
        timezone="Europe/London",
        severity="critical",
        channel="#payments-alerts",
        owners="U024BE7LH, S0614TZR7 ,oncall@example.com",
        alert_after="3",
        renotify_hours="0",
        tags="Hourly,finance",
        export_sheet="late orders",
        max_gb_billed="2.5",
        runbook="https://example.com/runbook",
        description="Orders authorised but not settled",
    )
    [check] = parse(row).checks
    assert check.enabled is False
    assert check.type is CheckType.THRESHOLD
    assert (check.min, check.max) == (1.5, 10.0)
    assert check.owners == ("U024BE7LH", "S0614TZR7", "oncall@example.com")
    assert check.tags == ("hourly", "finance")
    assert (check.alert_after, check.renotify_hours, check.max_gb_billed) == (3, 0.0, 2.5)
    assert check.channel == "#payments-alerts"
    assert check.export_sheet == "late orders"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"name": "", "sql": "SELECT 1"}, 'column "name" is empty'),
        ({"name": "Bad Name", "sql": "SELECT 1"}, 'column "name" must be'),
        ({"name": "x" * 65, "sql": "SELECT 1"}, 'column "name" must be 1-64'),
        (dict(VALID, type="ratio"), 'column "type" must be one of rows, threshold, anomaly: "ratio"'),
        (dict(VALID, type="threshold"), 'a threshold check needs column "min", "max" or both'),
        (dict(VALID, type="threshold", max="ten"), 'column "max" is not a number: "ten"'),
        (dict(VALID, min="5", max="1"), 'column "min" (5) is greater than column "max" (1)'),
        (dict(VALID, schedule="every hour"), 'column "schedule" is not a 5-field cron expression'),
        (dict(VALID, schedule="61 * * * *"), 'column "schedule" is not a 5-field cron expression'),
        (dict(VALID, schedule="0 0 30 2 *"), 'column "schedule" never fires: no month it names has day 30'),
        (dict(VALID, schedule="0 0 31 4 *"), 'column "schedule" never fires'),
        (dict(VALID, timezone="Mars/Olympus"), 'column "timezone" is not an IANA time zone'),
        (dict(VALID, enabled="maybe"), 'column "enabled" must be TRUE or FALSE'),
        (dict(VALID, alert_after="0"), 'column "alert_after" must be at least 1'),
        (dict(VALID, alert_after="1.5"), 'column "alert_after" is not a whole number'),
        (dict(VALID, renotify_hours="-1"), 'column "renotify_hours" must be at least 0'),
        (dict(VALID, sensitivity="0"), 'column "sensitivity" must be greater than 0'),
        (dict(VALID, owners="bob"), 'column "owners" has "bob", which is not a Slack user id'),
        (dict(VALID, channel="payments alerts"), 'column "channel" must be a Slack channel id'),
        (dict(VALID, runbook="wiki/page"), 'column "runbook" must be an http(s) URL'),
        (dict(VALID, seasonality="monthly"), 'column "seasonality" must be one of'),
        ({"name": "no_sql", "sql": "  "}, 'column "sql" is empty'),
        (dict(VALID, sql="DELETE FROM orders"), 'column "sql"'),
        (dict(VALID, sql="SELECT 1; DROP TABLE orders"), 'column "sql"'),
    ],
)
def test_bad_rows_are_invalid_with_a_message_naming_the_column(row, expected):
    message = only_error(row)
    assert message.startswith("checks row 2 (name ")
    assert expected in message


def test_one_bad_row_does_not_stop_the_others():
    result = parse(VALID, dict(VALID, name="broken", type="nope"), dict(VALID, name="third"))
    assert [c.name for c in result.checks] == ["late_settle", "third"]
    assert [(i.name, i.row_number) for i in result.invalid] == [("broken", 3)]


def test_duplicate_names_keep_the_first_row():
    result = parse(VALID, dict(VALID, sql="SELECT 2"))
    assert [c.sql for c in result.checks] == ["SELECT 1 AS x"]
    [dup] = result.invalid
    assert dup.message == 'checks row 3 (name "late_settle"): column "name" repeats row 2; names must be unique'


def test_blank_rows_are_skipped_but_counted_in_row_numbers():
    result = parse(VALID, {"name": "", "sql": ""}, dict(VALID, name="after_blank", type="bogus"))
    assert result.invalid[0].row_number == 4


def test_csv_header_is_case_insensitive_with_bom_and_spaces(tmp_path: Path):
    path = tmp_path / "checks.csv"
    path.write_bytes("\ufeff Name ,SQL,Extra Column\nlate_settle,SELECT 1,ignored\n".encode())
    [check] = parse_registry(CsvSource(path).read_rows()).checks
    assert (check.name, check.sql) == ("late_settle", "SELECT 1")


def test_csv_without_required_columns_is_a_registry_error(tmp_path: Path):
    path = tmp_path / "checks.csv"
    path.write_text("title,query\nx,SELECT 1\n")
    with pytest.raises(RegistryError, match="no 'name', 'sql' column"):
        CsvSource(path).read_rows()


def test_missing_csv_is_a_registry_error(tmp_path: Path):
    with pytest.raises(RegistryError, match="does not exist"):
        CsvSource(tmp_path / "nope.csv").read_rows()
