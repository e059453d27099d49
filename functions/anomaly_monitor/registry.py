"""Turns registry rows (CSV or Sheet) into checks; a bad row becomes an invalid check, never a failed run."""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from anomaly_monitor.columns import BY_NAME, REQUIRED, Kind, column_letter
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import Check, CheckType, Direction, InvalidCheck, Seasonality, Severity
from anomaly_monitor.readonly import read_only_error
from anomaly_monitor.schedule import ScheduleError, check_schedule

log = logging.getLogger(__name__)
Choice = TypeVar("Choice", bound=StrEnum)

COLUMN_NAMES = tuple(BY_NAME)  # every column the registry reads (columns.py)
REQUIRED_COLUMNS = REQUIRED
FIRST_DATA_ROW = 2  # row 1 is the header, as a spreadsheet numbers them
HEADER_SEARCH_ROWS = 20  # a header pushed down by a title or notes above it is found this far down
CELL_LIMIT = 50_000  # characters in one cell: Google Sheets' own limit, so a CSV row means the same in a sheet
# A source marks a row it could not read (e.g. a broken CSV quote) with the reason under this key; no header
# can produce it, because header names are stripped of surrounding spaces.
UNREADABLE = " unreadable"

NAME = re.compile(r"[a-z0-9_-]{1,64}")
# Names the monitor gives what is not a check: "_" starts its own incidents and reports (`_registry`, the grouped
# `_cause:…`, `_exclusions_row_N`), and `row-N` stands for a row whose name cannot be shown. A check may not take
# one, or its results and history would mix with theirs.
RESERVED = re.compile(r"_.*|row-[0-9]+", re.DOTALL)
CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{2,}")
OWNER = re.compile(r"[UWS][A-Z0-9]{2,}|[^@\s,]+@[^@\s,]+\.[^@\s,]+")
TAG = re.compile(r"[a-z0-9_-]+")
TRUE, FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}
# Plain decimals only: ASCII digits, an optional sign, fraction and exponent; no "_", no "١٢", no "inf".
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
WHOLE = re.compile(r"[+-]?[0-9]+")


class RowError(ValueError):
    """One cell is wrong; the message names the column."""


def normalize_header(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().lower()


def _is_header(row: Iterable[str]) -> bool:
    return set(REQUIRED_COLUMNS) <= {normalize_header(str(cell)) for cell in row}


def normalize_rows(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[dict[str, str]]:
    """Header-keyed rows with normalized column names; unknown columns are kept but ignored later.

    Raises RegistryError when a required column is missing or a column the registry reads is named twice."""
    keys = [normalize_header(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in keys]
    if missing:
        rows = list(rows)
        lower = next((i for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]) if _is_header(row)), None)
        if lower is not None:
            raise RegistryError(
                f"the registry's header must be in row 1, but row {FIRST_DATA_ROW + lower} holds it: "
                "delete the rows above it"
            )
        found = ", ".join(k for k in keys if k)
        raise RegistryError(
            f"the registry has no {', '.join(repr(c) for c in missing)} column; its header row must name at least "
            f"{', '.join(REQUIRED_COLUMNS)} (found: {shown(found) if found else 'nothing'})"
        )
    refuse_repeated_columns(keys, COLUMN_NAMES)
    out = []
    for row in rows:
        cells = list(row)
        out.append({k: (cells[i] if i < len(cells) else "") or "" for i, k in enumerate(keys) if k})
    return out


def refuse_repeated_columns(keys: Sequence[str], columns: Iterable[str], header: str = "the registry's header") -> None:
    """A header (normalized) that names one of `columns` twice is ambiguous: raises RegistryError naming it."""
    for column in columns:
        places = [column_letter(i) for i, key in enumerate(keys) if key == column]
        if len(places) > 1:
            raise RegistryError(
                f'{header} names column "{column}" {len(places)} times (columns '
                f"{', '.join(places)}): rename or delete all but one; the monitor will not guess which one to read"
            )


def shown(text: str, limit: int = 80) -> str:
    """A cell's text as a message quotes it: cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(row: Mapping[str, str], column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return value or None


def _number(row: Mapping[str, str], column: str) -> Any:
    """A plain decimal within the column's bounds (columns.py), or None for a blank cell."""
    raw = _text(row, column)
    if raw is None:
        return None
    spec = BY_NAME[column]
    integer = spec.kind is Kind.WHOLE
    if not (WHOLE if integer else DECIMAL).fullmatch(raw):
        example = "3" if integer else "12.5"
        raise RowError(
            f'column "{column}" is not a {spec.kind}: "{shown(raw)}" (write a plain decimal such as {example})'
        )
    if integer and len(raw) > 20:  # beyond every bound here, and int() refuses thousands of digits
        raise RowError(f'column "{column}" is far too large: "{shown(raw)}"')
    value = int(raw) if integer else float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise RowError(f'column "{column}" is not a finite number: "{shown(raw)}"')
    low, high = spec.minimum, spec.maximum
    if (low is not None and (value < low or (spec.above_minimum and value == low))) or (
        high is not None and value > high
    ):
        raise RowError(f'column "{column}" must be {spec.bound}: "{shown(raw)}"')
    return value


def _choice(row: Mapping[str, str], column: str, enum: type[Choice], default: Choice) -> Choice:
    raw = _text(row, column)
    if raw is None:
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        allowed = ", ".join(str(e) for e in enum)
        raise RowError(f'column "{column}" must be one of {allowed}: "{shown(raw)}"') from None


def _bool(row: Mapping[str, str], column: str, default: bool) -> bool:
    raw = _text(row, column)
    if raw is None:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise RowError(f'column "{column}" must be TRUE or FALSE (also yes/no, 1/0): "{shown(raw)}"')


def _list(row: Mapping[str, str], column: str, pattern: re.Pattern[str], what: str, lower: bool = False) -> tuple:
    raw = _text(row, column) or ""
    items = [i.strip() for i in raw.replace(";", ",").split(",") if i.strip()]
    if lower:
        items = [i.lower() for i in items]
    for item in items:
        if not pattern.fullmatch(item):
            raise RowError(f'column "{column}" has "{shown(item)}", which is not {what}')
    return tuple(items)


def _schedule(row: Mapping[str, str]) -> str | None:
    raw = _text(row, "schedule")
    if raw is not None:
        try:
            check_schedule(raw)
        except ScheduleError as exc:
            raise RowError(f'column "schedule" {exc}: "{shown(raw)}"') from None
    return raw


def _timezone(row: Mapping[str, str]) -> str:
    raw = _text(row, "timezone") or "UTC"
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file path
        raise RowError(f'column "timezone" is not an IANA time zone (e.g. "Europe/London"): "{shown(raw)}"') from None
    return raw


def _sql(row: Mapping[str, str]) -> str:
    sql = _text(row, "sql")
    if sql is None:
        raise RowError('column "sql" is empty: write one BigQuery SELECT')
    problem = read_only_error(sql)
    if problem:
        raise RowError(f'column "sql": {problem}')
    return sql


def _runbook(row: Mapping[str, str]) -> str | None:
    raw = _text(row, "runbook")
    if raw is not None and not re.fullmatch(r"https?://\S+", raw):
        raise RowError(f'column "runbook" must be an http(s) URL: "{shown(raw)}"')
    return raw


def _export_sheet(row: Mapping[str, str], worksheets: Collection[str]) -> str | None:
    raw = _text(row, "export_sheet")
    if raw is None:
        return None
    if len(raw) > 100:
        raise RowError('column "export_sheet" is longer than the 100 characters a worksheet name may have')
    taken = {w.strip().casefold(): w for w in worksheets}  # Sheets refuses two titles that differ only in case
    if raw.casefold() in taken:
        raise RowError(
            f'column "export_sheet" names the "{taken[raw.casefold()]}" worksheet, which the monitor itself reads or '
            "writes: name another worksheet for the exported rows"
        )
    return raw


def parse_check(row: Mapping[str, str], row_number: int, worksheets: Collection[str] = ()) -> Check:
    """One registry row to a Check; raises RowError naming the column.

    `worksheets` are the registry's, status and exclusions worksheets, which export_sheet may not name."""
    name = _text(row, "name")
    if name is None:
        raise RowError('column "name" is empty')
    if not NAME.fullmatch(name):
        raise RowError(f'column "name" must be 1-64 characters of a-z, 0-9, _ and -: "{shown(name)}"')
    if RESERVED.fullmatch(name):
        raise RowError(_reserved(name))
    check_type = _choice(row, "type", CheckType, CheckType.ROWS)
    low, high = _number(row, "min"), _number(row, "max")
    if check_type is CheckType.THRESHOLD and low is None and high is None:
        raise RowError('a threshold check needs column "min", "max" or both')
    if low is not None and high is not None and low > high:
        raise RowError(f'column "min" ({low:g}) is greater than column "max" ({high:g})')
    sensitivity = _number(row, "sensitivity")
    alert_after = _number(row, "alert_after")
    renotify = _number(row, "renotify_hours")
    max_gb = _number(row, "max_gb_billed")
    channel = _text(row, "channel")
    if channel is not None and not CHANNEL.fullmatch(channel):
        raise RowError(f'column "channel" must be a Slack channel id (C…) or #name: "{shown(channel)}"')
    return Check(
        name=name,
        sql=_sql(row),
        type=check_type,
        enabled=_bool(row, "enabled", True),
        min=low,
        max=high,
        sensitivity=3.0 if sensitivity is None else sensitivity,
        seasonality=_choice(row, "seasonality", Seasonality, Seasonality.NONE),
        direction=_choice(row, "direction", Direction, Direction.BOTH),
        schedule=_schedule(row),
        timezone=_timezone(row),
        severity=_choice(row, "severity", Severity, Severity.WARNING),
        channel=channel,
        owners=_list(row, "owners", OWNER, "a Slack user id (U…/W…), user-group id (S…) or e-mail"),
        alert_after=1 if alert_after is None else alert_after,
        renotify_hours=24.0 if renotify is None else renotify,
        tags=_list(row, "tags", TAG, "a tag of a-z, 0-9, _ and -", lower=True),
        export_sheet=_export_sheet(row, worksheets),
        max_gb_billed=max_gb,
        runbook=_runbook(row),
        description=_text(row, "description"),
        row_number=row_number,
    )


def row_type(row: Mapping[str, str]) -> CheckType | None:
    """The type a row declares (rows when blank), or None when its `type` cell is not a type: what an
    invalid row reports."""
    try:
        return _choice(row, "type", CheckType, CheckType.ROWS)
    except RowError:
        return None


@dataclass
class Registry:
    checks: list[Check]
    invalid: list[InvalidCheck]


SURROGATE = re.compile("[\ud800-\udfff]")  # what undecodable bytes become (surrogateescape)


def _cell_problem(row: Mapping[str, str]) -> str | None:
    """What makes a row unreadable before any column is parsed: a cell too large or not text."""
    if row.get(UNREADABLE):
        return row[UNREADABLE]
    for column in COLUMN_NAMES:
        value = row.get(column) or ""
        if len(value) > CELL_LIMIT:
            return (
                f'column "{column}" holds {len(value):,} characters, more than the {CELL_LIMIT:,} a cell may hold '
                "(Google Sheets' limit): shorten it"
            )
        if SURROGATE.search(value):
            return f'column "{column}" is not UTF-8 text: save the file as UTF-8'
    return None


def _reserved(name: str) -> str:
    if name.startswith("_"):
        what = 'names starting with "_" are the monitor\'s own (_registry, _exclusions_row_N, grouped incidents)'
        fix = name.lstrip("_")
    else:
        what = "row-N names a row whose name cannot be read"
        fix = f"{name}-check"
    hint = f', e.g. "{fix}"' if NAME.fullmatch(fix) and not RESERVED.fullmatch(fix) else ""
    return f'column "name" "{name}" is reserved: {what}; rename the check{hint}'


def _label(row: Mapping[str, str], row_number: int) -> str:
    """The name a row's result goes by: its own when that reads plainly in a message and is not reserved, else
    row-N."""
    name = _text(row, "name")
    if name and len(name) <= 64 and name.isprintable() and '"' not in name and not RESERVED.fullmatch(name):
        return name
    return f"row-{row_number}"


def parse_registry(
    rows: Iterable[Mapping[str, str]],
    worksheets: Collection[str] = (),
    prepare: Callable[[Check], None] | None = None,
) -> Registry:
    """Every row becomes a Check or an InvalidCheck; fully blank rows are skipped.

    Never raises for a row: whatever a cell holds, the row ends valid or invalid with a message naming it.
    `prepare` is given each check as soon as its row is read, while the tree its SQL was parsed into is at hand
    (a run translates the query then, so that thousands of rows never hold thousands of trees)."""
    checks: list[Check] = []
    invalid: list[InvalidCheck] = []
    first_row: dict[str, int] = {}
    for offset, row in enumerate(rows):
        row_number = FIRST_DATA_ROW + offset
        if not any((v or "").strip() for v in row.values()):
            continue
        name = _label(row, row_number)
        where = f'checks row {row_number} (name "{name}")'
        if name in first_row:
            message = f'{where}: column "name" repeats row {first_row[name]}; names must be unique'
            invalid.append(InvalidCheck(name, row_number, message, row_type(row)))
            continue
        first_row[name] = row_number
        problem = _cell_problem(row)
        if problem:
            invalid.append(InvalidCheck(name, row_number, f"{where}: {problem}", row_type(row)))
            continue
        try:
            check = parse_check(row, row_number, worksheets)
        except RowError as exc:
            invalid.append(InvalidCheck(name, row_number, f"{where}: {exc}", row_type(row)))
        except Exception as exc:  # a bug must cost one row, not the run; the log has the traceback
            log.exception("checks row %d could not be parsed", row_number)
            reason = f"{type(exc).__name__}: {shown(str(exc))}"
            invalid.append(InvalidCheck(name, row_number, f"{where}: could not be checked ({reason})", row_type(row)))
        else:
            checks.append(check)
            if prepare is not None:
                prepare(check)
    return Registry(checks, invalid)
