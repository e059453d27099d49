"""A local HTTP server speaking the Google Sheets API v4 methods the product and gspread use, keeping state.

Spreadsheets live in memory (cells with their values, formats, notes and validations; conditional formats,
protected ranges, column widths, frozen rows), so a test can run `sheet init`, edit a cell, run the monitor and
read back the status tab. Every request is first checked against the API's discovery document
(tests/sheets_discovery.py): an unknown method, parameter or field, a wrong type or enum value, or a field mask
naming no field is a 400, as from Google. Answers follow the recorded traffic in tests/fixtures/sheets-api
(test_sheets_server.py replays it). A batchUpdate applies all of its requests or none.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests import sheets_discovery as discovery

RECORDINGS = Path(__file__).with_name("fixtures") / "sheets-api"
NEW_SPREADSHEET = "ClientTest.test_open_by_key_has_metadata.json"  # what Google answers for a new spreadsheet
EPOCH = dt.datetime(1899, 12, 30)
PROTECTED = (
    "You are trying to edit a protected cell or object. Please contact the spreadsheet owner to remove protection "
    "if you need to edit it."
)


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str) -> None:
        super().__init__(message)
        self.body = {"error": {"code": code, "message": message, "status": status}}
        self.code = code


def bad(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_ARGUMENT")


# -- A1 notation ----------------------------------------------------------------------------------------------------


def column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - ord("A") + 1
    return index - 1


def column_letters(index: int) -> str:
    letters, index = "", index + 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def title_in_a1(title: str) -> str:
    """Google quotes a title in the ranges it answers only when it has to."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) and not re.fullmatch(r"[A-Za-z]{1,3}\d+", title)
    return title if plain else "'" + title.replace("'", "''") + "'"


@dataclass
class Area:
    """A rectangle of a sheet, 0-based, end exclusive; None = open on that side (clipped to the grid)."""

    sheet: Sheet
    row0: int = 0
    col0: int = 0
    row1: int | None = None
    col1: int | None = None

    def clipped(self) -> tuple[int, int, int, int]:
        grid = self.sheet.grid
        row1 = grid["rowCount"] if self.row1 is None else self.row1
        col1 = grid["columnCount"] if self.col1 is None else self.col1
        return self.row0, self.col0, row1, col1

    def a1(self) -> str:
        """The range as Google names it in its answers: clipped to the grid, the title quoted if need be."""
        r0, c0, r1, c1 = self.clipped()
        cells = f"{column_letters(c0)}{r0 + 1}"
        if (r1 - r0, c1 - c0) != (1, 1):
            cells += f":{column_letters(c1 - 1)}{r1}"
        return f"{title_in_a1(self.sheet.title)}!{cells}"


# -- the spreadsheet ------------------------------------------------------------------------------------------------


@dataclass
class Sheet:
    properties: dict[str, Any]
    cells: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # (row, column) -> CellData
    conditional_formats: list[dict[str, Any]] = field(default_factory=list)
    protected_ranges: list[dict[str, Any]] = field(default_factory=list)
    widths: dict[int, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.properties["title"]

    @property
    def id(self) -> int:
        return self.properties["sheetId"]

    @property
    def grid(self) -> dict[str, Any]:
        return self.properties["gridProperties"]

    def extent(self) -> tuple[int, int]:
        """Rows and columns up to the last cell with a value."""
        filled = [k for k, v in self.cells.items() if v.get("userEnteredValue")]
        return (max(r for r, _ in filled) + 1, max(c for _, c in filled) + 1) if filled else (0, 0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"properties": self.properties}
        if self.conditional_formats:
            out["conditionalFormats"] = self.conditional_formats
        if self.protected_ranges:
            out["protectedRanges"] = self.protected_ranges
        return out


@dataclass
class Spreadsheet:
    id: str
    properties: dict[str, Any]
    sheets: list[Sheet]
    access: str = "writer"  # writer, reader, or none (not shared with the caller)

    def sheet(self, title: str) -> Sheet | None:
        return next((s for s in self.sheets if s.title == title), None)

    def by_id(self, sheet_id: int) -> Sheet:
        for sheet in self.sheets:
            if sheet.id == sheet_id:
                return sheet
        raise bad(f"No grid with id: {sheet_id}")

    def area(self, text: str) -> Area:
        """A range in A1 notation: 'Tab'!A1:B2, Tab, A1:B2 (first tab), 'Tab'!A:A, 'Tab'!2:3, 'Tab'!A2:2."""
        match = re.fullmatch(r"(?:'((?:[^']|'')*)'|([^!']+?))(?:!(.*))?", text)
        if not match:
            raise bad(f"Unable to parse range: {text}")
        title = match.group(1).replace("''", "'") if match.group(1) is not None else match.group(2)
        cells = match.group(3)
        sheet = self.sheet(title)
        ref = r"([A-Za-z]{1,3}\d*|\d+)"
        if sheet is None and match.group(2) and cells is None and re.fullmatch(f"{ref}(:{ref})?", title):
            sheet, cells = self.sheets[0], title  # cells of the first tab
        if sheet is None:
            raise bad(f"Unable to parse range: {text}")
        if not cells:
            return Area(sheet)
        parts = cells.split(":")
        refs = [re.fullmatch(r"([A-Za-z]*)(\d*)", p) for p in parts]
        if len(parts) > 2 or not all(refs) or any(not (m.group(1) or m.group(2)) for m in refs):
            raise bad(f"Unable to parse range: {text}")
        (start, end) = (refs[0], refs[-1])
        area = Area(sheet)
        area.col0 = column_index(start.group(1)) if start.group(1) else 0
        area.row0 = int(start.group(2)) - 1 if start.group(2) else 0
        if len(parts) == 1:
            area.col1, area.row1 = area.col0 + 1, area.row0 + 1
        else:
            area.col1 = column_index(end.group(1)) + 1 if end.group(1) else None
            area.row1 = int(end.group(2)) if end.group(2) else None
        return area

    def snapshot(self) -> Spreadsheet:
        """A copy to change; cells are shared, as they are replaced, never changed in place."""
        sheets = [
            Sheet(
                copy.deepcopy(s.properties),
                dict(s.cells),
                copy.deepcopy(s.conditional_formats),
                copy.deepcopy(s.protected_ranges),
                dict(s.widths),
            )
            for s in self.sheets
        ]
        return Spreadsheet(self.id, copy.deepcopy(self.properties), sheets, self.access)

    def to_json(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.id,
            "properties": self.properties,
            "sheets": [s.to_json() for s in self.sheets],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.id}/edit",
        }


def new_spreadsheet(key: str, title: str = "checks", time_zone: str | None = None) -> Spreadsheet:
    """A spreadsheet as Google creates it: one empty 1000 x 26 tab "Sheet1" (from the recorded answer)."""
    interaction = json.loads((RECORDINGS / NEW_SPREADSHEET).read_text())["interactions"][1]
    meta = json.loads(interaction["response"]["body"]["string"])
    properties = {**meta["properties"], "title": title}
    if time_zone:
        properties["timeZone"] = time_zone
    return Spreadsheet(key, properties, [Sheet(copy.deepcopy(s["properties"])) for s in meta["sheets"]])


# -- values -----------------------------------------------------------------------------------------------------------


def serial_to_datetime(value: float) -> dt.datetime:
    return EPOCH + dt.timedelta(days=value)


def render_pattern(value: float, pattern: str) -> str:
    moment = serial_to_datetime(value)
    out = pattern.replace("yyyy", f"{moment.year:04d}").replace("mm", "\0", 1)
    out = out.replace("dd", f"{moment.day:02d}").replace("hh", f"{moment.hour:02d}")
    out = out.replace("mm", f"{moment.minute:02d}").replace("ss", f"{moment.second:02d}")
    return out.replace("\0", f"{moment.month:02d}")


def number_text(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def formatted(cell: dict[str, Any]) -> str:
    value = cell.get("userEnteredValue") or {}
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return "TRUE" if value["boolValue"] else "FALSE"
    if "numberValue" in value:
        fmt = cell.get("userEnteredFormat", {}).get("numberFormat", {})
        if fmt.get("type") in ("DATE", "DATE_TIME", "TIME") and fmt.get("pattern"):
            return render_pattern(value["numberValue"], fmt["pattern"])
        return number_text(value["numberValue"])
    return ""  # formulas are not calculated here


def unformatted(cell: dict[str, Any], render: str) -> Any:
    value = cell.get("userEnteredValue") or {}
    if render == "FORMULA" and "formulaValue" in value:
        return value["formulaValue"]
    if render == "FORMATTED_VALUE":
        return formatted(cell)
    for kind in ("stringValue", "boolValue"):
        if kind in value:
            return value[kind]
    if "numberValue" in value:
        number = value["numberValue"]
        return int(number) if float(number).is_integer() and abs(number) < 1e15 else number
    return ""


def entered(raw: Any, how: str, text_format: bool) -> dict[str, Any]:
    """A value of a values.update/append body as Sheets stores it (RAW: as is; USER_ENTERED: parsed as typed)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, bool):
        return {"userEnteredValue": {"boolValue": raw}}
    if isinstance(raw, int | float):
        return {"userEnteredValue": {"numberValue": raw}}
    text = str(raw)
    if how == "RAW" or text_format:
        return {"userEnteredValue": {"stringValue": text}}
    if text.startswith("'"):
        return {"userEnteredValue": {"stringValue": text[1:]}}
    if text.startswith("="):
        return {"userEnteredValue": {"formulaValue": text}}
    if text.upper() in ("TRUE", "FALSE"):
        return {"userEnteredValue": {"boolValue": text.upper() == "TRUE"}}
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text) and math.isfinite(float(text)):
        return {"userEnteredValue": {"numberValue": float(text) if re.search(r"[.eE]", text) else int(text)}}
    date = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?", text)
    if date:
        parts = [int(p) if p else 0 for p in date.groups()]
        moment = dt.datetime(*parts[:3], *parts[3:])
        days = (moment - EPOCH) / dt.timedelta(days=1)
        pattern = "yyyy-mm-dd hh:mm:ss" if date.group(4) else "yyyy-mm-dd"
        kind = "DATE_TIME" if date.group(4) else "DATE"
        return {
            "userEnteredValue": {"numberValue": days},
            "userEnteredFormat": {"numberFormat": {"type": kind, "pattern": pattern}},
        }
    return {"userEnteredValue": {"stringValue": text}}


def _merge(cell: dict[str, Any], new: dict[str, Any], mask: dict[str, Any]) -> dict[str, Any]:
    """Cell data after an update of the masked fields (a masked field absent from `new` is cleared).

    Stored data is never changed in place (a new dict is made), so it can be shared between snapshots."""
    out = dict(cell)
    for name, sub in mask.items():
        if name == "*":
            return dict(new)
        if not sub or name not in out or not isinstance(out.get(name), dict):
            if name in new:
                out[name] = new[name]
            elif not sub:
                out.pop(name, None)
            elif isinstance(new.get(name), dict) or name not in out:
                out[name] = _merge(out.get(name, {}), new.get(name, {}), sub)
        else:
            out[name] = _merge(out[name], new.get(name, {}), sub)
        if out.get(name) in ({}, None):
            out.pop(name, None)
    return out


# -- the server -----------------------------------------------------------------------------------------------------


@dataclass
class Call:
    method: str  # the API method, e.g. spreadsheets.values.get
    http_method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0


class SheetsServer:
    """A real ThreadingHTTPServer on 127.0.0.1; `url` is what SHEETS_API_URL would be."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.calls: list[Call] = []
        self.down = False  # every request answers 503
        self._lock = threading.Lock()
        self._next_sheet_id = 1_000_000
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> SheetsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- set-up and reading by tests ---------------------------------------------------------------------------

    def create(self, key: str, **kwargs: Any) -> Spreadsheet:
        self.spreadsheets[key] = new_spreadsheet(key, **kwargs)
        return self.spreadsheets[key]

    def values(self, key: str, a1: str, render: str = "FORMATTED_VALUE") -> list[list[Any]]:
        """What values.get would answer (trailing blanks dropped)."""
        return self._values(self.spreadsheets[key], a1, render).get("values", [])

    def cell(self, key: str, title: str, row: int, column: int) -> dict[str, Any]:
        """A cell's data (0-based row and column)."""
        sheet = self.spreadsheets[key].sheet(title)
        assert sheet is not None, f"no tab {title!r}"
        return sheet.cells.get((row, column), {})

    def requests(self, method: str | None = None) -> list[Call]:
        """The calls made to the API (optionally of one method, e.g. spreadsheets.batchUpdate)."""
        return [c for c in self.calls if method is None or c.method == method]

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, answer = server.handle(self.command, self.path, raw)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler

    def handle(self, http_method: str, target: str, raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        call = Call("", http_method, parts.path, query, None)
        with self._lock:
            self.calls.append(call)
            try:
                if self.down:
                    raise ApiError(503, "The service is currently unavailable.", "UNAVAILABLE")
                found = discovery.find_method(http_method, parts.path)
                if found is None:
                    raise ApiError(404, f"Method not found: {http_method} {parts.path}", "NOT_FOUND")
                method, params = found
                call.method = method.name
                try:
                    body = discovery.without_nulls(json.loads(raw)) if raw else None
                except ValueError:
                    raise bad("Invalid JSON payload received.") from None
                call.body = body
                discovery.check_query(method, query)
                discovery.check_body(method, body)
                answer = self.dispatch(method, {k: unquote(v) for k, v in params.items()}, query, body or {})
                call.status = 200
                return 200, answer
            except discovery.BadRequest as exc:
                call.status = 400
                return 400, bad(str(exc)).body
            except ApiError as exc:
                call.status = exc.code
                return exc.code, exc.body

    def dispatch(self, method: discovery.Method, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Any:
        book = self.spreadsheets.get(params["spreadsheetId"])
        if book is None:
            raise ApiError(404, "Requested entity was not found.", "NOT_FOUND")
        writes = method.http_method != "GET" and not method.name.endswith(("batchGet", "getByDataFilter"))
        if book.access == "none" or (writes and book.access != "writer"):
            raise ApiError(403, "The caller does not have permission", "PERMISSION_DENIED")
        one = {k: v[0] for k, v in query.items()}
        handler = getattr(self, "api_" + method.name.replace(".", "_"), None)
        if handler is None:
            raise ApiError(501, f"the local Sheets server does not implement {method.name}", "UNIMPLEMENTED")
        answer = handler(book, params, one, query, body)
        if "fields" in one and method.name != "spreadsheets.get":
            discovery.check_mask(method.spec["response"]["$ref"], one["fields"], "fields")
            answer = discovery.select(answer, discovery.parse_mask(one["fields"]))
        return answer

    # -- spreadsheets.get ---------------------------------------------------------------------------------------

    def api_spreadsheets_get(self, book: Spreadsheet, params, one, query, body) -> Any:
        ranges = [book.area(r) for r in query.get("ranges", [])]
        mask = discovery.parse_mask(one["fields"]) if "fields" in one else None
        if mask is not None:
            discovery.check_mask("Spreadsheet", one["fields"], "fields")
            selected = mask.get("sheets")
            with_data = selected is not None and (not selected or "data" in selected or "*" in selected)
        else:
            with_data = one.get("includeGridData", "false").lower() == "true"
        answer = book.to_json()
        if with_data:
            wanted = ranges or [Area(s) for s in book.sheets]
            answer["sheets"] = []
            for sheet in book.sheets:
                areas = [a for a in wanted if a.sheet is sheet]
                if areas:
                    answer["sheets"].append({**sheet.to_json(), "data": [grid_data(a) for a in areas]})
        return discovery.select(answer, mask) if mask is not None else answer

    # -- values ---------------------------------------------------------------------------------------------------

    def _values(self, book: Spreadsheet, a1: str, render: str = "FORMATTED_VALUE") -> dict[str, Any]:
        area = book.area(a1)
        r0, c0, r1, c1 = area.clipped()
        rows: list[list[Any]] = []
        filled_rows, filled_columns = area.sheet.extent()
        c1 = min(c1, filled_columns)
        for r in range(r0, min(r1, filled_rows)):
            row = [unformatted(area.sheet.cells.get((r, c), {}), render) for c in range(c0, c1)]
            while row and row[-1] == "":
                row.pop()
            rows.append(row)
        while rows and not rows[-1]:
            rows.pop()
        answer: dict[str, Any] = {"range": area.a1(), "majorDimension": "ROWS"}  # the range asked, in the grid
        if rows:
            answer["values"] = rows
        return answer

    def api_spreadsheets_values_get(self, book, params, one, query, body) -> Any:
        return self._values(book, params["range"], one.get("valueRenderOption", "FORMATTED_VALUE"))

    def api_spreadsheets_values_batchGet(self, book, params, one, query, body) -> Any:
        render = one.get("valueRenderOption", "FORMATTED_VALUE")
        return {
            "spreadsheetId": book.id,
            "valueRanges": [self._values(book, r, render) for r in query.get("ranges", [])],
        }

    def _write(self, area: Area, values: list[list[Any]], how: str, start_row: int | None = None) -> dict[str, Any]:
        sheet = area.sheet
        row0 = area.row0 if start_row is None else start_row
        need_rows = row0 + len(values)
        need_cols = area.col0 + max((len(r) for r in values), default=0)
        sheet.grid["rowCount"] = max(sheet.grid["rowCount"], need_rows)
        sheet.grid["columnCount"] = max(sheet.grid["columnCount"], need_cols)
        refuse_protected(sheet, row0, area.col0, need_rows, need_cols)
        for i, row in enumerate(values):
            for j, raw in enumerate(row):
                key = (row0 + i, area.col0 + j)
                old = sheet.cells.get(key, {})
                text = old.get("userEnteredFormat", {}).get("numberFormat", {}).get("type") == "TEXT"
                new = entered(raw, how, text)
                merged = {k: v for k, v in old.items() if k not in ("userEnteredValue",)}
                if "userEnteredFormat" in new:
                    merged["userEnteredFormat"] = {**merged.get("userEnteredFormat", {}), **new["userEnteredFormat"]}
                if "userEnteredValue" in new:
                    merged["userEnteredValue"] = new["userEnteredValue"]
                sheet.cells[key] = merged
        written = Area(sheet, row0, area.col0, need_rows, need_cols)
        return {
            "spreadsheetId": "",
            "updatedRange": written.a1(),
            "updatedRows": len(values),
            "updatedColumns": need_cols - area.col0,
            "updatedCells": sum(len(r) for r in values),
        }

    def api_spreadsheets_values_update(self, book, params, one, query, body) -> Any:
        how = one.get("valueInputOption")
        if not how:
            raise bad("'valueInputOption' is required but not specified")
        return {**self._write(book.area(params["range"]), body.get("values", []), how), "spreadsheetId": book.id}

    def api_spreadsheets_values_append(self, book, params, one, query, body) -> Any:
        how = one.get("valueInputOption")
        if not how:
            raise bad("'valueInputOption' is required but not specified")
        area = book.area(params["range"])
        values = body.get("values", [])
        table = find_table(area.sheet)
        if one.get("insertDataOption") == "INSERT_ROWS":
            area.sheet.grid["rowCount"] += len(values)
        start = Area(area.sheet, table.row1 or 0, table.col0) if table else Area(area.sheet, area.row0, area.col0)
        updates = self._write(start, values, how)
        answer: dict[str, Any] = {"spreadsheetId": book.id, "updates": {**updates, "spreadsheetId": book.id}}
        if table is not None:
            answer["tableRange"] = table.a1()
        return answer

    def api_spreadsheets_values_clear(self, book, params, one, query, body) -> Any:
        return {"spreadsheetId": book.id, "clearedRange": self._clear(book.area(params["range"]))}

    def api_spreadsheets_values_batchClear(self, book, params, one, query, body) -> Any:
        return {"spreadsheetId": book.id, "clearedRanges": [self._clear(book.area(r)) for r in body.get("ranges", [])]}

    def _clear(self, area: Area) -> str:
        r0, c0, r1, c1 = area.clipped()
        refuse_protected(area.sheet, r0, c0, r1, c1)
        for key, cell in list(area.sheet.cells.items()):
            if r0 <= key[0] < r1 and c0 <= key[1] < c1:
                area.sheet.cells[key] = {k: v for k, v in cell.items() if k != "userEnteredValue"}
        return area.a1()

    def api_spreadsheets_values_batchUpdate(self, book, params, one, query, body) -> Any:
        how = body.get("valueInputOption")
        if not how:
            raise bad("'valueInputOption' is required but not specified")
        responses = [
            {**self._write(book.area(d["range"]), d.get("values", []), how), "spreadsheetId": book.id}
            for d in body.get("data", [])
        ]
        return {
            "spreadsheetId": book.id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({d["range"].split("!")[0] for d in body.get("data", [])}),
            "responses": responses,
        }

    # -- spreadsheets.batchUpdate -------------------------------------------------------------------------------

    def api_spreadsheets_batchUpdate(self, book, params, one, query, body) -> Any:
        work = book.snapshot()  # all or nothing
        replies = []
        for index, request in enumerate(body.get("requests", [])):
            ((kind, spec),) = request.items()
            apply = getattr(self, "req_" + kind, None)
            if apply is None:
                raise ApiError(501, f"the local Sheets server does not implement {kind}", "UNIMPLEMENTED")
            try:
                replies.append(apply(work, spec) or {})
            except ApiError as exc:
                message = exc.body["error"]["message"]
                if exc.code == 400 and message != PROTECTED:
                    exc.body["error"]["message"] = f"Invalid requests[{index}].{kind}: {message}"
                raise
        self.spreadsheets[book.id] = work
        return {"spreadsheetId": book.id, "replies": replies}

    def req_addSheet(self, book: Spreadsheet, spec: dict[str, Any]) -> dict[str, Any]:
        props = copy.deepcopy(spec.get("properties", {}))
        title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
        if book.sheet(title):
            raise bad(f'A sheet with the name "{title}" already exists. Please enter another name.')
        if "sheetId" not in props:
            props["sheetId"] = self._next_sheet_id
            self._next_sheet_id += 1
        elif any(s.id == props["sheetId"] for s in book.sheets):
            raise bad(f"Sheet with id {props['sheetId']} already exists.")
        grid = {"rowCount": 1000, "columnCount": 26, **props.get("gridProperties", {})}
        props = {"sheetId": props["sheetId"], "title": title, "index": len(book.sheets), "sheetType": "GRID", **props}
        props["gridProperties"] = grid
        book.sheets.append(Sheet(props))
        return {"addSheet": {"properties": props}}

    def req_deleteSheet(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        sheet = book.by_id(spec["sheetId"])
        if len(book.sheets) == 1:
            raise bad("You can't remove all the sheets in a document.")
        book.sheets.remove(sheet)

    def req_updateSheetProperties(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        sheet = book.by_id(spec["properties"]["sheetId"])
        mask = discovery.parse_mask(spec["fields"])
        new_title = spec["properties"].get("title")
        if "title" in mask and new_title != sheet.title and book.sheet(new_title or ""):
            raise bad(f'A sheet with the name "{new_title}" already exists. Please enter another name.')
        sheet.properties = _merge(sheet.properties, spec["properties"], mask)
        sheet.properties.setdefault("gridProperties", {"rowCount": 1000, "columnCount": 26})

    def req_appendDimension(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        sheet = book.by_id(spec["sheetId"])
        key = "rowCount" if spec["dimension"] == "ROWS" else "columnCount"
        sheet.grid[key] += spec["length"]

    def _grid_range(self, book: Spreadsheet, spec: dict[str, Any]) -> Area:
        sheet = book.by_id(spec.get("sheetId", 0))
        area = Area(sheet, spec.get("startRowIndex", 0), spec.get("startColumnIndex", 0))
        area.row1, area.col1 = spec.get("endRowIndex"), spec.get("endColumnIndex")
        r0, c0, r1, c1 = area.clipped()
        if r1 > sheet.grid["rowCount"] or c1 > sheet.grid["columnCount"] or r0 > r1 or c0 > c1:
            raise bad(f"Range ({sheet.title}!{area.a1()}) exceeds grid limits.")
        return area

    def _set_cells(self, sheet: Sheet, row0: int, col0: int, rows: list[dict[str, Any]], mask: str, area: Area | None):
        tree = discovery.parse_mask(mask)
        need_rows, need_cols = row0 + len(rows), col0 + max((len(r.get("values", [])) for r in rows), default=0)
        if need_rows > sheet.grid["rowCount"] or need_cols > sheet.grid["columnCount"]:
            raise bad(
                f"Range ({sheet.title}!{Area(sheet, row0, col0, need_rows, need_cols).a1()}) exceeds grid limits. "
                f"Max rows: {sheet.grid['rowCount']}, max columns: {sheet.grid['columnCount']}"
            )
        r0, c0, r1, c1 = area.clipped() if area else (row0, col0, need_rows, need_cols)
        refuse_protected(sheet, r0, c0, r1, c1)
        for r in range(r0, r1):
            values = rows[r - row0].get("values", []) if 0 <= r - row0 < len(rows) else []
            for c in range(c0, c1):
                new = values[c - col0] if 0 <= c - col0 < len(values) else {}
                merged = _merge(sheet.cells.get((r, c), {}), new, tree)
                if merged:
                    sheet.cells[(r, c)] = merged
                else:
                    sheet.cells.pop((r, c), None)

    def req_updateCells(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        if "range" in spec:
            area = self._grid_range(book, spec["range"])
            self._set_cells(area.sheet, area.row0, area.col0, spec.get("rows", []), spec["fields"], area)
        else:
            start = spec["start"]
            sheet = book.by_id(start.get("sheetId", 0))
            self._set_cells(
                sheet, start.get("rowIndex", 0), start.get("columnIndex", 0), spec.get("rows", []), spec["fields"], None
            )

    def req_appendCells(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        sheet = book.by_id(spec.get("sheetId", 0))
        rows, _ = sheet.extent()
        sheet.grid["rowCount"] = max(sheet.grid["rowCount"], rows + len(spec.get("rows", [])))
        self._set_cells(sheet, rows, 0, spec.get("rows", []), spec["fields"], None)

    def req_repeatCell(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        area = self._grid_range(book, spec["range"])
        r0, c0, r1, c1 = area.clipped()
        rows = [{"values": [spec.get("cell", {})] * (c1 - c0)}] * (r1 - r0)
        self._set_cells(area.sheet, r0, c0, rows, spec["fields"], area)

    def req_setDataValidation(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        area = self._grid_range(book, spec["range"])
        r0, c0, r1, c1 = area.clipped()
        rule = spec.get("rule")
        rows = [{"values": [{"dataValidation": rule} if rule else {}] * (c1 - c0)}] * (r1 - r0)
        self._set_cells(area.sheet, r0, c0, rows, "dataValidation", area)

    def req_addConditionalFormatRule(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        rule = spec["rule"]
        if not rule.get("ranges"):
            raise bad("At least one range must be specified.")
        sheet = book.by_id(rule["ranges"][0].get("sheetId", 0))
        index = spec.get("index", 0)
        if index > len(sheet.conditional_formats):
            raise bad(f"Invalid index {index}; there are only {len(sheet.conditional_formats)} rules.")
        sheet.conditional_formats.insert(index, copy.deepcopy(rule))

    def req_deleteConditionalFormatRule(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        sheet = book.by_id(spec.get("sheetId", 0))
        index = spec.get("index", 0)
        if index >= len(sheet.conditional_formats):
            raise bad(f"No conditional format on sheet: {sheet.id} at index: {index}")
        sheet.conditional_formats.pop(index)

    def req_updateDimensionProperties(self, book: Spreadsheet, spec: dict[str, Any]) -> None:
        span = spec["range"]
        sheet = book.by_id(span.get("sheetId", 0))
        if span.get("dimension") == "COLUMNS" and "pixelSize" in discovery.parse_mask(spec["fields"]):
            for column in range(span.get("startIndex", 0), span.get("endIndex", sheet.grid["columnCount"])):
                sheet.widths[column] = spec["properties"].get("pixelSize", 100)


def find_table(sheet: Sheet) -> Area | None:
    """The table an append goes under, as Google finds it: in the last row with data, the run of filled cells
    that ends at its last filled cell, extended up over the rows above that have data in it."""
    filled = {k for k, v in sheet.cells.items() if v.get("userEnteredValue")}
    if not filled:
        return None
    last_row = max(r for r, _ in filled)
    end = max(c for r, c in filled if r == last_row)
    start = end
    while (last_row, start - 1) in filled:
        start -= 1
    top = last_row
    while any((top - 1, c) in filled for c in range(start, end + 1)):
        top -= 1
    return Area(sheet, top, start, last_row + 1, end + 1)


def grid_data(area: Area) -> dict[str, Any]:
    """GridData of a range: every cell's data, with the formatted value, up to the last filled cell per row."""
    r0, c0, r1, c1 = area.clipped()
    sheet = area.sheet
    rows = []
    for r in range(r0, min(r1, sheet.grid["rowCount"])):
        cells = []
        for c in range(c0, min(c1, sheet.grid["columnCount"])):
            data = copy.deepcopy(sheet.cells.get((r, c), {}))
            if data.get("userEnteredValue") and "formulaValue" not in data["userEnteredValue"]:
                data["effectiveValue"] = data["userEnteredValue"]
                data["formattedValue"] = formatted(data)
            cells.append(data)
        while cells and not cells[-1]:
            cells.pop()
        rows.append({"values": cells} if cells else {})
    out: dict[str, Any] = {"rowData": rows}
    if r0:
        out["startRow"] = r0
    if c0:
        out["startColumn"] = c0
    out["columnMetadata"] = [
        {"pixelSize": sheet.widths.get(c, 100)} for c in range(c0, min(c1, sheet.grid["columnCount"]))
    ]
    return out


def refuse_protected(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> None:
    for protected in sheet.protected_ranges:
        if protected.get("requestingUserCanEdit", True) or protected.get("warningOnly"):
            continue
        span = protected.get("range", {})
        inf = float("inf")
        if max(r0, span.get("startRowIndex", 0)) < min(r1, span.get("endRowIndex", inf)) and max(
            c0, span.get("startColumnIndex", 0)
        ) < min(c1, span.get("endColumnIndex", inf)):
            raise bad(PROTECTED)


@contextmanager
def serving() -> Iterator[SheetsServer]:
    server = SheetsServer().start()
    try:
        yield server
    finally:
        server.stop()
