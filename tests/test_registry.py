"""Registry rows become checks, or invalid results whose message names the row, the check and the column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- The registry reads like a careful person would --------------------------------------------------------------


def write_csv(tmp_path: Path, text: str | bytes) -> CsvSource:
    path = tmp_path / "checks.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return CsvSource(path)


def by_name(registry) -> dict[str, str]:
    """name -> "ok" or the invalid message."""
    return {c.name: "ok" for c in registry.checks} | {i.name: i.message for i in registry.invalid}


@pytest.mark.parametrize("size", [50_001, 131_073, 2_000_000])
def test_an_oversized_cell_makes_only_its_row_invalid(tmp_path: Path, size: int):
    huge = "SELECT 1 AS x -- " + "x" * size
    source = write_csv(tmp_path, f"name,sql\nbefore,SELECT 1\nhuge,{huge}\nafter,SELECT 2\n")
    result = by_name(parse_registry(source.read_rows()))
    assert result["before"] == result["after"] == "ok"
    assert result["huge"] == (
        f'checks row 3 (name "huge"): column "sql" holds {len(huge):,} characters, more than the 50,000 a cell '
        "may hold (Google Sheets' limit): shorten it"
    )


def test_a_cell_of_exactly_50000_characters_is_fine():
    [check] = parse(dict(VALID, description="d" * 50_000)).checks
    assert len(check.description) == 50_000


def test_a_header_naming_a_column_twice_is_a_registry_error_naming_it(tmp_path: Path):
    source = write_csv(tmp_path, "name,type,SQL,notes, sql ,notes\nx,rows,SELECT 1,a,SELECT 2,b\n")
    with pytest.raises(RegistryError, match=r'names column "sql" 2 times \(columns C, E\): rename or delete'):
        source.read_rows()


def test_unknown_columns_may_repeat(tmp_path: Path):
    source = write_csv(tmp_path, "name,sql,notes,notes\nx,SELECT 1,a,b\n")
    assert by_name(parse_registry(source.read_rows())) == {"x": "ok"}


STRAY_QUOTE = (
    "name,sql,description\n"
    "first,SELECT 1,fine\n"
    'broken,"SELECT 2,a stray quote\n'
    "swallowed_one,SELECT 3,would vanish into the quote\n"
    "swallowed_two,SELECT 4,so would this\n"
)


def test_rows_after_a_stray_quote_are_read_and_the_quote_is_reported(tmp_path: Path):
    result = by_name(parse_registry(write_csv(tmp_path, STRAY_QUOTE).read_rows()))
    assert result == {
        "first": "ok",
        "broken": 'checks row 3 (name "broken"): column "sql" has a stray quote ("): the cell it opens never closes, '
        'and would swallow the 2 lines after it; close the quote, or write a quote inside a cell as ""',
        "swallowed_one": "ok",
        "swallowed_two": "ok",
    }


def test_a_stray_quote_closed_by_a_later_rows_quote_still_costs_one_row(tmp_path: Path):
    text = 'name,sql,description\na,"SELECT 1,oops\nb,SELECT 2,x\nc,"SELECT\n  3",multi-line and fine\nd,SELECT 4,\n'
    result = by_name(parse_registry(write_csv(tmp_path, text).read_rows()))
    assert [name for name, message in result.items() if message == "ok"] == ["b", "c", "d"]
    assert "runs over the next 2 lines and breaks on line 4" in result["a"]
    [c] = [check for check in parse_registry(write_csv(tmp_path, text).read_rows()).checks if check.name == "c"]
    assert c.sql == "SELECT\n  3" and c.row_number == 4


def test_text_after_a_closing_quote_names_the_column(tmp_path: Path):
    result = by_name(parse_registry(write_csv(tmp_path, 'name,sql,description\na,SELECT 1,"said" twice\n').read_rows()))
    assert result["a"].startswith('checks row 2 (name "a"): column "description" has a stray quote ("): text follows')


def test_a_byte_that_is_not_utf8_makes_only_its_row_invalid(tmp_path: Path):
    source = write_csv(
        tmp_path, b"name,sql,description\nlatin1,SELECT 1,caf\xe9\nfine,SELECT 2,ok\n\xff\xfe,SELECT 3,\n"
    )
    result = by_name(parse_registry(source.read_rows()))
    assert (
        result["latin1"]
        == 'checks row 2 (name "latin1"): column "description" is not UTF-8 text: save the file as UTF-8'
    )
    assert result["fine"] == "ok"
    assert result["row-4"].startswith('checks row 4 (name "row-4"): column "name" is not UTF-8 text')


@pytest.mark.parametrize(
    ("column", "raw"),
    [
        ("max", "٣"),  # Arabic-Indic three
        ("min", "１２"),  # full-width twelve
        ("min", "1_000"),
        ("max", "0x10"),
        ("max", "1,000"),
        ("max", "inf"),
        ("max", "nan"),
        ("max", "1 000"),
        ("alert_after", "٣"),
        ("alert_after", "3.0"),
    ],
)
def test_numbers_are_plain_decimals_only(column: str, raw: str):
    message = only_error({**VALID, "type": "threshold", "min": "0", column: raw})
    assert f'column "{column}" is not a ' in message and raw in message


@pytest.mark.parametrize("raw", ["12", "-2.5", ".5", "5.", "+3", "1e3", "1E-7"])
def test_plain_decimals_in_any_notation_a_sheet_shows_are_read(raw: str):
    [check] = parse(dict(VALID, type="threshold", max=raw)).checks
    assert check.max == float(raw)


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        ("max_gb_billed", "1e300", 'column "max_gb_billed" must be greater than 0 and at most 100,000: "1e300"'),
        ("max", "1e400", 'column "max" is not a finite number: "1e400"'),
        ("sensitivity", "1000", 'column "sensitivity" must be greater than 0 and at most 100: "1000"'),
        ("alert_after", "99999999999999999999", 'column "alert_after" must be at least 1 and at most 1,000'),
        ("alert_after", "9" * 5000, 'column "alert_after" is far too large'),
        ("renotify_hours", "1e9", 'column "renotify_hours" must be at least 0 and at most 8,784'),
    ],
)
def test_numbers_must_be_within_the_range_each_column_allows(column: str, raw: str, expected: str):
    assert expected in only_error(dict(VALID, **{column: raw}))


@pytest.mark.parametrize("sheet", ["checks", "Status", " EXCLUSIONS ", "my checks"])
def test_export_sheet_may_not_name_a_worksheet_the_monitor_owns(sheet: str):
    worksheets = ("my checks", "status", "exclusions")
    result = parse_registry([dict(VALID, export_sheet=sheet)], worksheets)
    if sheet == "checks":  # not the registry here: CHECKS_WORKSHEET is "my checks"
        assert [c.export_sheet for c in result.checks] == ["checks"]
        return
    [invalid] = result.invalid
    assert (
        'column "export_sheet" names the' in invalid.message
        and "which the monitor itself reads or writes" in invalid.message
    )


def test_a_name_that_is_not_printable_text_goes_by_its_row_number():
    result = parse({"name": "bad\nname", "sql": "SELECT 1"}, {"name": "x" * 200, "sql": "SELECT 1"})
    assert [i.name for i in result.invalid] == ["row-2", "row-3"]
    assert "…" in result.invalid[1].message and len(result.invalid[1].message) < 300


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("_registry", 'rename the check, e.g. "registry"'),
        ("_exclusions_row_2", 'e.g. "exclusions_row_2"'),
        ("_", "rename the check"),
        ("__row-3", "rename the check"),  # the suggestion would be reserved too: none is made
        ("row-7", 'row-N names a row whose name cannot be read; rename the check, e.g. "row-7-check"'),
    ],
)
def test_a_name_the_monitor_uses_itself_is_invalid_naming_the_column_and_the_fix(name: str, fix: str):
    result = parse(dict(VALID, name=name), dict(VALID, name="fine"))
    assert [c.name for c in result.checks] == ["fine"]
    [row] = result.invalid
    assert row.name == "row-2", "its result never goes by the reserved name"
    assert row.message.startswith(f'checks row 2 (name "row-2"): column "name" "{name}" is reserved: ')
    assert fix in row.message


@pytest.mark.parametrize("name", ["registry", "a_registry", "row", "row-", "row-7a", "rows-7", "my-row-7", "-x", "9"])
def test_names_merely_like_a_reserved_one_are_fine(name: str):
    assert [c.name for c in parse(dict(VALID, name=name)).checks] == [name]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True))
def test_every_spec_name_is_a_check_unless_reserved(name: str):
    result = parse(dict(VALID, name=name))
    reserved = name.startswith("_") or re.fullmatch(r"row-[0-9]+", name) is not None
    assert [c.name for c in result.checks] == ([] if reserved else [name])
    assert [i.name for i in result.invalid] == (["row-2"] if reserved else [])
    if reserved:
        assert 'column "name"' in result.invalid[0].message and "rename the check" in result.invalid[0].message
