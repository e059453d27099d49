"""The local state store: check_results in a SQLite file, created on first use."""

from __future__ import annotations

import datetime as dt
import fcntl
import re
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from anomaly_monitor.errors import StateError
from anomaly_monitor.models import HistoryRecord, IncidentEvent, Status
from anomaly_monitor.state import by_check
from anomaly_monitor.state.schema import (
    CHECK_RESULTS_SCHEMA,
    COLUMNS,
    EVENT_COLUMNS,
    INCIDENT_EVENTS_SCHEMA,
    SQLITE_TYPES,
)
from anomaly_monitor.urls import sqlite_path

DDL = (
    "CREATE TABLE IF NOT EXISTS check_results ("
    + ", ".join(
        f"{name} {SQLITE_TYPES[kind]}{' NOT NULL' if mode == 'REQUIRED' else ''}"
        for name, kind, mode in CHECK_RESULTS_SCHEMA
    )
    + ");\nCREATE INDEX IF NOT EXISTS check_results_by_check ON check_results (check_name, checked_at);"
    + "\nCREATE TABLE IF NOT EXISTS incident_events ("
    + ", ".join(
        f"{name} {SQLITE_TYPES[kind]}{' NOT NULL' if mode == 'REQUIRED' else ''}"
        for name, kind, mode in INCIDENT_EVENTS_SCHEMA
    )
    + ", PRIMARY KEY (event_id));"
    + "\nCREATE INDEX IF NOT EXISTS incident_events_by_check ON incident_events (check_name, at);"
)


def _to_text(moment: dt.datetime) -> str:
    """UTC as `YYYY-MM-DD HH:MM:SS.ffffff`: isoformat pads every year to four digits (strftime's %Y does not), so
    the text sorts as time and reads back whatever the year."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _from_text(text: str) -> dt.datetime:
    # Rows written before the year was padded hold e.g. "226-03-29 …": pad it rather than fail every run.
    padded = re.sub(r"^\d{1,3}(?=-)", lambda year: year.group().zfill(4), text)
    return dt.datetime.fromisoformat(padded).replace(tzinfo=dt.UTC)


def _record(row: sqlite3.Row) -> HistoryRecord:
    values = dict(zip(COLUMNS, row))
    values["checked_at"] = _from_text(values["checked_at"])
    values["status"] = Status(values["status"])
    values["notified"] = bool(values["notified"])
    return HistoryRecord(**values)


class SqliteStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_url(cls, url: str) -> SqliteStateStore:
        return cls(sqlite_path(url))

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
            conn.executescript(DDL)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state store {self.path} cannot be opened: {exc}") from exc
        return conn

    def append(self, records: Sequence[HistoryRecord]) -> None:
        rows = [
            tuple(_to_text(v) if isinstance(v, dt.datetime) else v for v in (getattr(r, c) for c in COLUMNS))
            for r in records
        ]
        placeholders = ", ".join("?" for _ in COLUMNS)
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany(f"INSERT INTO check_results ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows)
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: results could not be written: {exc}") from exc

    def history(self, check_names: Collection[str], *, limit: int) -> dict[str, list[HistoryRecord]]:
        names = sorted(set(check_names))
        if not names:
            return {}
        marks = ", ".join("?" for _ in names)
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM ("
            f" SELECT *, ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY checked_at DESC, rowid DESC) AS n"
            f" FROM check_results WHERE check_name IN ({marks})"
            f") WHERE n <= ? ORDER BY check_name, checked_at, n DESC"
        )
        try:
            with closing(self._connect()) as conn:
                rows = conn.execute(sql, [*names, limit]).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: history could not be read: {exc}") from exc
        return by_check(_record(row) for row in rows)

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        """INSERT OR IGNORE on event_id: a click Slack delivers twice is recorded once."""
        rows = [
            tuple(_to_text(v) if isinstance(v, dt.datetime) else v for v in (getattr(e, c) for c in EVENT_COLUMNS))
            for e in events
        ]
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany(
                    f"INSERT OR IGNORE INTO incident_events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})", rows
                )
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: incident events could not be written: {exc}") from exc

    def events(self, check_names: Collection[str]) -> dict[str, list[IncidentEvent]]:
        names = sorted(set(check_names))
        if not names:
            return {}
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM incident_events"
            f" WHERE check_name IN ({', '.join('?' for _ in names)}) ORDER BY check_name, at, rowid"
        )
        try:
            with closing(self._connect()) as conn:
                rows = conn.execute(sql, names).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: incident events could not be read: {exc}") from exc
        out: dict[str, list[IncidentEvent]] = {}
        for row in rows:
            values = dict(zip(EVENT_COLUMNS, row, strict=True))
            values["at"] = _from_text(values["at"])
            values["until"] = _from_text(values["until"]) if values["until"] else None
            event = IncidentEvent(**values)
            out.setdefault(event.check_name, []).append(event)
        return out

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """An exclusive lock on a file beside the database: overlapping local runs take turns."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a")
        except OSError as exc:
            raise StateError(f"state store lock {lock_path} cannot be opened: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
