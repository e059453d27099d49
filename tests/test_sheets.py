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
from anomaly_monitor.sources.sheets import SheetsSource

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
    client = gspread.Client(auth=Credentials(token="test-token"))  # no refresh: a fixed bearer token
    return SheetsSource(client, KEY, worksheet, status_worksheet)


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


def test_a_missing_worksheet_names_the_setting(api) -> None:
    # Sheets' documented answer for a range naming no tab (not among the recordings)
    body = {"error": {"code": 400, "message": "Unable to parse range: 'checks'", "status": "INVALID_ARGUMENT"}}
    api.get(values_url("checks"), json=body, status=400)
    with pytest.raises(RegistryError, match="has no worksheet 'checks': rename the tab or set CHECKS_WORKSHEET"):
        source().read_rows()


# -- writing statuses back --------------------------------------------------------------------------------


def report(*results: CheckResult) -> RunReport:
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    return RunReport("run1", at, at, list(results))


def exported(name: str, sheet: str | None) -> CheckResult:
    check = Check(name=name, sql="SELECT 1", export_sheet=sheet)
    rows = [{"order_id": 1, "note": '=HYPERLINK("http://evil")'}, {"order_id": 4, "note": "+1 cancelled"}]
    return CheckResult(name, "rows", Status.ALERT, "2 rows", row_count=2, rows=rows, export_rows=rows, check=check)


def serve_metadata(api, extra_sheets: list[dict] = ()) -> None:
    _, meta = recorded("ClientTest.test_open_by_key_has_metadata.json", "GET", "includeGridData")
    meta["sheets"] += list(extra_sheets)
    api.get(f"{API}/{KEY}", json=meta)


def test_statuses_are_rewritten_in_one_batch_creating_the_worksheet(api) -> None:
    serve_metadata(api)  # the recorded spreadsheet has only Sheet1
    _, answer = recorded("SpreadsheetTest.test_add_del_worksheet.json", "POST", ":batchUpdate")
    api.post(f"{API}/{KEY}:batchUpdate", json=answer)
    ok = CheckResult("daily_total", "threshold", Status.OK, "within range", value=7.0, bytes_processed=2048)
    source().publish(report(ok, exported("late_settle", None)))

    writes = [c for c in api.calls if c.request.method == "POST"]
    assert len(writes) == 1
    requests = json.loads(writes[0].request.body)["requests"]
    add, update = requests
    assert add["addSheet"]["properties"]["title"] == "status"
    sheet_id = add["addSheet"]["properties"]["sheetId"]
    assert update["updateCells"]["range"] == {"sheetId": sheet_id}  # the whole sheet: old rows are cleared too
    assert update["updateCells"]["fields"] == "userEnteredValue"
    rows = [[c.get("userEnteredValue") for c in r["values"]] for r in update["updateCells"]["rows"]]
    assert [v["stringValue"] for v in rows[0]] == [
        "name",
        "last run",
        "status",
        "value or row count",
        "message",
        "bytes",
    ]
    assert rows[1] == [
        {"stringValue": "daily_total"},
        {"stringValue": "2026-11-23T09:00:00+00:00"},
        {"stringValue": "ok"},
        {"numberValue": 7.0},
        {"stringValue": "within range"},
        {"numberValue": 2048},
    ]
    assert rows[2][3] == {"numberValue": 2}  # a rows check shows its row count


def serve_statuses(api, rows: list[list[Any]]) -> None:
    """The status worksheet as earlier runs left it (header first), as values.get answers."""
    _, body = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27")
    body.update(range="'status'!A1:F1000", values=[["name", "last run", "status", "value or row count"], *rows])
    api.get(values_url("status"), json=body)


def test_an_existing_status_worksheet_is_not_added_again(api) -> None:
    serve_metadata(
        api, [{"properties": {"sheetId": 7, "title": "status", "gridProperties": {"rowCount": 2, "columnCount": 6}}}]
    )
    serve_statuses(api, [])
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}]})
    ok = [CheckResult(f"c{i}", "rows", Status.OK, "", row_count=0) for i in range(3)]
    source().publish(report(*ok))
    requests = json.loads(api.calls[-1].request.body)["requests"]
    assert [next(iter(r)) for r in requests] == ["appendDimension", "updateCells"]
    assert requests[0]["appendDimension"] == {"sheetId": 7, "dimension": "ROWS", "length": 2}  # 4 rows into 2


def test_statuses_of_checks_this_run_skipped_or_did_not_select_are_kept(api) -> None:
    serve_metadata(
        api, [{"properties": {"sheetId": 7, "title": "status", "gridProperties": {"rowCount": 50, "columnCount": 6}}}]
    )
    earlier = "2026-11-23T07:00:00+00:00"
    serve_statuses(
        api,
        [
            ["daily_total", earlier, "alert", 12, "12 is above the maximum 10", 1024],
            ["hourly_rows", earlier, "ok", 0, "no rows returned"],
            ["removed_check", earlier, "ok", 0, "no rows returned", ""],
        ],
    )
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}]})
    sheet = source()
    sheet.registry_names = ["daily_total", "hourly_rows", "new_check"]  # as read_rows found them
    skipped = CheckResult("daily_total", "threshold", Status.SKIPPED, "not due")
    hourly = CheckResult("hourly_rows", "rows", Status.ALERT, "3 rows returned", row_count=3)
    new = CheckResult("new_check", "rows", Status.SKIPPED, "disabled in the registry")
    sheet.publish(report(skipped, hourly, new))

    update = json.loads(api.calls[-1].request.body)["requests"][-1]["updateCells"]
    rows = [
        [next(iter(c["userEnteredValue"].values()), None) if c else None for c in r["values"]] for r in update["rows"]
    ]
    assert rows[1:] == [
        ["daily_total", earlier, "alert", 12, "12 is above the maximum 10", 1024],  # skipped now: the last real one
        ["hourly_rows", "2026-11-23T09:00:00+00:00", "alert", 3, "3 rows returned", None],
        ["new_check", "2026-11-23T09:00:00+00:00", "skipped", None, "disabled in the registry", None],
    ]  # and removed_check, no longer in the registry, is gone
    assert "valueRenderOption=UNFORMATTED_VALUE" in api.calls[1].request.url


def test_failing_rows_are_appended_raw_with_a_header_on_a_new_worksheet(api) -> None:
    serve_metadata(api)
    api.post(f"{API}/{KEY}:batchUpdate", json={"spreadsheetId": KEY, "replies": [{}, {}, {}]})
    _, appended = recorded("WorksheetTest.test_append_row.json", "POST", ":append")
    api.post(f"{API}/{KEY}/values/%27late%20orders%27%21A1:append", json=appended)
    source().publish(report(exported("late_settle", "late orders")))

    batch = json.loads(next(c for c in api.calls if c.request.url.endswith(":batchUpdate")).request.body)
    assert [r["addSheet"]["properties"]["title"] for r in batch["requests"] if "addSheet" in r] == [
        "status",
        "late orders",
    ]
    (append,) = [c for c in api.calls if ":append" in c.request.url]
    assert "valueInputOption=RAW" in append.request.url  # "=HYPERLINK(...)" stays text, never a formula
    assert "insertDataOption=INSERT_ROWS" in append.request.url
    assert json.loads(append.request.body)["values"] == [
        ["run_at", "order_id", "note"],
        ["2026-11-23T09:00:00+00:00", 1, '=HYPERLINK("http://evil")'],
        ["2026-11-23T09:00:00+00:00", 4, "+1 cancelled"],
    ]


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
    api.post(f"{API}/{KEY}/values/%27late%27%21A1:append", json={"spreadsheetId": KEY, "updates": {}})
    source().publish(report(exported("late_settle", "late")))
    (append,) = [c for c in api.calls if ":append" in c.request.url]
    assert json.loads(append.request.body)["values"][0][0] == "2026-11-23T09:00:00+00:00"


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
