"""The domain: checks from the registry, what a query returned, and each check's result."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import repeat
from typing import Any

SAMPLE_ROWS = 20  # rows kept in a result, shown in alerts and the JSON document
EXPORT_ROWS = 1000  # rows a failing rows check appends to its export_sheet
GB = 1024**3
JSON_TEXT_LIMIT = 10_000  # characters of one text value in the JSON document; longer text is cut and ends in "…"
NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # as BigQuery's REST API writes them


def json_value(value: Any) -> Any:
    """Any value a query returned, as JSON: the one encoding of the run document (CLI `--json` and HTTP alike).

    Numbers stay numbers (NUMERIC too); NaN and infinities become the strings "NaN", "Infinity" and
    "-Infinity"; bytes become base64 text; dates and times ISO-8601 text; STRUCTs objects and ARRAYs lists;
    text longer than JSON_TEXT_LIMIT characters is cut and ends in "…"; anything else becomes its text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NOT_FINITE[str(value)]
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return NOT_FINITE["nan" if value.is_nan() else str(float(value))]
        exact = value == value.to_integral_value() and abs(value) < 10**38
        return int(value) if exact else json_value(float(value))
    if isinstance(value, bytes | bytearray | memoryview):
        # cut on a multiple of 3 bytes, so the text before "…" still decodes
        data = bytes(value)
        kept = data[: JSON_TEXT_LIMIT // 4 * 3]
        return base64.b64encode(kept).decode() + ("…" if len(kept) < len(data) else "")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= JSON_TEXT_LIMIT else text[: JSON_TEXT_LIMIT - 1] + "…"


class Status(StrEnum):
    OK = "ok"
    ALERT = "alert"
    ERROR = "error"
    INVALID = "invalid"
    SKIPPED = "skipped"


class CheckType(StrEnum):
    ROWS = "rows"
    THRESHOLD = "threshold"
    ANOMALY = "anomaly"


class Seasonality(StrEnum):
    NONE = "none"
    DAY_OF_WEEK = "day_of_week"
    HOUR_OF_DAY = "hour_of_day"


class Direction(StrEnum):
    BOTH = "both"
    UP = "up"
    DOWN = "down"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Check:
    """One valid registry row."""

    name: str
    sql: str
    type: CheckType = CheckType.ROWS
    enabled: bool = True
    min: float | None = None
    max: float | None = None
    sensitivity: float = 3.0
    seasonality: Seasonality = Seasonality.NONE
    direction: Direction = Direction.BOTH
    schedule: str | None = None
    timezone: str = "UTC"
    severity: Severity = Severity.WARNING
    channel: str | None = None
    owners: tuple[str, ...] = ()
    alert_after: int = 1
    renotify_hours: float = 24.0
    tags: tuple[str, ...] = ()
    export_sheet: str | None = None
    max_gb_billed: float | None = None
    runbook: str | None = None
    description: str | None = None
    row_number: int = 0  # where it came from, for messages ("checks row 7")

    def byte_cap_gb(self, default_gb: float) -> float:
        """The check's own max_gb_billed, else the default (MAX_GB_BILLED)."""
        return self.max_gb_billed if self.max_gb_billed is not None else default_gb


@dataclass(frozen=True)
class InvalidCheck:
    """A registry row that could not become a Check; it ends `invalid` and never reaches the warehouse."""

    name: str
    row_number: int
    message: str
    type: CheckType | None = None  # its `type` cell, when that much of the row could be read


@dataclass
class QueryResult:
    """What a warehouse returned for a check: the first rows (or all, when asked) and the total count."""

    columns: list[str]
    values: list[tuple[Any, ...]]  # the rows kept, each in the order of `columns`
    row_count: int
    bytes_processed: int | None = None

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The rows kept, as objects keyed by column name; built when first asked for (a series is read by
        column, never as thousands of objects)."""
        return list(map(dict, map(zip, repeat(self.columns), self.values)))

    def first_rows(self, n: int) -> list[dict[str, Any]]:
        """The first `n` rows as objects, without building the others (a series is read by column)."""
        if "rows" in self.__dict__:
            return self.rows[:n]
        return list(map(dict, map(zip, repeat(self.columns), self.values[:n])))

    def column(self, name: str) -> list[Any]:
        """One column's values, row by row (of a name given twice, the last, as in `rows`)."""
        index = len(self.columns) - 1 - self.columns[::-1].index(name)
        return [row[index] for row in self.values]


@dataclass(frozen=True)
class OpenIncident:
    """A check's incident that is still open after the run, as the status worksheet shows it.

    Who acknowledged, snoozed or muted it comes from Slack actions (`incident_events`); empty until then."""

    since: dt.datetime  # the incident's first failing run
    acknowledged_by: str | None = None
    snoozed_by: str | None = None
    snoozed_until: dt.datetime | None = None
    muted_by: str | None = None


@dataclass(slots=True)
class CheckResult:
    """The outcome of one check in one run; one history row and one entry of the JSON document."""

    name: str
    type: CheckType | None  # None for an invalid row whose `type` cell is not a type either
    status: Status
    message: str = ""
    value: float | None = None
    row_count: int | None = None
    # rows, series and export_rows: sequences, empty by default and shared (a run of thousands holds no empty lists)
    rows: Sequence[dict[str, Any]] = ()
    expected: tuple[float | None, float | None] | None = None
    duration_ms: int = 0
    bytes_processed: int | None = None
    notified: bool = False
    # Not in the document: what the lifecycle, the notifier, the chart and the status sheet need.
    cause: str | None = None  # a failure's shared cause outside the check's SQL (see errors.QueryError.cause)
    incident: OpenIncident | None = None  # set by the lifecycle when the check is failing after this run
    check: Check | None = None
    series: Sequence[tuple[dt.datetime, float]] = ()
    band: tuple[tuple[dt.datetime, float, float], ...] = ()  # the model's band over the series, for its chart
    export_rows: Sequence[dict[str, Any]] = ()  # for export_sheet: up to EXPORT_ROWS

    def judged(self) -> bool:
        """A threshold or anomaly check that ran and was judged: its document's `expected` is a range, [null, null]
        when there was none to state (no data since …, a period still in progress, an exclusion window)."""
        return self.type in (CheckType.THRESHOLD, CheckType.ANOMALY) and self.status in (Status.OK, Status.ALERT)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.type) if self.type is not None else None,
            "status": str(self.status),
            "value": None if self.type == CheckType.ROWS else json_value(self.value),  # a rows check's is row_count
            "row_count": self.row_count,
            "rows": json_value(self.rows),
            "expected": json_value(self.expected if self.expected or not self.judged() else (None, None)),
            "message": json_value(self.message),
            "duration_ms": self.duration_ms,
            "bytes_processed": self.bytes_processed,
            "notified": self.notified,
        }


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One row of `check_results`: append-only, the source of all alert state.

    Each row carries the check's alert state forward (the columns from `incident_id` on), so the newest row
    of a check is all the lifecycle needs. Rows written before those columns existed have them NULL."""

    run_id: str
    check_name: str
    checked_at: dt.datetime
    status: Status
    value: float | None
    row_count: int | None
    message: str
    duration_ms: int
    bytes_processed: int | None
    notified: bool
    slack_channel: str | None  # the open incident's message
    slack_ts: str | None
    incident_id: str | None = None  # the open incident, if any
    incident_start: dt.datetime | None = None
    failing_runs: int | None = None  # consecutive failing runs of the open incident (0: none open)
    announced: str | None = None  # the failing status Slack was last told of (NULL: not announced yet)
    last_notice_at: dt.datetime | None = None
    cause: str | None = None  # the shared cause of this failure, when it had one outside the check's SQL

    @classmethod
    def from_result(
        cls, run_id: str, at: dt.datetime, result: CheckResult, *, notified: bool, **alert_state: Any
    ) -> HistoryRecord:
        """The row a run appends for one check's result, carrying the check's alert state forward (`alert_state`:
        the columns from slack_channel on, as incidents.columns gives them; none for an invalid row)."""
        return cls(
            run_id=run_id,
            check_name=result.name,
            checked_at=at,
            status=result.status,
            value=result.value,
            row_count=result.row_count,
            message=result.message,
            duration_ms=result.duration_ms,
            bytes_processed=result.bytes_processed,
            notified=notified,
            slack_channel=alert_state.pop("slack_channel", None),
            slack_ts=alert_state.pop("slack_ts", None),
            **alert_state,
        )


class NoticeEvent(StrEnum):
    ATTEMPT = "attempt"  # written before the request is made: the write-ahead record of an intent
    DELIVERED = "delivered"  # Slack confirmed it (or it was found there later)
    FAILED = "failed"  # certainly not delivered (Slack refused, or it was looked for and is not there)
    UNKNOWN = "unknown"  # the request may have reached Slack: looked for on the next run, never re-sent blindly


@dataclass(frozen=True)
class NoticeRecord:
    """One row of `notices`: an event in the life of one notice, with everything needed to send it again."""

    notice_id: str
    check_name: str
    event: NoticeEvent
    recorded_at: dt.datetime  # wall clock: orders the events of a notice
    run_id: str
    kind: str  # notifiers.NoticeKind
    at: dt.datetime  # the run time the notice was decided at (--now)
    based_on: str | None = None  # run_id of the history row it was decided from ("-": none)
    incident_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    failing_runs: int | None = None
    status: str | None = None  # the failing status it tells of
    problem: str | None = None
    resolution: str | None = None  # the ok result's message, for a resolved notice
    slack_channel: str | None = None  # where it goes (a reply: the incident's channel)
    thread_ts: str | None = None  # the incident message it replies under
    slack_ts: str | None = None  # the message it became
    members: str | None = None  # a grouped incident's checks, comma-separated
    detail: str | None = None  # why it failed or is unknown (redacted, capped)


class Action(StrEnum):
    """What a person did to an incident from Slack (SPEC "Slack actions")."""

    ACKNOWLEDGE = "acknowledge"  # no reminders for this incident
    SNOOZE = "snooze"  # no reminders and no new incident for the check until `until`
    MUTE = "mute"  # nothing about this incident until it resolves
    EXPECTED = "expected"  # the value is normal: the incident resolves, the value leaves the anomaly baseline


@dataclass(frozen=True)
class IncidentEvent:
    """One row of `incident_events`: a click on an incident's message, recorded once (append-only)."""

    event_id: str  # derived from Slack's payload: the same click delivered twice has the same id
    check_name: str
    slack_channel: str | None  # the clicked message, as in check_results
    slack_ts: str | None
    action: Action
    until: dt.datetime | None  # the end of a snooze (UTC)
    user_id: str | None
    user_name: str | None
    at: dt.datetime  # when it was recorded (wall clock, UTC)
    detail: str | None = None  # JSON: the snooze chosen, or the value marked expected and the run that judged it


@dataclass
class RunReport:
    """A whole run: what the CLI prints, the HTTP function answers and the status sheet shows."""

    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    results: list[CheckResult]
    delivery_failures: int = 0

    def summary(self) -> dict[str, int]:
        counts = {str(s): 0 for s in Status}
        for r in self.results:
            counts[str(r.status)] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {**self.to_json_head(), "checks": [r.to_json() for r in self.results]}

    def to_json_head(self) -> dict[str, Any]:
        """The document without its checks."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "summary": self.summary(),
        }

    def json_text(self) -> Iterator[str]:
        """The text of json.dumps(self.to_json(), indent=2), one check at a time: a run of thousands of checks
        is printed without holding its whole document."""
        head = json.dumps({**self.to_json_head(), "checks": []}, indent=2)
        if not self.results:
            yield head
            return
        yield head.removesuffix("[]\n}") + "["
        for i, result in enumerate(self.results):
            yield ("," if i else "") + "\n    " + json.dumps(result.to_json(), indent=2).replace("\n", "\n    ")
        yield "\n  ]\n}"

    def exit_code(self) -> int:
        """0 all ok or skipped, 1 some alert and no error, 2 some error/invalid or an undelivered alert."""
        statuses = {r.status for r in self.results}
        if statuses & {Status.ERROR, Status.INVALID} or self.delivery_failures:
            return 2
        return 1 if Status.ALERT in statuses else 0
