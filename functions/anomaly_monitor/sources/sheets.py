"""The registry as a Google Sheet (gspread): read in one request, statuses and exported rows written back."""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from typing import TYPE_CHECKING, Any

from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import CheckResult, CheckType, RunReport, Status
from anomaly_monitor.registry import normalize_rows
from anomaly_monitor.settings import Settings

if TYPE_CHECKING:
    import gspread

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
STATUS_HEADER = ["name", "last run", "status", "value or row count", "message", "bytes"]
EXPORT_RUN_COLUMN = "run_at"
HTTP_TIMEOUT_S = 30


def quoted(title: str) -> str:
    """A worksheet title in A1 notation: 'It''s here'."""
    return "'" + title.replace("'", "''") + "'"


def cell(value: Any) -> dict[str, Any]:
    """A typed cell: text goes in as stringValue, so `=`, `+`, `-` or `@` never starts a formula."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": str(value)}}


def status_row(report: RunReport, result: CheckResult) -> list[Any]:
    shown = result.value if result.value is not None else result.row_count
    when = report.started_at.isoformat(timespec="seconds")
    return [result.name, when, str(result.status), shown, result.message, result.bytes_processed]


def status_rows(report: RunReport, previous: dict[str, list[Any]], registry: list[str] | None) -> list[list[Any]]:
    """One row per check: this run's result, or the row an earlier run wrote when this run skipped the check.

    Runs select checks by tag and schedule, so each one only knows part of the registry; merging keeps every
    check's latest real status in the sheet. Rows follow the registry's order; checks no longer in it go."""
    rows = dict(previous)
    for result in report.results:
        if result.status is not Status.SKIPPED or result.name not in rows:
            rows[result.name] = status_row(report, result)
    names = registry if registry is not None else list(rows)
    return [STATUS_HEADER, *(rows[name] for name in names if name in rows)]


class SheetsSource:
    def __init__(self, client: gspread.Client, key: str, worksheet: str, status_worksheet: str) -> None:
        self.client = client
        self.key = key
        self.worksheet = worksheet
        self.status_worksheet = status_worksheet
        self.registry_names: list[str] | None = None  # known once read_rows has run

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> SheetsSource:
        """sheets://KEY, with Application Default Credentials (the function's service account in the cloud)."""
        key = url.removeprefix("sheets://").strip("/")
        if not key:
            raise RegistryError(f"{url!r} names no spreadsheet: write sheets://SPREADSHEET_KEY")
        import google.auth
        import gspread

        try:
            credentials, _ = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise RegistryError(f"no Google credentials to read the sheet: {exc}") from exc
        client = gspread.Client(auth=credentials)
        client.http_client.set_timeout(HTTP_TIMEOUT_S)
        return cls(client, key, settings.checks_worksheet, settings.status_worksheet)

    # -- reading ---------------------------------------------------------------------------------------------------

    def read_rows(self) -> list[dict[str, str]]:
        """The whole worksheet in one values.get request; header mapping and row errors exactly as for CSV."""
        try:
            answer = self.client.http_client.values_get(self.key, quoted(self.worksheet))
        except Exception as exc:
            raise RegistryError(self._read_error(exc)) from exc
        values = answer.get("values") or []  # an empty worksheet has no "values" at all
        if not values:
            raise RegistryError(
                f"worksheet {self.worksheet!r} of spreadsheet {self.key} is empty: it needs a header row"
            )
        rows = normalize_rows(values[0], values[1:])
        self.registry_names = [name for row in rows if (name := row.get("name", "").strip())]
        return rows

    def _read_error(self, exc: Exception) -> str:
        where = f"spreadsheet {self.key}"
        code = getattr(exc, "code", None)
        detail = getattr(exc, "error", {}).get("message", str(exc)) if code else str(exc)
        if code == 404:
            return f"{where} does not exist: check the key in CHECKS_SOURCE (sheets://KEY)"
        if code == 403:
            who = getattr(self.client.http_client.auth, "service_account_email", "the function's service account")
            return f"{where} is not shared with {who}: share it (Viewer is enough to read, Editor to write statuses)"
        if code == 400 and "parse range" in detail:
            return f"{where} has no worksheet {self.worksheet!r}: rename the tab or set CHECKS_WORKSHEET"
        return f"{where} could not be read: {detail}"

    # -- writing back ----------------------------------------------------------------------------------------------

    def publish(self, report: RunReport) -> None:
        """Rewrites the status worksheet and appends exported rows; a Sheets outage here never fails the run."""
        try:
            self._publish(report)
        except Exception:
            # the results are already recorded in the history table; the next run rewrites the statuses
            log.exception("statuses could not be written to spreadsheet %s", self.key, extra={"run_id": report.run_id})

    def _publish(self, report: RunReport) -> None:
        exports = [
            r
            for r in report.results
            if r.status is Status.ALERT
            and r.type == str(CheckType.ROWS)
            and r.check
            and r.check.export_sheet
            and r.export_rows
        ]
        sheets = self._sheets()
        previous = self._previous_statuses() if self.status_worksheet in sheets else {}
        status_rows_ = status_rows(report, previous, self.registry_names)
        requests, new = self._add_missing([self.status_worksheet, *(r.check.export_sheet for r in exports)], sheets)
        sheets |= new
        requests += self._fit(sheets[self.status_worksheet], len(status_rows_), len(STATUS_HEADER))
        requests.append(
            {
                # a range of the whole sheet: cells beyond the new rows are cleared in the same request
                "updateCells": {
                    "range": {"sheetId": sheets[self.status_worksheet]["sheetId"]},
                    "rows": [{"values": [cell(v) for v in row]} for row in status_rows_],
                    "fields": "userEnteredValue",
                }
            }
        )
        self.client.http_client.batch_update(self.key, {"requests": requests})
        for result in exports:
            self._export(result, report, is_new=result.check.export_sheet in new)

    def _previous_statuses(self) -> dict[str, list[Any]]:
        """The status rows earlier runs wrote, by check name (unformatted, so numbers stay numbers)."""
        answer = self.client.http_client.values_get(
            self.key, quoted(self.status_worksheet), params={"valueRenderOption": "UNFORMATTED_VALUE"}
        )
        width = len(STATUS_HEADER)
        rows = answer.get("values", [])[1:]
        return {str(row[0]): (row + [None] * width)[:width] for row in rows if row and row[0] != ""}

    def _sheets(self) -> dict[str, dict[str, Any]]:
        """Title -> properties of every worksheet (one metadata request, no cell data)."""
        meta = self.client.http_client.fetch_sheet_metadata(self.key, params={"fields": "sheets.properties"})
        return {s["properties"]["title"]: s["properties"] for s in meta.get("sheets", [])}

    @staticmethod
    def _add_missing(titles: list[str], sheets: dict[str, Any]) -> tuple[list[dict], dict[str, dict[str, Any]]]:
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
            props = {"sheetId": sheet_id, "title": title, "gridProperties": {"rowCount": 1000, "columnCount": 26}}
            requests.append({"addSheet": {"properties": props}})
            new[title] = props
        return requests, new

    @staticmethod
    def _fit(props: dict[str, Any], rows: int, columns: int) -> list[dict]:
        """Grows the grid when the statuses would not fit (updateCells does not grow it)."""
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

    def _export(self, result: Any, report: RunReport, *, is_new: bool) -> None:
        """Appends the check's rows with the run time; RAW, so data is never evaluated as a formula."""
        title = result.check.export_sheet
        columns = list(result.export_rows[0])
        values = [
            [report.started_at.isoformat(timespec="seconds"), *(plain(row.get(c)) for c in columns)]
            for row in result.export_rows
        ]
        if is_new:
            values.insert(0, [EXPORT_RUN_COLUMN, *columns])
        self.client.http_client.values_append(
            self.key,
            f"{quoted(title)}!A1",
            params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
            body={"values": values},
        )


def plain(value: Any) -> Any:
    """A value the Sheets API takes in a RAW append."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)
