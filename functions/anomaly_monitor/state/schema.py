"""The state tables, `check_results`, `notices` and `incident_events`: one definition for SQLite, BigQuery and the
Terraform test."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import fields
from typing import Any, TypeVar

from anomaly_monitor.models import Action, HistoryRecord, IncidentEvent, NoticeEvent, NoticeRecord, Status

# (column, BigQuery type, mode); SQLite uses the affinity in SQLITE_TYPES. New columns are only ever appended,
# NULLABLE, so rows written by older versions stay readable and a table is upgraded by adding columns.
CHECK_RESULTS_SCHEMA: list[tuple[str, str, str]] = [
    ("run_id", "STRING", "REQUIRED"),
    ("check_name", "STRING", "REQUIRED"),
    ("checked_at", "TIMESTAMP", "REQUIRED"),
    ("status", "STRING", "REQUIRED"),
    ("value", "FLOAT64", "NULLABLE"),
    ("row_count", "INT64", "NULLABLE"),
    ("message", "STRING", "NULLABLE"),
    ("duration_ms", "INT64", "NULLABLE"),
    ("bytes_processed", "INT64", "NULLABLE"),
    ("notified", "BOOL", "NULLABLE"),
    ("slack_channel", "STRING", "NULLABLE"),
    ("slack_ts", "STRING", "NULLABLE"),
    ("incident_id", "STRING", "NULLABLE"),
    ("incident_start", "TIMESTAMP", "NULLABLE"),
    ("failing_runs", "INT64", "NULLABLE"),
    ("announced", "STRING", "NULLABLE"),
    ("last_notice_at", "TIMESTAMP", "NULLABLE"),
    ("cause", "STRING", "NULLABLE"),
]

# The delivery journal: every notice the lifecycle decided on, and what became of it (append-only).
NOTICES_SCHEMA: list[tuple[str, str, str]] = [
    ("notice_id", "STRING", "REQUIRED"),
    ("check_name", "STRING", "REQUIRED"),
    ("event", "STRING", "REQUIRED"),
    ("recorded_at", "TIMESTAMP", "REQUIRED"),
    ("run_id", "STRING", "REQUIRED"),
    ("kind", "STRING", "REQUIRED"),
    ("at", "TIMESTAMP", "REQUIRED"),
    ("based_on", "STRING", "NULLABLE"),
    ("incident_id", "STRING", "NULLABLE"),
    ("since", "TIMESTAMP", "NULLABLE"),
    ("until", "TIMESTAMP", "NULLABLE"),
    ("failing_runs", "INT64", "NULLABLE"),
    ("status", "STRING", "NULLABLE"),
    ("problem", "STRING", "NULLABLE"),
    ("resolution", "STRING", "NULLABLE"),
    ("slack_channel", "STRING", "NULLABLE"),
    ("thread_ts", "STRING", "NULLABLE"),
    ("slack_ts", "STRING", "NULLABLE"),
    ("members", "STRING", "NULLABLE"),
    ("detail", "STRING", "NULLABLE"),
]

# What people did to incidents from Slack (SPEC "History and alert state"; the lifecycle reads it with the history).
INCIDENT_EVENTS_SCHEMA: list[tuple[str, str, str]] = [
    ("event_id", "STRING", "REQUIRED"),
    ("check_name", "STRING", "REQUIRED"),
    ("slack_channel", "STRING", "NULLABLE"),
    ("slack_ts", "STRING", "NULLABLE"),
    ("action", "STRING", "REQUIRED"),
    ("until", "TIMESTAMP", "NULLABLE"),
    ("user_id", "STRING", "NULLABLE"),
    ("user_name", "STRING", "NULLABLE"),
    ("at", "TIMESTAMP", "REQUIRED"),
    ("detail", "STRING", "NULLABLE"),
]

SQLITE_TYPES = {"STRING": "TEXT", "TIMESTAMP": "TEXT", "FLOAT64": "REAL", "INT64": "INTEGER", "BOOL": "INTEGER"}

COLUMNS = [name for name, _, _ in CHECK_RESULTS_SCHEMA]
NOTICE_COLUMNS = [name for name, _, _ in NOTICES_SCHEMA]
EVENT_COLUMNS = [name for name, _, _ in INCIDENT_EVENTS_SCHEMA]
TABLES = {
    "check_results": CHECK_RESULTS_SCHEMA,
    "notices": NOTICES_SCHEMA,
    "incident_events": INCIDENT_EVENTS_SCHEMA,
}

Row = TypeVar("Row", HistoryRecord, NoticeRecord, IncidentEvent)
_SCHEMAS: dict[type, list[tuple[str, str, str]]] = {
    HistoryRecord: CHECK_RESULTS_SCHEMA,
    NoticeRecord: NOTICES_SCHEMA,
    IncidentEvent: INCIDENT_EVENTS_SCHEMA,
}
_ENUMS: dict[str, type[enum.Enum]] = {"status": Status, "event": NoticeEvent, "action": Action}


def _kinds(schema: list[tuple[str, str, str]]) -> dict[str, str]:
    return {name: kind for name, kind, _ in schema}


def to_values(row: HistoryRecord | NoticeRecord | IncidentEvent) -> dict[str, Any]:
    """A record as column -> plain value: times in UTC, enums as their text."""
    out: dict[str, Any] = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC)
        elif isinstance(value, enum.Enum):
            value = value.value
        out[f.name] = value
    return out


def from_values(cls: type[Row], values: dict[str, Any]) -> Row:
    """The record a row's values describe; columns a store does not have yet read as NULL."""
    kinds = _kinds(_SCHEMAS[cls])
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = values.get(name)
        if value is not None and kind == "TIMESTAMP" and not isinstance(value, dt.datetime):
            value = dt.datetime.fromisoformat(str(value))
        if isinstance(value, dt.datetime):
            value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if value is not None and kind == "BOOL":
            value = bool(value)
        if value is not None and name in _ENUMS:
            value = _ENUMS[name](value)
        out[name] = value
    if cls is HistoryRecord:
        out["message"] = out["message"] or ""
        out["duration_ms"] = out["duration_ms"] or 0
        out["notified"] = bool(out["notified"])
    return cls(**out)
