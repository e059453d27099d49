"""What the spreadsheet looks like: its worksheets, columns, notes, validations, widths and formats.

Pure description in Sheets API v4 terms (no I/O): `sheet init` builds the sheet from it, the Sheets source
writes statuses by it, and `sheet init --checks CSV` prints it. The checks columns come from `columns.py`, the
registry parser's own definitions, so the drop-downs and the parser cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from anomaly_monitor.columns import COLUMNS, Column, Kind, column_letter

SHEETS_EPOCH = dt.datetime(1899, 12, 30)  # day 0 of the serial numbers spreadsheets store dates as
DATE_TIME_FORMAT = {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"}
TEXT_FORMAT = {"type": "TEXT"}  # typed input stays as typed (an ISO date is not turned into a locale's date)
NEW_SHEET_ROWS, NEW_SHEET_COLUMNS = 1000, 26  # what a new worksheet gets in the Sheets UI
BOLD = {"textFormat": {"bold": True}}


@dataclass(frozen=True)
class TabColumn:
    """One column of a worksheet the monitor sets up."""

    name: str
    note: str = ""
    width: int = 110
    rule: str = ""  # what the validation accepts, in words ("" = no validation)
    number_format: dict[str, str] | None = None

    def validation(self, index: int) -> dict[str, Any] | None:
        """The DataValidationRule for this column when it sits at `index` (its formulas name row 2)."""
        return None

    def help_text(self) -> str:
        return f"{self.name}: {self.rule}."


def _formula(text: str) -> dict[str, Any]:
    return {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": text}]}


@dataclass(frozen=True)
class CheckColumn(TabColumn):
    """A registry column; its validation follows the parser's definition in columns.py."""

    spec: Column | None = None

    @classmethod
    def of(cls, spec: Column) -> CheckColumn:
        return cls(spec.name, spec.note, spec.width, _rule_text(spec), None, spec)

    def validation(self, index: int) -> dict[str, Any] | None:
        spec = self.spec
        assert spec is not None
        cell = f"{column_letter(index)}2"
        if spec.name == "name":
            letter = column_letter(index)
            # the registry's NAME, without its RESERVED names (RE2 has no lookahead: "_" cannot start one)
            condition = _formula(
                f'=AND(REGEXMATCH(TO_TEXT({cell}), "^[a-z0-9-][a-z0-9_-]{{0,63}}$"), '
                f'NOT(REGEXMATCH(TO_TEXT({cell}), "^row-[0-9]+$")), COUNTIF({letter}$2:{letter}, {cell})=1)'
            )
        elif spec.name == "runbook":
            condition = _formula(f'=REGEXMATCH(TO_TEXT({cell}), "^https?://\\S+$")')
        elif spec.kind is Kind.CHOICE:
            condition = {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": c} for c in spec.choices]}
        elif spec.kind is Kind.FLAG:
            condition = {"type": "BOOLEAN"}
        elif spec.kind in (Kind.NUMBER, Kind.WHOLE):
            # a number whose shown text is a plain decimal, as the registry reads it (a date is a number too)
            digits = "^-?[0-9]+$" if spec.kind is Kind.WHOLE else "^-?[0-9]+([.][0-9]+)?$"
            low = high = ""
            if spec.minimum is not None:
                low = f", {cell}{'>' if spec.above_minimum else '>='}{spec.minimum:g}"
            if spec.maximum is not None:
                high = f", {cell}<={spec.maximum:g}"
            condition = _formula(f'=AND(ISNUMBER({cell}), REGEXMATCH(TO_TEXT({cell}), "{digits}"){low}{high})')
        else:
            return None
        rule: dict[str, Any] = {"condition": condition, "inputMessage": self.help_text(), "strict": True}
        if spec.kind is Kind.CHOICE:
            rule["showCustomUi"] = True  # the drop-down
        return rule

    def help_text(self) -> str:
        spec = self.spec
        assert spec is not None
        blank = "" if spec.required else f" Blank = {spec.default}."
        return f"{self.name}: {self.rule}.{blank}"


def _rule_text(spec: Column) -> str:
    if spec.name == "name":
        return "1-64 characters of a-z, 0-9, _ and -, not starting with _ nor row-N (reserved), unique in the sheet"
    if spec.name == "runbook":
        return "an http(s) URL"
    if spec.kind is Kind.TEXT:
        return ""
    return spec.rule


@dataclass(frozen=True)
class ExclusionColumn(TabColumn):
    pattern: str = ""  # RE2 the text must match, for the validation

    def validation(self, index: int) -> dict[str, Any] | None:
        if not self.pattern:
            return None
        cell = f"{column_letter(index)}2"
        condition = _formula(f'=REGEXMATCH(TO_TEXT({cell}), "{self.pattern}")')
        return {"condition": condition, "inputMessage": self.help_text(), "strict": True}


@dataclass(frozen=True)
class Tab:
    """A worksheet the monitor sets up: its columns and how many header rows stay frozen."""

    columns: tuple[TabColumn, ...]
    frozen_rows: int = 1
    header_row: int = 0  # 0-based row of the header

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


CHECKS = Tab(tuple(CheckColumn.of(spec) for spec in COLUMNS))

ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
WINDOW_RULE = "an ISO-8601 date (2026-12-24: the whole day, in the check's timezone) or timestamp (2026-12-24 06:00)"
EXCLUSIONS = Tab(
    (
        ExclusionColumn(
            "check",
            "The check whose baseline and verdicts skip this window, or * for every check.\n\nExample: orders_daily",
            150,
            "a check name, or * for all",
            None,
            r"^(\*|[a-z0-9_-]{1,64})$",
        ),
        ExclusionColumn(
            "from",
            "Start of the window: an ISO-8601 date (the whole day, in the check's timezone) or timestamp."
            "\n\nExample: 2026-12-24",
            150,
            WINDOW_RULE,
            TEXT_FORMAT,
            ISO_TIME,
        ),
        ExclusionColumn(
            "to",
            "End of the window, included: a date means up to the end of that day.\n\nExample: 2026-12-26",
            150,
            WINDOW_RULE,
            TEXT_FORMAT,
            ISO_TIME,
        ),
        ExclusionColumn(
            "reason",
            "Why the window is excluded; shown in the note of a check judged inside it.\n\nExample: Christmas",
            300,
        ),
    )
)

# -- the status worksheet ------------------------------------------------------------------------------------------

TIMESTAMP_COLUMNS = ("last run", "incident since", "snoozed until")
STATUS = Tab(
    (
        TabColumn("name", width=200),
        TabColumn("last run", width=140, number_format=DATE_TIME_FORMAT),
        TabColumn("status", width=70),
        TabColumn("value or row count", width=120),
        TabColumn("message", width=420),
        TabColumn("incident since", width=140, number_format=DATE_TIME_FORMAT),
        TabColumn("acknowledged by", width=120),
        TabColumn("snoozed by", width=110),
        TabColumn("snoozed until", width=140, number_format=DATE_TIME_FORMAT),
        TabColumn("muted by", width=110),
        TabColumn("bytes", width=100),
    ),
    frozen_rows=2,
    header_row=1,  # row 1 says when the statuses were written, or why they could not be
)
STATUS_HEADER = STATUS.names
PROBLEM_MARK = "⚠"

# light fills that keep black text readable; the status word is there for those who do not see colour
COLOURS = {
    "alert": {"red": 0.96, "green": 0.78, "blue": 0.76},
    "error": {"red": 0.99, "green": 0.87, "blue": 0.70},
    "invalid": {"red": 0.88, "green": 0.82, "blue": 0.95},
    "ok": {"red": 0.85, "green": 0.94, "blue": 0.83},
}
GREY = {"red": 0.45, "green": 0.45, "blue": 0.45}


def status_formats(sheet_id: int) -> list[dict[str, Any]]:
    """Conditional format rules of the status worksheet: rows tinted by status, a problem line in red."""
    status = column_letter(STATUS_HEADER.index("status"))
    width = len(STATUS_HEADER)
    rows = {"sheetId": sheet_id, "startRowIndex": STATUS.header_row + 1, "startColumnIndex": 0, "endColumnIndex": width}
    first = STATUS.header_row + 2  # the first status row, as the formulas number rows

    def when(formula: str, fmt: dict[str, Any], ranges: dict[str, Any]) -> dict[str, Any]:
        return {"ranges": [ranges], "booleanRule": {"condition": _formula(formula), "format": fmt}}

    problem = {
        "sheetId": sheet_id,
        "startRowIndex": 0,
        "endRowIndex": 1,
        "startColumnIndex": 0,
        "endColumnIndex": width,
    }
    rules = [
        when(
            f'=LEFT($A$1, 1)="{PROBLEM_MARK}"',
            {"backgroundColor": {"red": 0.85, "green": 0.2, "blue": 0.2}, "textFormat": {"bold": True}},
            problem,
        )
    ]
    for word, colour in COLOURS.items():
        rules.append(when(f'=${status}{first}="{word}"', {"backgroundColor": colour}, rows))
    rules.append(when(f'=${status}{first}="skipped"', {"textFormat": {"foregroundColor": GREY}}, rows))
    return rules


def sheet_zone(time_zone: str) -> zoneinfo.ZoneInfo:
    """The spreadsheet's time zone; UTC when it names one Python does not know."""
    try:
        return zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def serial(moment: dt.datetime, time_zone: str) -> float:
    """A time as the sheet stores date-times: days since 1899-12-30, in the spreadsheet's time zone."""
    local = moment.astimezone(sheet_zone(time_zone)).replace(tzinfo=None) if moment.tzinfo else moment
    return (local - SHEETS_EPOCH) / dt.timedelta(days=1)


# -- a first-time user's sheet --------------------------------------------------------------------------------------

EXAMPLE_CHECK: dict[str, Any] = {
    "name": "example_stuck_orders",
    "enabled": False,
    "type": "rows",
    "sql": (
        "SELECT order_id, authorised_at FROM orders WHERE status = 'authorised' "
        "AND authorised_at < TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)"
    ),
    "schedule": "0 * * * *",
    "severity": "warning",
    "description": "An example: orders authorised over a week ago and still not settled. Point the SQL at a "
    "table of yours, then tick enabled.",
}
FIRST_STATUS_LINE = "Statuses appear here after the monitor's first run."


def describe(checks_header: list[str] | None = None) -> str:
    """What `sheet init` would create, in words, for review without Google (the local `--checks CSV`)."""
    lines = ["Worksheet checks (header row frozen):", ""]
    lines.append(f"  {'column':<16}{'width':>6}  validation (strict: a bad entry is refused, with this help text)")
    for index, column in enumerate(CHECKS.columns):
        rule = column.validation(index)
        shown = _validation_words(rule) if rule else "none (free text)"
        lines.append(f"  {column.name:<16}{column.width:>6}  {shown}")
    lines += ["", "  Notes on the header cells:"]
    for column in CHECKS.columns:
        note = column.note.replace("\n\n", " | ").replace("\n", " | ")
        lines.append(f"    {column.name}: {note}")
    lines += ["", "  A new spreadsheet also gets one example check (disabled):"]
    lines += [f"    {k} = {v}" for k, v in EXAMPLE_CHECK.items()]
    if checks_header is not None:
        have = {h.strip().lower() for h in checks_header}
        missing = [name for name in CHECKS.names if name not in have]
        found = f"missing columns would be appended: {', '.join(missing)}" if missing else "it has every column"
        lines += ["", f"  This registry's header: {found}."]
    lines += ["", "Worksheet status (the monitor rewrites it after each run; two header rows frozen):"]
    lines.append("  row 1: when the statuses were written, or what stopped the last run from reading the registry")
    lines.append("  row 2: " + " | ".join(STATUS_HEADER))
    lines.append(f"  {', '.join(TIMESTAMP_COLUMNS)}: date-times in the spreadsheet's time zone")
    lines.append("  rows tinted by status: " + ", ".join(COLOURS) + "; skipped in grey; a problem line in red")
    lines += ["", "Worksheet exclusions (optional windows left out of anomaly baselines; header row frozen):"]
    for column in EXCLUSIONS.columns:
        kept = " (kept as typed text)" if column.number_format else ""
        lines.append(f"  {column.name:<8} {column.rule or 'free text'}{kept}")
    return "\n".join(lines) + "\n"


def _validation_words(rule: dict[str, Any]) -> str:
    condition = rule["condition"]
    values = [v["userEnteredValue"] for v in condition.get("values", [])]
    kind = condition["type"]
    if kind == "ONE_OF_LIST":
        return "drop-down: " + ", ".join(values)
    if kind == "BOOLEAN":
        return "checkbox"
    if kind == "CUSTOM_FORMULA":
        return f"{rule['inputMessage'].split(': ', 1)[1]}  [{values[0]}]"
    return rule["inputMessage"].split(": ", 1)[1]
