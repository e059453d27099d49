"""The sheet end to end, through gspread against the local Sheets API server: `sheet init`, a person edits cells,
the monitor runs (CLI and the HTTP function), and the status tab reads back typed, coloured and merged."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import gspread
import pytest
from google.auth.credentials import AnonymousCredentials

from anomaly_monitor.cli import main
from anomaly_monitor.columns import COLUMNS
from anomaly_monitor.exclusions import parse_exclusions
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.sheet_layout import CHECKS, EXCLUSIONS, STATUS_HEADER, status_formats
from anomaly_monitor.sources.sheets import SheetsSource, sheets_client, sheets_session
from tests.cloud_fixtures import make_warehouse
from tests.servers import function_server, post
from tests.sheets_server import SheetsServer, serving
from tests.sheets_ui import Refused, type_in

ROOT = Path(__file__).resolve().parent.parent
KEY = "1aBcD-local-spreadsheet"
NOW = "2026-11-23T09:00:00Z"

NAME_RULE = "1-64 characters of a-z, 0-9, _ and -, not starting with _ nor row-N (reserved), unique in the sheet."


@pytest.fixture
def sheets(monkeypatch, tmp_path) -> SheetsServer:
    with serving() as server:
        monkeypatch.setenv("SHEETS_API_URL", server.url)
        for name in ("SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_SECRET", "K_SERVICE", "LOG_FORMAT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)  # local charts land here
        yield server


def person(server: SheetsServer) -> gspread.Spreadsheet:
    """The spreadsheet as a person's gspread client sees it."""
    client = gspread.Client(auth=None, session=sheets_session(AnonymousCredentials(), server.url))
    return client.open_by_key(KEY)


def init() -> int:
    return main(["sheet", "init", "--checks", f"sheets://{KEY}"])


def run(tmp_path: Path, *extra: str) -> int:
    warehouse = tmp_path / "warehouse.db"
    if not warehouse.exists():
        make_warehouse(warehouse)
    return main(
        [
            "run",
            "--checks",
            f"sheets://{KEY}",
            "--warehouse",
            f"sqlite:///{warehouse}",
            "--state",
            f"sqlite:///{tmp_path / 'state.db'}",
            "--now",
            NOW,
            *extra,
        ]
    )


def kinds(server: SheetsServer, since: int = 0) -> list[str]:
    return [c.method.removeprefix("spreadsheets.") for c in server.calls[since:]]


# -- sheet init -----------------------------------------------------------------------------------------------------


def test_sheet_init_makes_a_new_spreadsheet_ready_in_one_write(sheets, capsys) -> None:
    sheets.create(KEY)
    assert init() == 0
    assert kinds(sheets) == ["get", "values.get", "batchUpdate"]  # which tabs; is Sheet1 empty; everything at once
    book = sheets.spreadsheets[KEY]
    assert [s.title for s in book.sheets] == ["checks", "exclusions", "status"]  # Sheet1 became checks
    checks = book.sheet("checks")
    assert sheets.values(KEY, "checks!1:1") == [CHECKS.names]
    for index, column in enumerate(COLUMNS):
        header = checks.cells[(0, index)]
        assert header["note"] == column.note  # meaning, default, example
        assert column.meaning in column.note and f"Example: {column.example}" in column.note
        assert checks.widths[index] == column.width
    spec = {c.name: c for c in COLUMNS}
    rules = {name: checks.cells.get((1, i), {}).get("dataValidation") for i, name in enumerate(CHECKS.names)}
    assert rules["type"]["condition"] == {
        "type": "ONE_OF_LIST",
        "values": [{"userEnteredValue": v} for v in ("rows", "threshold", "anomaly")],
    }
    assert rules["type"]["showCustomUi"] and rules["type"]["strict"]  # a drop-down that refuses other text
    assert rules["severity"]["condition"]["values"] == [{"userEnteredValue": v} for v in spec["severity"].choices]
    assert rules["enabled"]["condition"] == {"type": "BOOLEAN"}  # a checkbox
    formulas = {
        n: r["condition"]["values"][0]["userEnteredValue"] for n, r in rules.items() if r and "values" in r["condition"]
    }
    assert formulas["sensitivity"] == (
        '=AND(ISNUMBER(G2), REGEXMATCH(TO_TEXT(G2), "^-?[0-9]+([.][0-9]+)?$"), G2>0, G2<=100)'
    )
    assert formulas["renotify_hours"].endswith(", P2>=0, P2<=8784)")
    assert '"^-?[0-9]+$"), O2>=1, O2<=1000)' in formulas["alert_after"]  # whole numbers
    assert rules["max"]["inputMessage"] == "max: a number. Blank = no upper bound."
    assert rules["sql"] is None and rules["description"] is None
    assert all(checks.cells.get((999, i), {}).get("dataValidation") == rules[n] for i, n in enumerate(CHECKS.names))
    assert checks.grid["frozenRowCount"] == 1
    # one example check, disabled, which the registry reads as a valid check
    source = SheetsSource.from_url(f"sheets://{KEY}", Settings(sheets_api_url=sheets.url))
    registry = parse_registry(source.read_rows())
    assert [(c.name, c.enabled) for c in registry.checks] == [("example_stuck_orders", False)] and not registry.invalid
    assert checks.cells[(1, 1)]["userEnteredValue"] == {"boolValue": False}  # an unticked checkbox
    status = book.sheet("status")
    assert sheets.values(KEY, "status") == [["Statuses appear here after the monitor's first run."], STATUS_HEADER]
    assert status.conditional_formats == status_formats(status.id) and status.grid["frozenRowCount"] == 2
    assert sheets.values(KEY, "exclusions") == [EXCLUSIONS.names]
    assert book.sheet("exclusions").cells[(1, 1)]["userEnteredFormat"]["numberFormat"] == {"type": "TEXT"}
    out = capsys.readouterr().out
    assert "renamed the empty worksheet 'Sheet1' to 'checks'" in out and "in one batchUpdate" in out


@pytest.mark.parametrize(
    ("column", "typed", "help_text"),
    [
        ("severity", "urgnet", "severity: one of critical, warning, info. Blank = warning."),
        ("enabled", "ye", "enabled: TRUE or FALSE. Blank = TRUE."),
        ("alert_after", "1.5", "alert_after: a whole number at least 1 and at most 1,000. Blank = 1."),
        ("alert_after", "5000", "alert_after: a whole number at least 1 and at most 1,000. Blank = 1."),
        ("name", "Late Orders", f"name: {NAME_RULE}"),
        ("name", "_registry", f"name: {NAME_RULE}"),
        ("name", "row-4", f"name: {NAME_RULE}"),
    ],
)
def test_a_person_typing_a_wrong_value_is_refused_with_the_help_text(sheets, column, typed, help_text) -> None:
    sheets.create(KEY)
    init()
    checks = sheets.spreadsheets[KEY].sheet("checks")
    index = CHECKS.names.index(column)
    with pytest.raises(Refused, match=re.escape(help_text)):
        type_in(checks, 1, index, typed, rule_origin=(1, index))
    type_in(
        checks,
        1,
        index,
        {"severity": "critical", "enabled": "TRUE", "alert_after": "3"}.get(column, "late"),
        (1, index),
    )


def test_sheet_init_twice_changes_nothing_the_second_time(sheets, capsys) -> None:
    sheets.create(KEY)
    init()
    before = copy.deepcopy(sheets.spreadsheets[KEY])
    calls = len(sheets.calls)
    assert init() == 0
    assert kinds(sheets, calls) == ["get", "get", "values.get"]  # three reads, no write
    assert sheets.spreadsheets[KEY] == before
    assert "is already set up: nothing changed (3 reads, no write)" in capsys.readouterr().out


def test_sheet_init_upgrades_an_existing_registry_in_place(sheets) -> None:
    book = sheets.create(KEY)
    book.sheets[0].properties["title"] = "checks"
    sheet = person(sheets).worksheet("checks")
    sheet.update(
        [
            ["SQL", " Name ", "notes", "Enabled"],
            ["SELECT 1 AS value", "one", "mine", ""],
            ["SELECT 2 AS value", "two", "", "FALSE"],
            ["", "", "a comment row", ""],
        ],
        "A1",
        value_input_option="USER_ENTERED",
    )
    assert init() == 0
    values = sheets.values(KEY, "checks")
    assert values[0][:4] == ["SQL", " Name ", "notes", "Enabled"]  # kept where and as they were
    missing = [c for c in CHECKS.names if c not in ("sql", "name", "enabled")]
    assert values[0][4:] == missing  # appended after the last header cell
    assert [row[:4] for row in values[1:]] == [
        ["SELECT 1 AS value", "one", "mine", "TRUE"],  # blank already meant enabled: now the checkbox says so
        ["SELECT 2 AS value", "two", "", "FALSE"],
        ["", "", "a comment row"],
    ]
    checks = sheets.spreadsheets[KEY].sheet("checks")
    assert checks.cells[(0, 1)]["note"] == CHECKS.columns[0].note  # notes on existing header cells too
    assert checks.cells[(1, 3)]["dataValidation"]["condition"] == {"type": "BOOLEAN"}  # enabled where it is
    name_rule = checks.cells[(1, 1)]["dataValidation"]["condition"]["values"][0]["userEnteredValue"]
    assert "TO_TEXT(B2)" in name_rule and "COUNTIF(B$2:B, B2)" in name_rule  # formulas follow the column
    calls = len(sheets.calls)
    init()
    assert "batchUpdate" not in kinds(sheets, calls)


def test_sheet_init_refuses_a_protected_header_before_writing_anything(sheets, capsys) -> None:
    sheets.create(KEY).sheets[0].properties["title"] = "checks"
    person(sheets).worksheet("checks").update([["name", "sql"], ["a", "SELECT 1"]], "A1")
    sheets.spreadsheets[KEY].sheets[0].protected_ranges = [
        {
            "protectedRangeId": 1,
            "range": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1},
            "description": "header, owners only",
            "requestingUserCanEdit": False,
        }
    ]
    assert init() == 3
    assert "batchUpdate" not in kinds(sheets)
    err = capsys.readouterr().err
    assert "worksheet 'checks' is protected (header, owners only)" in err
    assert "add it (Data > Protect sheets and ranges) or remove the protection" in err


def test_sheet_init_on_a_spreadsheet_shared_read_only_says_to_share_it_as_editor(sheets, capsys) -> None:
    sheets.create(KEY).access = "reader"
    assert init() == 3
    assert (
        f"spreadsheet {KEY} is not shared with the function's service account as an editor" in capsys.readouterr().err
    )


def test_sheet_init_locally_prints_what_it_would_create(capsys, tmp_path) -> None:
    registry = tmp_path / "checks.csv"
    registry.write_text("name,sql\na,SELECT 1\n")
    assert main(["sheet", "init", "--checks", str(registry)]) == 0
    out = capsys.readouterr().out
    assert "type                90  drop-down: rows, threshold, anomaly" in out
    assert "enabled             70  checkbox" in out
    assert "missing columns would be appended: enabled, type, min" in out
    for column in COLUMNS:
        assert f"    {column.name}: {column.meaning}" in out  # every note
    assert " | ".join(STATUS_HEADER) in out and "Worksheet exclusions" in out


def test_sheet_init_locally_says_when_the_csv_does_not_exist(capsys, tmp_path) -> None:
    assert main(["sheet", "init", "--checks", str(tmp_path / "new.csv")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'new.csv'} does not exist: a new one" in out and "compared with" not in out
    assert "This registry's header" not in out and "enabled             70  checkbox" in out


# -- runs ---------------------------------------------------------------------------------------------------------


def set_up_checks(server: SheetsServer) -> None:
    """`sheet init`, then a person makes the example real and adds two checks, typing as in the Sheets UI."""
    server.create(KEY, time_zone="America/New_York")
    assert init() == 0
    sheet = person(server).worksheet("checks")
    sheet.update(
        [["TRUE", "rows", "SELECT id FROM orders WHERE status = 'authorised'"]], "B2", value_input_option="USER_ENTERED"
    )
    sheet.update(
        [
            ["total", "TRUE", "threshold", "SELECT SUM(amount) AS value FROM orders", "", "100"],
            ["formula_like", "TRUE", "rows", "SELECT '=1+1' AS note, '@here' AS who, '+1' AS delta"],
        ],
        "A3",
        value_input_option="USER_ENTERED",
    )
    sheet.update_acell(f"{gspread.utils.rowcol_to_a1(4, 1 + CHECKS.names.index('export_sheet'))}", "exports")


def test_a_run_writes_typed_statuses_the_person_reads_back(sheets, tmp_path) -> None:
    set_up_checks(sheets)
    calls = len(sheets.calls)
    assert run(tmp_path) == 1  # alerts, no errors
    assert kinds(sheets, calls) == ["values.get", "get", "values.get", "batchUpdate", "batchUpdate"]  # + the export
    status = person(sheets).worksheet("status").get_all_values()
    assert status[0][0] == "Updated 2026-11-23 04:00 (America/New_York) by run " + status[0][0].split("run ")[1]
    assert status[0][0].endswith(": 1 ok, 2 alert")
    assert status[1] == STATUS_HEADER
    rows = {row[0]: dict(zip(STATUS_HEADER, row)) for row in status[2:]}
    assert list(rows) == ["example_stuck_orders", "total", "formula_like"]  # the registry's order
    example = rows["example_stuck_orders"]
    assert (example["status"], example["value or row count"], example["last run"]) == (
        "alert",
        "2",
        "2026-11-23 04:00:00",
    )
    assert example["incident since"] == "2026-11-23 04:00:00"  # opened by this run, in the sheet's time zone
    assert rows["total"]["status"] == "ok" and rows["total"]["incident since"] == ""
    # typed cells: numbers are numbers, times are date-times, text that looks like a formula stays text
    raw = sheets.values(KEY, "status", "UNFORMATTED_VALUE")
    last_run = raw[2][STATUS_HEADER.index("last run")]
    assert isinstance(last_run, float) and abs(last_run - 46349.1666667) < 1e-6  # 04:00 New York as a serial
    assert raw[3][STATUS_HEADER.index("value or row count")] == 35
    exports = sheets.spreadsheets[KEY].sheet("exports")
    assert sheets.values(KEY, "exports", "FORMULA")[1][1:] == ["=1+1", "@here", "+1"]
    assert [exports.cells[(1, c)]["userEnteredValue"] for c in (1, 2, 3)] == [
        {"stringValue": "=1+1"},
        {"stringValue": "@here"},
        {"stringValue": "+1"},
    ]


def test_a_second_run_merges_and_a_dry_run_writes_nothing(sheets, tmp_path) -> None:
    set_up_checks(sheets)
    assert run(tmp_path, "--check", "total") == 0
    assert run(tmp_path, "--check", "example_stuck_orders") == 1
    rows = {r[0]: r for r in person(sheets).worksheet("status").get_all_values()[2:]}
    assert rows["total"][STATUS_HEADER.index("status")] == "ok"  # kept from the run that selected it
    assert rows["example_stuck_orders"][STATUS_HEADER.index("status")] == "alert"
    calls = len(sheets.calls)
    run(tmp_path, "--dry-run")
    assert kinds(sheets, calls) == ["values.get"]  # the registry only


def test_a_renamed_checks_tab_fails_the_run_naming_the_fix_on_the_status_tab(sheets, tmp_path, capsys) -> None:
    set_up_checks(sheets)
    run(tmp_path)
    sheets.spreadsheets[KEY].sheet("checks").properties["title"] = "Checks (old)"
    assert run(tmp_path) == 3
    err = capsys.readouterr().err
    assert "has no worksheet 'checks' (it has 'Checks (old)', 'exclusions', 'status', 'exports')" in err
    assert "rename it back to 'checks' or set CHECKS_WORKSHEET to its new name" in err
    status = person(sheets).worksheet("status").get_all_values()
    assert status[0][0].startswith("⚠ 2026-11-23 04:00 (America/New_York): the registry could not be read:")
    assert "rename it back to 'checks'" in status[0][0]
    assert status[1] == STATUS_HEADER and len(status) == 5  # the last statuses stay below
    sheets.spreadsheets[KEY].sheet("Checks (old)").properties["title"] = "checks"
    run(tmp_path)
    assert person(sheets).worksheet("status").acell("A1").value.startswith("Updated")  # the problem line goes


def test_a_header_in_the_wrong_row_is_named(sheets, tmp_path, capsys) -> None:
    set_up_checks(sheets)
    sheets.spreadsheets[KEY].sheet("checks").cells = {
        (r + 2, c): cell for (r, c), cell in sheets.spreadsheets[KEY].sheet("checks").cells.items()
    }
    person(sheets).worksheet("checks").update_acell("A1", "Payments checks (owner: data team)")
    assert run(tmp_path) == 3
    message = "the registry's header must be in row 1, but row 3 holds it: delete the rows above it"
    assert message in capsys.readouterr().err
    assert message in person(sheets).worksheet("status").acell("A1").value


def test_a_spreadsheet_not_shared_fails_the_run_saying_whom_to_share_it_with(sheets, tmp_path, capsys) -> None:
    set_up_checks(sheets)
    sheets.spreadsheets[KEY].access = "none"
    calls = len(sheets.calls)
    assert run(tmp_path) == 3
    assert "is not shared with the function's service account: share it" in capsys.readouterr().err
    assert kinds(sheets, calls) == ["values.get"]  # nothing can be written, so nothing is tried


def test_a_protected_status_tab_is_logged_with_the_fix_and_the_run_still_ends(sheets, tmp_path, capsys) -> None:
    set_up_checks(sheets)
    status = sheets.spreadsheets[KEY].sheet("status")
    status.protected_ranges = [{"protectedRangeId": 2, "range": {"sheetId": status.id}, "requestingUserCanEdit": False}]
    assert run(tmp_path) == 1  # the checks' results, not a failed run
    err = capsys.readouterr().err
    assert "statuses could not be written" in err
    assert "has a protected range where the monitor writes" in err and "add the function's service account" in err


def test_the_client_and_its_credentials_are_built_once_per_instance(sheets) -> None:
    settings = Settings(sheets_api_url=sheets.url)
    assert sheets_client(settings) is sheets_client(settings)
    first = SheetsSource.from_url(f"sheets://{KEY}", settings)
    assert SheetsSource.from_url(f"sheets://{KEY}", settings).client is first.client


# -- the HTTP function --------------------------------------------------------------------------------------------


def test_the_http_function_reads_the_sheet_and_writes_the_status_tab(sheets, tmp_path) -> None:
    set_up_checks(sheets)
    warehouse = make_warehouse(tmp_path / "warehouse.db")
    settings = {
        "CHECKS_SOURCE": f"sheets://{KEY}",
        "SHEETS_API_URL": sheets.url,
        "WAREHOUSE_URL": f"sqlite:///{warehouse}",
        "STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "LOG_FORMAT": "json",
    }
    with function_server(settings, tmp_path / "function.log") as url:
        status, answer = post(url, {"force": True})
    assert status == 200, (tmp_path / "function.log").read_text()[-2000:]
    assert answer["summary"]["alert"] == 2
    status = person(sheets).worksheet("status").get_all_values()
    assert status[0][0].endswith(f"by run {answer['run_id']}: 1 ok, 2 alert")
    assert [row[STATUS_HEADER.index("status")] for row in status[2:]] == ["alert", "ok", "alert"]


def test_cli_error_message_goes_to_stderr_with_exit_3_for_an_unknown_spreadsheet(sheets, tmp_path, capsys) -> None:
    assert run(tmp_path) == 3
    assert f"spreadsheet {KEY} does not exist: check the key in CHECKS_SOURCE" in capsys.readouterr().err


def test_exclusion_windows_are_read_from_their_worksheet_and_a_missing_tab_means_none(sheets) -> None:
    sheets.create(KEY)
    source = SheetsSource.from_url(f"sheets://{KEY}", Settings(sheets_api_url=sheets.url))
    assert source.read_exclusions() == []  # a spreadsheet without the tab (sheet init not run yet)
    assert init() == 0
    person(sheets).worksheet("exclusions").update(
        [["*", "2026-12-25", "2026-12-26", "Christmas"], ["orders_daily", "soon", "2026-12-31", ""]],
        "A2",
        value_input_option="RAW",
    )
    rows = source.read_exclusions()
    assert rows[0] == {"check": "*", "from": "2026-12-25", "to": "2026-12-26", "reason": "Christmas"}
    exclusions = parse_exclusions(rows)
    assert [w.reason for w in exclusions.windows] == ["Christmas"]
    assert [row for row, _ in exclusions.problems] == [3]  # the sheet's own row number


def test_an_exclusions_header_naming_a_column_twice_reports_each_row_and_applies_no_window(sheets) -> None:
    sheets.create(KEY)
    assert init() == 0
    person(sheets).worksheet("exclusions").update(
        [["check", "from", "to", "reason", "From"], ["*", "2026-12-25", "2026-12-26", "Christmas", "2026-01-01"]],
        "A1",
        value_input_option="RAW",
    )
    source = SheetsSource.from_url(f"sheets://{KEY}", Settings(sheets_api_url=sheets.url))
    exclusions = parse_exclusions(source.read_exclusions())
    assert exclusions.windows == ()
    [(row, message)] = exclusions.problems
    assert row == 2 and 'names column "from" 2 times (columns B, E)' in message


def test_sheet_init_turns_yes_no_and_1_0_enabled_into_checkboxes_of_the_same_meaning(sheets, capsys) -> None:
    book = sheets.create(KEY)
    book.sheets[0].properties["title"] = "checks"
    spelled = [["a", "no"], ["b", "0"], ["c", "yes"], ["d", "1"], ["e", " False "], ["f", "TRUE"], ["g", "maybe"]]
    person(sheets).worksheet("checks").update(
        [["name", "enabled", "sql"], *[[n, e, "SELECT 1"] for n, e in spelled]], "A1", value_input_option="RAW"
    )
    assert init() == 0
    enabled = [row[1] for row in sheets.values(KEY, "checks", "UNFORMATTED_VALUE")[1:]]
    assert enabled == [False, False, True, True, False, "TRUE", "maybe"], "a value the registry refuses stays"
    assert "enabled as a checkbox in 5 rows written yes/no or 1/0" in capsys.readouterr().out
    calls = len(sheets.calls)
    assert init() == 0
    assert "batchUpdate" not in kinds(sheets, calls)


def test_sheet_init_refuses_a_header_naming_a_column_twice_before_writing_anything(sheets, capsys) -> None:
    sheets.create(KEY).sheets[0].properties["title"] = "checks"
    rows = [["name", "enabled", "sql", " Enabled"], ["a", "", "SELECT 1", "my own notes"], ["b", "no", "SELECT 1", ""]]
    person(sheets).worksheet("checks").update(rows, "A1")
    assert init() == 3
    assert "batchUpdate" not in kinds(sheets), "neither column gets the checkbox, nor its blanks the tick"
    err = capsys.readouterr().err
    assert "the header of worksheet 'checks' names column \"enabled\" 2 times (columns B, D)" in err
    assert "rename or delete all but one" in err


def test_a_status_worksheet_named_as_the_registry_is_refused_before_anything_is_written(
    sheets, tmp_path, monkeypatch, capsys
) -> None:
    set_up_checks(sheets)
    registry = person(sheets).worksheet("checks").get_all_values()
    monkeypatch.setenv("STATUS_WORKSHEET", "Checks")
    calls = len(sheets.calls)
    assert run(tmp_path) == 3  # the run could not happen
    assert "STATUS_WORKSHEET names worksheet 'Checks', as CHECKS_WORKSHEET does" in capsys.readouterr().err
    assert kinds(sheets, calls) == []  # refused before the sheet was even read
    assert person(sheets).worksheet("checks").get_all_values() == registry
