"""Turns registry rows (CSV or Sheet) into checks; a bad row becomes an invalid check, never a failed run."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from anomaly_monitor.columns import BY_NAME, REQUIRED, Kind
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import Check, CheckType, Direction, InvalidCheck, Seasonality, Severity
from anomaly_monitor.readonly import read_only_error
from anomaly_monitor.schedule import ScheduleError, check_schedule

REQUIRED_COLUMNS = REQUIRED
FIRST_DATA_ROW = 2  # row 1 is the header, as a spreadsheet numbers them
HEADER_SEARCH_ROWS = 20  # a header pushed down by a title or notes above it is found this far down

NAME = re.compile(r"[a-z0-9_-]{1,64}")
CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{2,}")
OWNER = re.compile(r"[UWS][A-Z0-9]{2,}|[^@\s,]+@[^@\s,]+\.[^@\s,]+")
TAG = re.compile(r"[a-z0-9_-]+")
TRUE, FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}


class RowError(ValueError):
    """One cell is wrong; the message names the column."""


def normalize_header(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().lower()


def _is_header(row: Iterable[str]) -> bool:
    return set(REQUIRED_COLUMNS) <= {normalize_header(str(cell)) for cell in row}


def normalize_rows(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[dict[str, str]]:
    """Header-keyed rows with normalized column names; unknown columns are kept but ignored later."""
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
        raise RegistryError(
            f"the registry has no {', '.join(repr(c) for c in missing)} column; its header row must name at least "
            f"{', '.join(REQUIRED_COLUMNS)} (found: {', '.join(k for k in keys if k) or 'nothing'})"
        )
    out = []
    for row in rows:
        cells = list(row)
        out.append({k: (cells[i] if i < len(cells) else "") or "" for i, k in enumerate(keys) if k})
    return out


def _text(row: Mapping[str, str], column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return value or None


def _number(row: Mapping[str, str], column: str) -> Any:
    """A number within the column's bounds (columns.py), or None for a blank cell."""
    raw = _text(row, column)
    if raw is None:
        return None
    spec = BY_NAME[column]
    integer = spec.kind is Kind.WHOLE
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise RowError(f'column "{column}" is not a {spec.kind}: "{raw}"') from None
    if value != value or value in (float("inf"), float("-inf")):
        raise RowError(f'column "{column}" is not a finite number: "{raw}"')
    minimum = spec.minimum
    if minimum is not None and (value < minimum or (spec.above_minimum and value == minimum)):
        raise RowError(f'column "{column}" must be {spec.bound}: "{raw}"')
    return value


def _choice(row: Mapping[str, str], column: str, enum: type, default: Any) -> Any:
    raw = _text(row, column)
    if raw is None:
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        allowed = ", ".join(str(e) for e in enum)
        raise RowError(f'column "{column}" must be one of {allowed}: "{raw}"') from None


def _bool(row: Mapping[str, str], column: str, default: bool) -> bool:
    raw = _text(row, column)
    if raw is None:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise RowError(f'column "{column}" must be TRUE or FALSE (also yes/no, 1/0): "{raw}"')


def _list(row: Mapping[str, str], column: str, pattern: re.Pattern[str], what: str, lower: bool = False) -> tuple:
    raw = _text(row, column) or ""
    items = [i.strip() for i in raw.replace(";", ",").split(",") if i.strip()]
    if lower:
        items = [i.lower() for i in items]
    for item in items:
        if not pattern.fullmatch(item):
            raise RowError(f'column "{column}" has "{item}", which is not {what}')
    return tuple(items)


def _schedule(row: Mapping[str, str]) -> str | None:
    raw = _text(row, "schedule")
    if raw is not None:
        try:
            check_schedule(raw)
        except ScheduleError as exc:
            raise RowError(f'column "schedule" {exc}: "{raw}"') from None
    return raw


def _timezone(row: Mapping[str, str]) -> str:
    raw = _text(row, "timezone") or "UTC"
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RowError(f'column "timezone" is not an IANA time zone (e.g. "Europe/London"): "{raw}"') from None
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
        raise RowError(f'column "runbook" must be an http(s) URL: "{raw}"')
    return raw


def parse_check(row: Mapping[str, str], row_number: int) -> Check:
    """One registry row to a Check; raises RowError naming the column."""
    name = _text(row, "name")
    if name is None:
        raise RowError('column "name" is empty')
    if not NAME.fullmatch(name):
        raise RowError(f'column "name" must be 1-64 characters of a-z, 0-9, _ and -: "{name}"')
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
        raise RowError(f'column "channel" must be a Slack channel id (C…) or #name: "{channel}"')
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
        export_sheet=_text(row, "export_sheet"),
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


def parse_registry(rows: Iterable[Mapping[str, str]], parse: Callable[..., Check] = parse_check) -> Registry:
    """Every row becomes a Check or an InvalidCheck; fully blank rows are skipped."""
    checks: list[Check] = []
    invalid: list[InvalidCheck] = []
    first_row: dict[str, int] = {}
    for offset, row in enumerate(rows):
        row_number = FIRST_DATA_ROW + offset
        if not any((v or "").strip() for v in row.values()):
            continue
        name = _text(row, "name") or f"row-{row_number}"
        where = f'checks row {row_number} (name "{name}")'
        if name in first_row:
            message = f'{where}: column "name" repeats row {first_row[name]}; names must be unique'
            invalid.append(InvalidCheck(name, row_number, message, row_type(row)))
            continue
        first_row[name] = row_number
        try:
            checks.append(parse(row, row_number))
        except RowError as exc:
            invalid.append(InvalidCheck(name, row_number, f"{where}: {exc}", row_type(row)))
    return Registry(checks, invalid)
