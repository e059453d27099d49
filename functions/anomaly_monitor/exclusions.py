"""Exclusion windows: spans left out of anomaly baselines, inside which a judged point is not an anomaly.

Rows come from the `exclusions` worksheet (locally `exclusions.csv` beside the checks CSV) with the columns
`check` (a check name or `*`), `from`, `to` (ISO-8601 date or timestamp; a date is the whole day in the
check's time zone) and `reason`. A bad row is reported as an `invalid` result and ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from anomaly_monitor.errors import RegistryError
from anomaly_monitor.models import CheckResult, Status
from anomaly_monitor.registry import (
    CELL_LIMIT,
    SURROGATE,
    UNREADABLE,
    normalize_header,
    refuse_repeated_columns,
    shown,
)

COLUMNS = ("check", "from", "to", "reason")
FIRST_DATA_ROW = 2
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The years --now takes: a window's edges, shifted into any time zone and by a day, stay representable.
EARLIEST, LATEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Window:
    check: str  # a check name, or "*" for every check
    start: dt.date | dt.datetime  # a date is the whole day in the check's time zone
    end: dt.date | dt.datetime
    reason: str
    row_number: int

    def applies_to(self, check_name: str) -> bool:
        return self.check in ("*", check_name)

    def span(self, timezone: str) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) in UTC: a date starts at its midnight and a date `to` ends at the next midnight."""
        zone = ZoneInfo(timezone)

        def instant(value: dt.date | dt.datetime, end: bool) -> dt.datetime:
            if isinstance(value, dt.datetime):
                return value if not end else value + dt.timedelta(microseconds=1)
            day = value + dt.timedelta(days=1) if end else value
            return dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(dt.UTC)

        return instant(self.start, False), instant(self.end, True)

    def describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        span = (
            self.start.isoformat() if self.start == self.end else f"{self.start.isoformat()} to {self.end.isoformat()}"
        )
        return f"exclusion window {span}{reason}"


@dataclass(frozen=True)
class Exclusions:
    windows: tuple[Window, ...] = ()
    problems: tuple[tuple[int, str], ...] = ()  # (row number, message) of rows that were ignored

    def for_check(self, name: str) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if w.applies_to(name))

    def invalid_results(self) -> list[CheckResult]:
        """Bad rows as results, like bad registry rows: in the JSON, the terminal and the exit code."""
        return [CheckResult(f"_exclusions_row_{row}", None, Status.INVALID, message) for row, message in self.problems]


def header_problem(header: Sequence[str]) -> str | None:
    """What is wrong with a header that names one of the columns twice: which cell holds a row's `from` (or
    `check`, ...) cannot be told, so the sources mark every row with it and no row is read as a window."""
    try:
        refuse_repeated_columns([normalize_header(str(cell)) for cell in header], COLUMNS, "the header")
    except RegistryError as exc:
        return str(exc)
    return None


def mark_unreadable(rows: list[dict[str, str]], problem: str | None) -> list[dict[str, str]]:
    """Rows with a header problem, each not blank marked with it (reported, not read as a window)."""
    if problem:
        for row in rows:
            if any((v or "").strip() for k, v in row.items() if k != UNREADABLE):
                row[UNREADABLE] = problem
    return rows


def parse_exclusions(rows: Sequence[Mapping[str, str]] | None) -> Exclusions:
    """Rows (header -> cell, as the registry sources give them) to windows; bad rows become problems."""
    windows: list[Window] = []
    problems: list[tuple[int, str]] = []
    for index, row in enumerate(rows or ()):
        number = index + FIRST_DATA_ROW
        cells = {normalize_header(k): (v or "").strip() for k, v in row.items() if k and k != UNREADABLE}
        if not any(cells.get(c) for c in COLUMNS) and not row.get(UNREADABLE):
            continue  # a blank line
        try:
            windows.append(_window(row.get(UNREADABLE), cells, number))
        except ValueError as exc:
            problems.append((number, f"exclusions row {number}: {exc}"))
    return Exclusions(tuple(windows), tuple(problems))


def _window(unreadable: str | None, cells: Mapping[str, str], number: int) -> Window:
    if unreadable:  # a source could not read the row as it stands (a stray quote)
        raise ValueError(unreadable)
    for column in COLUMNS:
        if len(cells.get(column, "")) > CELL_LIMIT:
            raise ValueError(f'column "{column}" holds more than the {CELL_LIMIT:,} characters a cell may hold')
        if SURROGATE.search(cells.get(column, "")):
            raise ValueError(f'column "{column}" is not UTF-8 text: save the file as UTF-8')
    check = cells.get("check", "")
    if not check:
        raise ValueError('column "check" is empty: write a check name, or * for every check')
    start, end = _moment(cells, "from"), _moment(cells, "to")
    if _sort_key(end) < _sort_key(start):
        raise ValueError(
            f'column "to" ({shown(cells["to"])}) is before column "from" ({shown(cells["from"])}): swap them'
        )
    return Window(check, start, end, cells.get("reason", ""), number)


def _moment(cells: Mapping[str, str], column: str) -> dt.date | dt.datetime:
    text = cells.get(column, "")
    if not text:
        raise ValueError(f'column "{column}" is empty: write an ISO-8601 date or time, e.g. 2026-12-25')
    try:
        moment: dt.date | dt.datetime
        if _DATE.fullmatch(text):
            moment = dt.date.fromisoformat(text)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(
            f'column "{column}" is not an ISO-8601 date or time: "{shown(text)}" (write e.g. 2026-12-25 or '
            "2026-12-25T06:00:00Z)"
        ) from None
    try:
        in_range = EARLIEST <= _sort_key(moment) < LATEST
    except OverflowError:  # a year-1 time east of UTC
        in_range = False
    if not in_range:
        raise ValueError(f'column "{column}" is not between 1970 and 2999: "{shown(text)}"')
    return moment


def _sort_key(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
