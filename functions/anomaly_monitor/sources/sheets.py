"""The registry as a Google Sheet (gspread): read in one request, statuses and exported rows written back."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anomaly_monitor.clients import cached
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.exclusions import header_problem, mark_unreadable
from anomaly_monitor.models import CheckResult, CheckType, RunReport, Status
from anomaly_monitor.registry import normalize_rows
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.sheet_layout import (
    BOLD,
    DATE_TIME_FORMAT,
    NEW_SHEET_COLUMNS,
    NEW_SHEET_ROWS,
    PROBLEM_MARK,
    STATUS,
    STATUS_HEADER,
    TIMESTAMP_COLUMNS,
    serial,
    sheet_zone,
    status_formats,
)

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from gspread.http_client import HTTPClient

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
GOOGLE_SHEETS_API = "https://sheets.googleapis.com"  # where gspread sends every Sheets call
EXPORT_RUN_COLUMN = "run_at"
HTTP_TIMEOUT_S = 30
EXACT_INTEGERS = 2**53  # beyond this a spreadsheet's doubles lose digits: such ids are written as text
STATUS_FIELDS = "userEnteredValue,userEnteredFormat.numberFormat,userEnteredFormat.textFormat.bold"


def quoted(title: str) -> str:
    """A worksheet title in A1 notation: 'It''s here'."""
    return "'" + title.replace("'", "''") + "'"


def cell(value: Any, time_zone: str = "UTC") -> dict[str, Any]:
    """A typed cell. Text goes in as stringValue, so `=`, `+`, `-` or `@` never starts a formula; numbers stay
    numbers; times become date-times (serial numbers in the sheet's time zone, shown with a date format)."""
    if value is None or value == "":
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, dt.datetime):
        return {
            "userEnteredValue": {"numberValue": serial(value, time_zone)},
            "userEnteredFormat": {"numberFormat": DATE_TIME_FORMAT},
        }
    if isinstance(value, dt.date):
        days = (value - dt.date(1899, 12, 30)).days
        return {
            "userEnteredValue": {"numberValue": days},
            "userEnteredFormat": {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}},
        }
    if isinstance(value, int) and abs(value) <= EXACT_INTEGERS:
        return {"userEnteredValue": {"numberValue": value}}
    finite = (
        value.is_finite() if isinstance(value, decimal.Decimal) else isinstance(value, float) and math.isfinite(value)
    )
    if finite:
        return {"userEnteredValue": {"numberValue": float(value)}}
    return {"userEnteredValue": {"stringValue": str(value)}}


def as_date_time(value: dict[str, Any]) -> dict[str, Any]:
    """A cell of a timestamp column: shown as a date-time whatever an earlier version wrote in it."""
    return {**value, "userEnteredFormat": {"numberFormat": DATE_TIME_FORMAT}} if value else value


# -- the client -----------------------------------------------------------------------------------------------------


def sheets_session(credentials: Credentials, api_url: str | None) -> Any:
    """An authorized requests session; with SHEETS_API_URL, gspread's calls go to that server instead of Google."""
    from google.auth.transport.requests import AuthorizedSession

    class SheetsSession(AuthorizedSession):
        def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            if api_url and isinstance(url, str) and url.startswith(GOOGLE_SHEETS_API):
                url = api_url.rstrip("/") + url[len(GOOGLE_SHEETS_API) :]
            return super().request(method, url, *args, **kwargs)

    return SheetsSession(credentials)


@dataclass
class SheetsClient:
    """gspread's HTTP client and the credentials behind it (who the sheet must be shared with)."""

    http: HTTPClient
    credentials: Credentials

    @property
    def account(self) -> str:
        email = getattr(self.credentials, "service_account_email", None)  # known once a token was fetched
        return email if email and email != "default" else "the function's service account"


def sheets_client(settings: Settings) -> SheetsClient:
    """One client per instance: Application Default Credentials, or anonymous ones against SHEETS_API_URL."""

    def build() -> SheetsClient:
        import google.auth
        import gspread
        from google.auth.credentials import AnonymousCredentials

        credentials: Credentials
        if settings.sheets_api_url:
            credentials = AnonymousCredentials()
        else:
            try:
                credentials, _ = google.auth.default(scopes=SCOPES)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise RegistryError(f"no Google credentials to read the sheet: {exc}") from exc
        # gspread's client authorizes its own session; given one, it leaves `auth` aside
        client = gspread.Client(auth=credentials, session=sheets_session(credentials, settings.sheets_api_url))
        client.http_client.set_timeout(HTTP_TIMEOUT_S)
        return SheetsClient(client.http_client, credentials)

    return cached(("sheets", settings.sheets_api_url), build)


def explain(exc: Exception, key: str, account: str, *, writing: bool = False) -> str:
    """What went wrong with the spreadsheet, and what a person can do about it."""
    where = f"spreadsheet {key}"
    code = getattr(exc, "code", None)
    detail = getattr(exc, "error", {}).get("message", str(exc)) if code else str(exc)
    if code == 404:
        return f"{where} does not exist: check the key in CHECKS_SOURCE (sheets://KEY)"
    if "protected" in detail:
        return (
            f"{where} has a protected range where the monitor writes ({detail}): add {account} to its editors "
            "(Data > Protect sheets and ranges) or remove the protection"
        )
    if code == 403 and writing:
        return f"{where} is not shared with {account} as an editor: share it with Editor access"
    if code == 403:
        return f"{where} is not shared with {account}: share it (Viewer is enough to read, Editor to write statuses)"
    verb = "written" if writing else "read"
    return f"{where} could not be {verb}: {detail}"


def api_message(exc: Exception) -> str:
    """The Sheets API's own message in a gspread APIError, or "" for any other exception."""
    return getattr(exc, "error", {}).get("message", "") if getattr(exc, "code", None) else ""


def missing_worksheet(exc: Exception) -> bool:
    """Whether a values.get failed because the range's worksheet does not exist (Sheets cannot parse the range)."""
    return getattr(exc, "code", None) == 400 and "parse range" in api_message(exc)


class SheetsSource:
    def __init__(self, client: SheetsClient, key: str, settings: Settings) -> None:
        self.client = client
        self.http = client.http
        self.key = key
        self.worksheet = settings.checks_worksheet
        self.status_worksheet = settings.status_worksheet
        self.exclusions_worksheet = settings.exclusions_worksheet
        self.registry_names: list[str] | None = None  # known once read_rows has run
        self.writable = True  # False once reading showed the sheet is missing or not shared with us
        self.time_zone = "UTC"  # the spreadsheet's, read with its metadata

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> SheetsSource:
        """sheets://KEY, with Application Default Credentials (the function's service account in the cloud)."""
        return cls(sheets_client(settings), sheet_key(url), settings)

    # -- reading ---------------------------------------------------------------------------------------------------

    def read_rows(self) -> list[dict[str, str]]:
        """The whole worksheet in one values.get request; header mapping and row errors exactly as for CSV."""
        try:
            answer = self.http.values_get(self.key, quoted(self.worksheet))
        except Exception as exc:
            self.writable = getattr(exc, "code", None) not in (403, 404, None)
            raise RegistryError(self._read_error(exc)) from exc
        values = answer.get("values") or []  # an empty worksheet has no "values" at all
        if not values:
            raise RegistryError(
                f"worksheet {self.worksheet!r} of spreadsheet {self.key} is empty: it needs a header row "
                f"(`anomaly_monitor sheet init --checks sheets://{self.key}` writes one)"
            )
        try:
            rows = normalize_rows(values[0], values[1:])
        except RegistryError as exc:
            raise RegistryError(f"worksheet {self.worksheet!r} of spreadsheet {self.key}: {exc}") from None
        self.registry_names = [name for row in rows if (name := row.get("name", "").strip())]
        return rows

    def read_exclusions(self) -> list[dict[str, str]]:
        """The optional exclusions worksheet in one values.get; a missing tab means no windows."""
        try:
            answer = self.http.values_get(self.key, quoted(self.exclusions_worksheet))
        except Exception as exc:
            if not missing_worksheet(exc):
                log.warning("worksheet %r could not be read, no exclusion windows applied: %s",
                            self.exclusions_worksheet, api_message(exc) or exc)  # fmt: skip
            return []
        values = answer.get("values") or []
        if not values:
            return []
        header = [str(h) for h in values[0]]
        rows = [dict(zip(header, [str(c) for c in row] + [""] * (len(header) - len(row)), strict=False))
                for row in values[1:]]  # fmt: skip
        return mark_unreadable(rows, header_problem(header))

    def _read_error(self, exc: Exception) -> str:
        if missing_worksheet(exc):
            return self._missing_tab()
        return explain(exc, self.key, self.client.account)

    def _missing_tab(self) -> str:
        """The checks tab is not there: name the tabs that are, most likely it was renamed."""
        message = f"spreadsheet {self.key} has no worksheet {self.worksheet!r}"
        try:
            tabs = list(self._sheets())
        except Exception:  # the message without the list of tabs is still the right one
            tabs = []
        found = f" (it has {', '.join(repr(t) for t in tabs)})" if tabs else ""
        return (
            f"{message}{found}: if the tab was renamed, rename it back to {self.worksheet!r} or set "
            f"CHECKS_WORKSHEET to its new name; `anomaly_monitor sheet init` creates it"
        )

    def _sheets(self, fields: str = "sheets.properties") -> dict[str, dict[str, Any]]:
        """Title -> properties of every worksheet (one metadata request, no cell data)."""
        meta = self.http.fetch_sheet_metadata(self.key, params={"fields": fields})
        self.time_zone = meta.get("properties", {}).get("timeZone") or "UTC"
        return {s["properties"]["title"]: s["properties"] for s in meta.get("sheets", [])}

    # -- writing back ----------------------------------------------------------------------------------------------

    def publish(self, report: RunReport) -> None:
        """Rewrites the status worksheet (one atomic batchUpdate), then appends exported rows (one more).

        A Sheets outage here never fails the run: the results are already in the history table, and the next
        run rewrites the statuses."""
        try:
            sheets = self._sheets("properties.timeZone,sheets.properties")
            self._publish_statuses(report, sheets)
        except Exception as exc:
            self._log_write_error("statuses could not be written", exc, report.run_id)
            return
        exports = [
            r
            for r in report.results
            if r.status is Status.ALERT
            and r.type == str(CheckType.ROWS)
            and r.check
            and r.check.export_sheet
            and r.export_rows
        ]
        if exports:
            try:
                self._export(exports, report, sheets)
            except Exception as exc:
                self._log_write_error("failing rows could not be exported", exc, report.run_id)

    def publish_problem(self, problem: str, at: dt.datetime) -> None:
        """The registry could not be read: say so on the status tab's first line, above the last statuses."""
        if not self.writable:
            return  # not shared, or no such spreadsheet: nothing can be written, the logs say why
        try:
            sheets = self._sheets("properties.timeZone,sheets.properties")
            requests, props = self._status_tab(sheets)
            line = f"{PROBLEM_MARK} {local_time(at, self.time_zone)}: the registry could not be read: {problem}"
            requests.append(
                {
                    "updateCells": {
                        "range": {"sheetId": props["sheetId"], "startRowIndex": 0, "endRowIndex": 1},
                        "rows": [{"values": [cell(line)]}],
                        "fields": "userEnteredValue",
                    }
                }
            )
            self.http.batch_update(self.key, {"requests": requests})
        except Exception as exc:
            self._log_write_error("the problem could not be shown on the status tab", exc, None)

    def _log_write_error(self, what: str, exc: Exception, run_id: str | None) -> None:
        reason = explain(exc, self.key, self.client.account, writing=True)
        unexpected = getattr(exc, "code", None) is None  # not an answer of the API: keep the traceback
        log.error("%s to spreadsheet %s: %s", what, self.key, reason, extra={"run_id": run_id}, exc_info=unexpected)

    def _status_tab(self, sheets: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Requests that create the status worksheet when it is missing, and its properties."""
        if self.status_worksheet in sheets:
            return [], sheets[self.status_worksheet]
        requests, new = add_sheets([self.status_worksheet], sheets)
        props = new[self.status_worksheet]
        requests += status_tab_layout(props["sheetId"])
        sheets |= new
        return requests, props

    def _publish_statuses(self, report: RunReport, sheets: dict[str, dict[str, Any]]) -> None:
        previous = self._previous_statuses() if self.status_worksheet in sheets else {}
        rows = status_rows(report, previous, self.registry_names)
        requests, props = self._status_tab(sheets)
        grid = [
            [cell(run_line(report, rows, self.time_zone))],
            [cell(name) | {"userEnteredFormat": BOLD} for name in STATUS_HEADER],
            *(status_cells(row, self.time_zone) for row in rows),
        ]
        requests += fit(props, len(grid), len(STATUS_HEADER))
        requests.append(
            {
                # a range of the whole sheet: cells beyond the new rows are cleared in the same request
                "updateCells": {
                    "range": {"sheetId": props["sheetId"]},
                    "rows": [{"values": values} for values in grid],
                    "fields": STATUS_FIELDS,
                }
            }
        )
        self.http.batch_update(self.key, {"requests": requests})

    def _previous_statuses(self) -> dict[str, dict[str, Any]]:
        """The status rows earlier runs wrote, by check name, as header -> value (unformatted: numbers stay
        numbers, date-times come back as serial numbers). Found under whichever row holds the header, so the
        layouts of earlier versions are read too."""
        answer = self.http.values_get(
            self.key, quoted(self.status_worksheet), params={"valueRenderOption": "UNFORMATTED_VALUE"}
        )
        values = answer.get("values", [])
        start = next((i for i, row in enumerate(values[:3]) if row and row[0] == "name"), None)
        if start is None:
            return {}
        header = [str(h) for h in values[start]]
        return {
            str(row[0]): dict(zip(header, row, strict=False)) for row in values[start + 1 :] if row and row[0] != ""
        }

    def _export(self, exports: list[CheckResult], report: RunReport, sheets: dict[str, dict[str, Any]]) -> None:
        """Appends each check's failing rows with the run time: typed cells, so data is never a formula."""
        widths: dict[str, int] = {}
        for r in exports:
            title = str(r.check.export_sheet if r.check else "")
            widths[title] = max(widths.get(title, 0), len(r.export_rows[0]) + 1)
        requests, new = add_sheets(list(widths), sheets, max(NEW_SHEET_COLUMNS, *widths.values()))
        requests += [
            grow for title, width in widths.items() if title not in new for grow in fit(sheets[title], 0, width)
        ]
        headed: set[str] = set()
        for result in exports:
            title = str(result.check.export_sheet if result.check else "")
            columns = list(result.export_rows[0])
            values = [[report.started_at, *(row.get(c) for c in columns)] for row in result.export_rows]
            cells = [[cell(v, self.time_zone) for v in row] for row in values]
            if title in new and title not in headed:  # a new tab gets a header from its first check's columns
                headed.add(title)
                cells.insert(0, [cell(name) | {"userEnteredFormat": BOLD} for name in [EXPORT_RUN_COLUMN, *columns]])
            sheet_id = (new.get(title) or sheets[title])["sheetId"]
            rows = [{"values": row} for row in cells]
            requests.append({"appendCells": {"sheetId": sheet_id, "rows": rows, "fields": STATUS_FIELDS}})
        self.http.batch_update(self.key, {"requests": requests})


def sheet_key(url: str) -> str:
    key = url.removeprefix("sheets://").strip("/")
    if not key:
        raise RegistryError(f"{url!r} names no spreadsheet: write sheets://SPREADSHEET_KEY")
    return key


def local_time(moment: dt.datetime, time_zone: str) -> str:
    """A time as the sheet's readers think of it, for sentences (cells get real date-times)."""
    return f"{moment.astimezone(sheet_zone(time_zone)):%Y-%m-%d %H:%M} ({time_zone})"


def status_row(report: RunReport, result: CheckResult) -> dict[str, Any]:
    shown = result.value if result.value is not None else result.row_count
    incident = result.incident
    return {
        "name": result.name,
        "last run": report.started_at,
        "status": str(result.status),
        "value or row count": shown,
        "message": result.message,
        "incident since": incident.since if incident else None,
        "acknowledged by": incident.acknowledged_by if incident else None,
        "snoozed by": incident.snoozed_by if incident else None,
        "snoozed until": incident.snoozed_until if incident else None,
        "muted by": incident.muted_by if incident else None,
        "bytes": result.bytes_processed,
    }


def status_rows(
    report: RunReport, previous: dict[str, dict[str, Any]], registry: list[str] | None
) -> list[dict[str, Any]]:
    """One row per check: this run's result, or the row an earlier run wrote when this run skipped the check.

    Runs select checks by tag and schedule, so each one only knows part of the registry; merging keeps every
    check's latest real status in the sheet. Rows follow the registry's order; checks no longer in it go."""
    rows = dict(previous)
    for result in report.results:
        if result.status is not Status.SKIPPED or result.name not in rows:
            rows[result.name] = status_row(report, result)
    names = registry if registry is not None else list(rows)
    return [rows[name] for name in names if name in rows]


def status_cells(row: dict[str, Any], time_zone: str) -> list[dict[str, Any]]:
    values = [cell(row.get(column), time_zone) for column in STATUS_HEADER]
    return [as_date_time(v) if c in TIMESTAMP_COLUMNS else v for c, v in zip(STATUS_HEADER, values, strict=True)]


def run_line(report: RunReport, rows: list[dict[str, Any]], time_zone: str) -> str:
    """The status tab's first line: when it was written and the statuses at a glance."""
    counts = Counter(str(row.get("status", "")) for row in rows)
    summary = ", ".join(f"{counts[str(s)]} {s}" for s in Status if counts[str(s)]) or "no checks"
    return f"Updated {local_time(report.started_at, time_zone)} by run {report.run_id}: {summary}"


def status_tab_layout(sheet_id: int) -> list[dict[str, Any]]:
    """How a new status worksheet looks: header rows frozen, column widths, colours by status."""
    requests: list[dict[str, Any]] = [
        {
            "updateSheetProperties": {
                "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": STATUS.frozen_rows}},
                "fields": "gridProperties.frozenRowCount",
            }
        }
    ]
    requests += column_widths(sheet_id, {i: c.width for i, c in enumerate(STATUS.columns)})
    requests += [
        {"addConditionalFormatRule": {"rule": rule, "index": i}} for i, rule in enumerate(status_formats(sheet_id))
    ]
    return requests


def column_widths(sheet_id: int, widths: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "updateDimensionProperties": {
                "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": i, "endIndex": i + 1},
                "properties": {"pixelSize": width},
                "fields": "pixelSize",
            }
        }
        for i, width in widths.items()
    ]


def add_sheets(
    titles: list[str], sheets: dict[str, dict[str, Any]], columns: int = NEW_SHEET_COLUMNS
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """addSheet requests with ids chosen here, so later requests of the same batch can address them."""
    used = {p["sheetId"] for p in sheets.values()}
    requests, new = [], {}
    for title in dict.fromkeys(titles):
        if title in sheets:
            continue
        sheet_id = zlib.crc32(title.encode()) & 0x7FFFFFFF
        while sheet_id in used:
            sheet_id = (sheet_id + 1) & 0x7FFFFFFF
        used.add(sheet_id)
        grid = {"rowCount": NEW_SHEET_ROWS, "columnCount": columns}
        props = {"sheetId": sheet_id, "title": title, "gridProperties": grid}
        requests.append({"addSheet": {"properties": {**props, "gridProperties": dict(grid)}}})
        new[title] = props
    return requests, new


def fit(props: dict[str, Any], rows: int, columns: int) -> list[dict[str, Any]]:
    """Grows the grid when the cells would not fit (updateCells does not grow it)."""
    grid = props.get("gridProperties", {})
    grow = []
    for dimension, have, need in (
        ("ROWS", grid.get("rowCount", 0), rows),
        ("COLUMNS", grid.get("columnCount", 0), columns),
    ):
        if need > have:
            grow.append(
                {"appendDimension": {"sheetId": props["sheetId"], "dimension": dimension, "length": need - have}}
            )
    return grow
