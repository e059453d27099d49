"""The Google Sheets registry: gspread at the HTTP layer, served the Sheets API's recorded answers."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import gspread
import pytest
import responses
from google.oauth2.credentials import Credentials

from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import Check, CheckResult, RunReport, Status
from anomaly_monitor.registry import parse_registry
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.sheet_layout import STATUS_HEADER, serial
from anomaly_monitor.sources.sheets import SheetsClient, SheetsSource

RECORDINGS = Path(__file__).with_name("fixtures") / "sheets-api"
API = "https://sheets.googleapis.com/v4/spreadsheets"
KEY = "1DOeeLJTGpoqn-zcX22dL7_uHLSm_asbJPu43c5D1Ni4"  # the recorded spreadsheet, so the URLs are the recorded ones


def recorded(cassette: str, method: str, url_part: str, status: int = 0) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the first recorded answer to METHOD on a URL containing url_part."""
    for interaction in json.loads((RECORDINGS / cassette).read_text())["interactions"]:
        request, response = interaction["request"], interaction["response"]
        if request["method"] == method and url_part in request["uri"] and status in (0, response["status"]["code"]):
            return response["status"]["code"], json.loads(response["body"]["string"])
    raise LookupError(f"{cassette} has no {method} {url_part}")


def source(worksheet: str = "checks", status_worksheet: str = "status") -> SheetsSource:
    credentials = Credentials(token="test-token")  # no refresh: a fixed bearer token
    client = SheetsClient(gspread.Client(auth=credentials).http_client, credentials)
    return SheetsSource(client, KEY, Settings(checks_worksheet=worksheet, status_worksheet=status_worksheet))


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def values_url(worksheet: str) -> str:
    return f"{API}/{KEY}/values/%27{worksheet}%27"


# -- reading the registry --------------------------------------------------------------------------------


def test_the_registry_is_read_in_one_request(api) -> None:
    _, body = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27")
    body["values"] = [
        [" Name ", "SQL", "type", "max", "notes"],
        ["late_settle", "SELECT id FROM orders", "rows"],  # the API drops trailing blank cells
        [],  # and sends blank rows as []
        ["daily_total", "SELECT 1 AS value", "threshold", "10", "ignored column"],
    ]
    api.get(values_url("checks"), json=body)
    rows = source().read_rows()
    assert len(api.calls) == 1
    assert api.calls[0].request.headers["Authorization"] == "Bearer test-token"
    assert rows[0] == {"name": "late_settle", "sql": "SELECT id FROM orders", "type": "rows", "max": "", "notes": ""}
    assert rows[2]["max"] == "10"
    registry = parse_registry(rows)
    assert [c.name for c in registry.checks] == ["late_settle", "daily_total"]


def test_invalid_rows_are_reported_as_for_csv(api) -> None:
    _, body = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27")
    body["values"] = [["name", "sql", "type"], ["ok_check", "SELECT 1", ""], ["bad", "SELECT 1", "sometimes"]]
    api.get(values_url("checks"), json=body)
    registry = parse_registry(source().read_rows())
    assert [c.name for c in registry.checks] == ["ok_check"]
    assert [(i.name, i.row_number) for i in registry.invalid] == [("bad", 3)]
    assert '"type"' in registry.invalid[0].message


def test_a_sheet_without_name_and_sql_columns_is_a_registry_error(api) -> None:
    status, body = recorded("WorksheetTest.test_get_all_records_with_blank_final_headers.json", "GET", "/values/")
    api.get(values_url("Sheet1"), json=body, status=status)
    with pytest.raises(RegistryError, match="no 'name', 'sql' column"):
        source("Sheet1").read_rows()


def test_an_unknown_spreadsheet_is_a_registry_error(api) -> None:
    status, body = recorded("ClientTest.test_access_non_existing_spreadsheet.json", "GET", "/spreadsheets/test?")
    assert status == 404
    api.get(values_url("checks"), json=body, status=status)
    with pytest.raises(RegistryError, match=f"spreadsheet {KEY} does not exist: check the key in CHECKS_SOURCE"):
        source().read_rows()


def test_a_spreadsheet_not_shared_is_a_registry_error_saying_so(api) -> None:
    status, body = recorded("ClientTest.test_access_private_spreadsheet.json", "GET", "includeGridData", status=403)
    api.get(values_url("checks"), json=body, status=status)
    with pytest.raises(RegistryError, match=r"is not shared with .*share it"):
        source().read_rows()


def test_a_missing_worksheet_names_the_tabs_there_are_and_the_setting(api) -> None:
    # Sheets' documented answer for a range naming no tab (not among the recordings)
    body = {"error": {"code": 400, "message": "Unable to parse range: 'checks'", "status": "INVALID_ARGUMENT"}}
    api.get(values_url("checks"), json=body, status=400)
    serve_metadata(api)  # the recorded spreadsheet has only Sheet1
    with pytest.raises(RegistryError) as raised:
        source().read_rows()
    assert "has no worksheet 'checks' (it has 'Sheet1')" in str(raised.value)
    assert "rename it back to 'checks' or set CHECKS_WORKSHEET to its new name" in str(raised.value)


# -- writing statuses back --------------------------------------------------------------------------------


def report(*results: CheckResult) -> RunReport:
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    return RunReport("run1", at, at, list(results))


RUN_AT = serial(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), "Etc/GMT")  # the recorded sheet's time zone
DATE_TIME = {"numberFormat": {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"}}


def exported(name: str, sheet: str | None) -> CheckResult:
    check = Check(name=name, sql="SELECT 1", export_sheet=sheet)
    rows = [{"order_id": 1, "note": '=HYPERLINK("http://evil")'}, {"order_id": 4, "note": "+1 cancelled"}]
    return CheckResult(name, "rows", Status.ALERT, "2 rows", row_count=2, rows=rows, export_rows=rows, check=check)


def serve_metadata(api, extra_sheets: list[dict] = ()) -> None:
    _, meta = recorded("ClientTest.test_open_by_key_has_metadata.json", "GET", "includeGridData")
    meta["sheets"] += list(extra_sheets)
    api.get(f"{API}/{KEY}", json=meta)


def plain(cell: dict) -> object:
    """A typed cell's value, whatever its type."""
    return next(iter(cell["userEnteredValue"].values()), None) if cell.get("userEnteredValue") else None


def batches(api) -> list[list[dict]]:
    return [json.loads(c.request.body)["requests"] for c in api.calls if c.request.url.endswith(":batchUpdate")]


def test_statuses_are_rewritten_in_one_batch_creating_the_worksheet(api) -> None:
    serve_metadata(api)  # the recorded spreadsheet has only Sheet1
    _, answer = recorded("SpreadsheetTest.test_add_del_worksheet.json", "POST", ":batchUpdate")
    api.post(f"{API}/{KEY}:batchUpdate", json=answer)
    ok = CheckResult("daily_total", "threshold", Status.OK, "within range", value=7.0, bytes_processed=2048)
    source().publish(report(ok, exported("late_settle", None)))

    (requests,) = batches(api)
    add, update = requests[0], requests[-1]
    assert add["addSheet"]["properties"]["title"] == "status"
    sheet_id = add["addSheet"]["properties"]["sheetId"]
    assert update["updateCells"]["range"] == {"sheetId": sheet_id}  # the whole sheet: old rows are cleared too
    assert update["updateCells"]["fields"].split(",")[0] == "userEnteredValue"
    rows = [r["values"] for r in update["updateCells"]["rows"]]
    assert plain(rows[0][0]).startswith("Updated 2026-11-23 09:00 (Etc/GMT) by run run1: 1 ok, 1 alert")
    assert [plain(c) for c in rows[1]] == STATUS_HEADER
    assert [c.get("userEnteredValue") for c in rows[2]] == [
        {"stringValue": "daily_total"},
        {"numberValue": RUN_AT},  # a date-time, not text
        {"stringValue": "ok"},
        {"numberValue": 7.0},
        {"stringValue": "within range"},
        None,  # no open incident
        None,
        None,
        None,
        None,
        {"numberValue": 2048},
    ]
    assert rows[2][1]["userEnteredFormat"] == DATE_TIME
    assert rows[3][3] == {"userEnteredValue": {"numberValue": 2}}  # a rows check shows its row count
    # a new status tab gets its frozen header rows and colours in the same batch
    kinds = [next(iter(r)) for r in requests]
    assert "updateSheetProperties" in kinds and "addConditionalFormatRule" in kinds


EARLIER_LAYOUT = ["name", "last run", "status", "value or row count", "message", "bytes"]  # header in row 1


def serve_statuses(api, rows: list[list[Any]], header_row: int = 1) -> None:
    """The status worksheet as earlier runs left it, as values.get answers: rows given in the earlier layout's
    columns, written under its header in row 1, or in the current layout under the run line."""
    _, body = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27")
    header = EARLIER_LAYOUT if header_row == 1 else STATUS_HEADER
    above = [["Updated 2026-11-23 07:00 (Etc/GMT) by run run0: 2 ok"]] * (header_row - 1)
    laid_out = [[dict(zip(EARLIER_LAYOUT, row)).get(column, "") for column in header] for row in rows]
    body.update(range="'status'!A1:K1000", values=[*above, header, *laid_out])
    api.get(values_url("status"), json=body)


def test_an_existing_status_worksheet_is_not_added_again(api) -> None:
    serve_metadata(
        api, [{"properties": {"sheetId": 7, "title": "status", "gridProperties": {"rowCount": 2, "columnCount": 6}}}]
    )
    serve_statuses(api, [])
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}]})
    ok = [CheckResult(f"c{i}", "rows", Status.OK, "", row_count=0) for i in range(3)]
    source().publish(report(*ok))
    (requests,) = batches(api)
    assert [next(iter(r)) for r in requests] == ["appendDimension", "appendDimension", "updateCells"]
    assert requests[0]["appendDimension"] == {"sheetId": 7, "dimension": "ROWS", "length": 3}  # 5 rows into 2
    assert requests[1]["appendDimension"] == {"sheetId": 7, "dimension": "COLUMNS", "length": 5}  # 11 into 6


@pytest.mark.parametrize("header_row", [1, 2], ids=["earlier-layout", "current-layout"])
def test_statuses_of_checks_this_run_skipped_or_did_not_select_are_kept(api, header_row) -> None:
    serve_metadata(
        api, [{"properties": {"sheetId": 7, "title": "status", "gridProperties": {"rowCount": 50, "columnCount": 11}}}]
    )
    earlier = RUN_AT - 2 / 24
    serve_statuses(
        api,
        [
            ["daily_total", earlier, "alert", 12, "12 is above the maximum 10", 1024],
            ["hourly_rows", earlier, "ok", 0, "no rows returned"],
            ["removed_check", earlier, "ok", 0, "no rows returned", ""],
        ],
        header_row,
    )
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}]})
    sheet = source()
    sheet.registry_names = ["daily_total", "hourly_rows", "new_check"]  # as read_rows found them
    skipped = CheckResult("daily_total", "threshold", Status.SKIPPED, "not due")
    hourly = CheckResult("hourly_rows", "rows", Status.ALERT, "3 rows returned", row_count=3)
    new = CheckResult("new_check", "rows", Status.SKIPPED, "disabled in the registry")
    sheet.publish(report(skipped, hourly, new))

    update = batches(api)[-1][-1]["updateCells"]
    rows = [[plain(c) for c in r["values"]][:6] for r in update["rows"]]
    assert rows[2:] == [
        ["daily_total", earlier, "alert", 12, "12 is above the maximum 10", None],  # skipped now: the last real one
        ["hourly_rows", RUN_AT, "alert", 3, "3 rows returned", None],
        ["new_check", RUN_AT, "skipped", None, "disabled in the registry", None],
    ]  # and removed_check, no longer in the registry, is gone
    assert [plain(r["values"][-1]) for r in update["rows"][2:]] == [1024, None, None]  # bytes kept from before
    assert all(plain(c) is None for r in update["rows"][2:] for c in r["values"][5:10])  # no incident columns
    assert "valueRenderOption=UNFORMATTED_VALUE" in api.calls[1].request.url


def test_failing_rows_are_appended_as_typed_cells_with_a_header_on_a_new_worksheet(api) -> None:
    serve_metadata(api)
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}, {}, {}]})
    source().publish(report(exported("late_settle", "late orders")))

    statuses, exports = batches(api)
    assert [r["addSheet"]["properties"]["title"] for r in statuses if "addSheet" in r] == ["status"]
    add, append = exports
    assert add["addSheet"]["properties"]["title"] == "late orders"
    cells = append["appendCells"]
    assert cells["sheetId"] == add["addSheet"]["properties"]["sheetId"]
    assert [[plain(c) for c in r["values"]] for r in cells["rows"]] == [
        ["run_at", "order_id", "note"],
        [RUN_AT, 1, '=HYPERLINK("http://evil")'],
        [RUN_AT, 4, "+1 cancelled"],
    ]
    formula = cells["rows"][1]["values"][2]["userEnteredValue"]
    assert formula == {"stringValue": '=HYPERLINK("http://evil")'}  # text, never a formula
    assert cells["rows"][1]["values"][0]["userEnteredFormat"] == DATE_TIME


def test_rows_are_appended_without_a_header_to_an_existing_worksheet(api) -> None:
    serve_metadata(
        api,
        [
            {"properties": {"sheetId": 1, "title": "status", "gridProperties": {"rowCount": 1000, "columnCount": 26}}},
            {"properties": {"sheetId": 2, "title": "late", "gridProperties": {"rowCount": 1000, "columnCount": 26}}},
        ],
    )
    serve_statuses(api, [])
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}]})
    source().publish(report(exported("late_settle", "late")))
    (append,) = batches(api)[-1]
    assert append["appendCells"]["sheetId"] == 2
    assert plain(append["appendCells"]["rows"][0]["values"][0]) == RUN_AT


def test_a_sheets_outage_while_publishing_does_not_fail_the_run(api, caplog) -> None:
    serve_metadata(api)
    api.post(
        f"{API}/{KEY}:batchUpdate",
        json={"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}},
        status=503,
    )
    with caplog.at_level(logging.ERROR):
        source().publish(report(CheckResult("a", "rows", Status.OK, "", row_count=0)))
    assert "statuses could not be written" in caplog.text


def test_from_url_uses_application_default_credentials(api, tmp_path, monkeypatch) -> None:
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    api.post("https://oauth2.googleapis.com/token", json={"access_token": "ya29.adc", "expires_in": 3600})
    _, body = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27")
    body["values"] = [["name", "sql"], ["a", "SELECT 1"]]
    api.get(values_url("registry"), json=body)
    sheet = SheetsSource.from_url(f"sheets://{KEY}", Settings(checks_worksheet="registry", status_worksheet="st"))
    assert sheet.read_rows() == [{"name": "a", "sql": "SELECT 1"}]
    assert api.calls[-1].request.headers["Authorization"] == "Bearer ya29.adc"


def test_a_sheets_url_without_a_key_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="names no spreadsheet"):
        SheetsSource.from_url("sheets://", Settings())


def test_a_sheet_takes_the_statuses_back_and_a_csv_file_none(tmp_path: Path) -> None:
    from anomaly_monitor.sources import status_publisher
    from anomaly_monitor.sources.csv_source import CsvSource

    sheet = source()
    assert status_publisher(sheet) is sheet
    assert status_publisher(CsvSource(tmp_path / "checks.csv")) is None
