"""The local Sheets API server answers as Google did: gspread's recorded traffic replayed against it.

Each recording (tests/fixtures/sheets-api, made by gspread's own test suite against the real API) is a
sequence of requests and Google's answers. Replayed in order against a fresh local server, every request must
pass the discovery-document checks (so the checks refuse nothing the real API accepted) and every answer
must equal Google's, apart from what Google chose at random (the ids of new worksheets).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests import sheets_discovery as discovery
from tests.sheets_server import RECORDINGS, SheetsServer, new_spreadsheet, serving

SHEETS = "https://sheets.googleapis.com"
DRIVE_FILES = "https://www.googleapis.com/drive/v3/files"
CASSETTES = sorted(p.name for p in RECORDINGS.glob("*.json"))


@pytest.fixture(scope="module")
def server():
    with serving() as running:
        yield running


def interactions(cassette: str) -> list[dict[str, Any]]:
    return json.loads((RECORDINGS / cassette).read_text())["interactions"]


def replace_ids(value: Any, ids: dict[int, int]) -> Any:
    """Google's random sheet ids, as the local server numbered the same worksheets."""
    if isinstance(value, dict):
        return {k: (ids.get(v, v) if k == "sheetId" else replace_ids(v, ids)) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_ids(v, ids) for v in value]
    return value


def replay(server: SheetsServer, cassette: str) -> list[tuple[int, Any, Any, int, int]]:
    """(index, Google's answer, the local answer, Google's status, the local status) per Sheets API request."""
    ids: dict[int, int] = {}
    compared = []
    for index, interaction in enumerate(interactions(cassette)):
        request, response = interaction["request"], interaction["response"]
        uri, method = request["uri"], request["method"]
        if uri.startswith(DRIVE_FILES):  # the recordings create and delete spreadsheets through Drive
            if method == "POST":
                created = json.loads(response["body"]["string"])
                title = json.loads(request["body"])["name"]
                server.spreadsheets[created["id"]] = new_spreadsheet(created["id"], title=title)
            continue
        assert uri.startswith(SHEETS), uri
        body = json.loads(request["body"]) if request["body"] else None
        key = uri.removeprefix(SHEETS + "/v4/spreadsheets/").split("/")[0].split(":")[0].split("?")[0]
        if response["status"]["code"] == 403 and key not in server.spreadsheets:
            server.spreadsheets[key] = new_spreadsheet(key)  # someone else's spreadsheet, not shared with us
            server.spreadsheets[key].access = "none"
        answer = requests.request(
            method, server.url + uri.removeprefix(SHEETS), json=replace_ids(body, ids), timeout=10
        )
        expected = json.loads(response["body"]["string"]) if response["body"]["string"] else None
        got = answer.json()
        for mine, theirs in zip(
            [r.get("addSheet") for r in (got or {}).get("replies", [])],
            [r.get("addSheet") for r in (expected or {}).get("replies", [])],
            strict=False,
        ):
            if mine and theirs:
                ids[theirs["properties"]["sheetId"]] = mine["properties"]["sheetId"]
        compared.append((index, replace_ids(expected, ids), got, response["status"]["code"], answer.status_code))
    return compared


@pytest.mark.parametrize("cassette", CASSETTES)
def test_the_local_server_answers_the_recorded_requests_as_google_did(server, cassette) -> None:
    results = replay(server, cassette)
    assert results, f"{cassette} has no Sheets API request"
    for index, expected, got, expected_status, status in results:
        assert status == expected_status, f"interaction {index}: {got}"
        assert got == expected, f"interaction {index} of {cassette}"


def test_every_recorded_request_body_conforms_to_the_discovery_document() -> None:
    checked = 0
    for cassette in CASSETTES:
        for interaction in interactions(cassette):
            request = interaction["request"]
            if not request["uri"].startswith(SHEETS):
                continue
            path = request["uri"].removeprefix(SHEETS).split("?")[0]
            method, _ = discovery.find_method(request["method"], path)
            body = json.loads(request["body"]) if request["body"] else None
            discovery.check_body(method, discovery.without_nulls(body))
            checked += 1
    assert checked > 50


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", ":batchUpdate", {"requests": [{"updateCels": {}}]}, 'Unknown name "updateCels"'),
        ("POST", ":batchUpdate", {"requests": [{}]}, "No request set"),
        (
            "POST",
            ":batchUpdate",
            {"requests": [{"appendDimension": {"sheetId": 0, "dimension": "ROW", "length": 1}}]},
            "'ROW' is not one of",
        ),
        ("POST", ":batchUpdate", {"requests": [{"addSheet": {"properties": {"sheetId": 2**31}}}]}, "maximum"),
        (
            "POST",
            ":batchUpdate",
            {"requests": [{"updateCells": {"start": {"sheetId": 0}, "rows": []}}]},
            "At least one field must be specified",
        ),
        (
            "POST",
            ":batchUpdate",
            {"requests": [{"updateCells": {"start": {"sheetId": 0}, "rows": [], "fields": "userEnteredValue,notes"}}]},
            "Invalid field mask path 'notes'",
        ),
        (
            "POST",
            ":batchUpdate",
            {
                "requests": [
                    {
                        "updateCells": {
                            "start": {"sheetId": 0},
                            "fields": "userEnteredValue",
                            "rows": [{"values": [{"userEnteredValue": {"stringValue": "a", "numberValue": 1}}]}],
                        }
                    }
                ]
            },
            "more than one kind of value",
        ),
        ("GET", "/values/Sheet1?valueRenderOption=RAW", None, "Invalid value at 'valueRenderOption'"),
        ("GET", "/values/Sheet1?render=1", None, 'Unknown name "render": Cannot bind query parameter'),
        ("GET", "?fields=sheets.propertys", None, "Invalid field mask path 'sheets.propertys'"),
        ("POST", "/values/Sheet1:append?valueInputOption=RAW", {"values": [["a"]], "rows": 1}, 'Unknown name "rows"'),
    ],
)
def test_a_request_the_api_would_refuse_is_a_400_naming_what_is_wrong(server, method, path, body, message) -> None:
    server.spreadsheets["refusals"] = new_spreadsheet("refusals")
    before = server.spreadsheets["refusals"]
    answer = requests.request(method, f"{server.url}/v4/spreadsheets/refusals{path}", json=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in answer.json()["error"]["message"]
    assert server.spreadsheets["refusals"] is before  # nothing applied


def test_a_batch_update_applies_all_of_its_requests_or_none(server) -> None:
    server.spreadsheets["atomic"] = book = new_spreadsheet("atomic")
    requests_ = [
        {"addSheet": {"properties": {"title": "status"}}},
        {"deleteConditionalFormatRule": {"sheetId": 0, "index": 3}},  # there is no such rule
    ]
    answer = requests.post(f"{server.url}/v4/spreadsheets/atomic:batchUpdate", json={"requests": requests_}, timeout=10)
    assert answer.status_code == 400 and "requests[1].deleteConditionalFormatRule" in answer.json()["error"]["message"]
    assert [s.title for s in server.spreadsheets["atomic"].sheets] == ["Sheet1"] and server.spreadsheets[
        "atomic"
    ] is book
