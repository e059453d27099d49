"""The registry's columns in one place: what each means, its default, an example, and the values it takes.

The registry parser takes its bounds and choices from here, and `sheet init` its header, notes and drop-downs,
so the sheet and the parser cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from anomaly_monitor.models import CheckType, Direction, Seasonality, Severity


class Kind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"  # one of `choices`
    FLAG = "flag"  # TRUE/FALSE
    NUMBER = "number"
    WHOLE = "whole number"


@dataclass(frozen=True)
class Column:
    name: str
    meaning: str
    default: str  # what a blank cell means; "" for a required column
    example: str
    kind: Kind = Kind.TEXT
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above_minimum: bool = False  # the minimum itself is not allowed (sensitivity 0 would alert on everything)
    maximum: float | None = None
    required: bool = False
    width: int = 110  # pixels in the sheet

    @property
    def rule(self) -> str:
        """The values the column takes, in words (help text of the sheet's validation)."""
        if self.kind is Kind.CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind is Kind.FLAG:
            return "TRUE or FALSE"
        return f"a {self.kind} {self.bound}" if self.bound else f"a {self.kind}"

    @property
    def bound(self) -> str:
        """The bounds of a numeric column in words ("at least 1 and at most 1,000"), or "" when it has none."""
        words = []
        if self.minimum is not None:
            words.append(f"{'greater than' if self.above_minimum else 'at least'} {self.minimum:g}")
        if self.maximum is not None:
            words.append(f"at most {self.maximum:,g}")
        return " and ".join(words)

    @property
    def note(self) -> str:
        """The header cell's note: meaning, default, example."""
        default = "required" if self.required else f"blank = {self.default}"
        return f"{self.meaning}\n\n{default}\nExample: {self.example}"


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names a column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _choices(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(str(member) for member in enum)


COLUMNS: tuple[Column, ...] = (
    Column(
        "name",
        "Unique id of the check: 1-64 characters of a-z, 0-9, _ and -, not starting with _ (the monitor's own "
        "names). Alerts and the status tab use it.",
        "",
        "late_settlements",
        required=True,
        width=200,
    ),
    Column("enabled", "Ticked: the check runs. Unticked: it is skipped.", "TRUE", "TRUE", Kind.FLAG, width=70),
    Column(
        "type",
        "rows: any returned row is an anomaly. threshold: the query's value must stay within min/max. "
        "anomaly: the value is judged against its own history (a series ts, value or a single value).",
        "rows",
        "threshold",
        Kind.CHOICE,
        _choices(CheckType),
        width=90,
    ),
    Column(
        "sql",
        "One BigQuery Standard SQL SELECT (a WITH is fine). Unqualified table names resolve in the configured "
        "dataset. Only reading is allowed.",
        "",
        "SELECT COUNT(*) AS value FROM orders WHERE status = 'failed'",
        required=True,
        width=420,
    ),
    Column(
        "min",
        "threshold: alert when the value is below this. anomaly: an optional hard lower bound.",
        "no lower bound",
        "0",
        Kind.NUMBER,
        width=70,
    ),
    Column(
        "max",
        "threshold: alert when the value is above this. anomaly: an optional hard upper bound.",
        "no upper bound",
        "0.12",
        Kind.NUMBER,
        width=70,
    ),
    Column(
        "sensitivity",
        "anomaly: how many robust standard deviations count as anomalous; higher alerts less.",
        "3",
        "4",
        Kind.NUMBER,
        minimum=0,
        above_minimum=True,
        maximum=100,
        width=90,
    ),
    Column(
        "seasonality",
        "anomaly: compare with the same weekday or hour of earlier periods.",
        "none",
        "day_of_week",
        Kind.CHOICE,
        _choices(Seasonality),
        width=110,
    ),
    Column(
        "direction",
        "anomaly: which departures alert: both, only up, or only down.",
        "both",
        "down",
        Kind.CHOICE,
        _choices(Direction),
        width=80,
    ),
    Column(
        "schedule",
        "When the check is due: a 5-field cron expression in the check's timezone.",
        "every invocation",
        "0 6 * * *",
        width=110,
    ),
    Column("timezone", "IANA time zone of the schedule and of day boundaries.", "UTC", "Europe/London", width=110),
    Column(
        "severity",
        "How loud the alert is; shown in words in Slack.",
        "warning",
        "critical",
        Kind.CHOICE,
        _choices(Severity),
        width=80,
    ),
    Column(
        "channel",
        "Slack channel id or #name for this check's alerts.",
        "SLACK_DEFAULT_CHANNEL",
        "#payments-alerts",
        width=130,
    ),
    Column(
        "owners",
        "Mentioned in the alert: comma-separated Slack user ids (U…/W…), user-group ids (S…) or e-mails.",
        "nobody",
        "U024BE7LH, ana@example.com",
        width=160,
    ),
    Column(
        "alert_after",
        "Consecutive failing runs before the first alert (the status shows alert from the first).",
        "1",
        "3",
        Kind.WHOLE,
        minimum=1,
        maximum=1000,  # the history a run reads back (runner.HISTORY_LIMIT): a longer streak is never counted
        width=80,
    ),
    Column(
        "renotify_hours",
        "While still failing, remind in the alert's thread after this many hours; 0 = never.",
        "24",
        "12",
        Kind.NUMBER,
        minimum=0,
        maximum=24 * 366,
        width=100,
    ),
    Column(
        "tags",
        "Comma-separated labels of a-z, 0-9, _ and -; schedules select checks by tag.",
        "no tags",
        "hourly, payments",
        width=120,
    ),
    Column(
        "export_sheet",
        "rows checks: the failing rows are appended to this worksheet with a run timestamp (created if missing).",
        "no export",
        "late settlements",
        width=120,
    ),
    Column(
        "max_gb_billed",
        "Cap on the bytes a run of this check may bill, in GB; a query above it fails instead of running.",
        "MAX_GB_BILLED (10)",
        "50",
        Kind.NUMBER,
        minimum=0,
        above_minimum=True,
        maximum=100_000,  # GB: 100 TB is far beyond any sane check
        width=100,
    ),
    Column(
        "runbook", "An http(s) link shown in the alert: what to do.", "no link", "https://wiki/runbooks/x", width=160
    ),
    Column("description", "Shown in the alert: what the check means.", "none", "Orders stuck authorised", width=300),
)

BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}
REQUIRED: tuple[str, ...] = tuple(column.name for column in COLUMNS if column.required)
