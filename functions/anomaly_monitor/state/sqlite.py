"""The local state store: check_results, notices and incident_events in a SQLite file, created (or upgraded) on first
use."""

from __future__ import annotations

import datetime as dt
import fcntl
import re
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from anomaly_monitor.clients.sqlite import sqlite_path
from anomaly_monitor.errors import StateError
from anomaly_monitor.models import HistoryRecord, IncidentEvent, NoticeRecord
from anomaly_monitor.state import CLOSING_KINDS, NO_ROW, POINTS_LIMIT, RESERVED_PREFIX, UNCONFIRMED
from anomaly_monitor.state.schema import (
    COLUMNS,
    EVENT_COLUMNS,
    NOTICE_COLUMNS,
    SQLITE_TYPES,
    TABLES,
    from_values,
    to_values,
)

INDEXES = (
    "CREATE INDEX IF NOT EXISTS check_results_by_check ON check_results (check_name, checked_at)",
    "CREATE INDEX IF NOT EXISTS notices_by_check ON notices (check_name, notice_id, recorded_at)",
    "CREATE INDEX IF NOT EXISTS incident_events_by_check ON incident_events (check_name, slack_ts)",
    # a click Slack delivers twice is stored once, even when two requests race
    "CREATE UNIQUE INDEX IF NOT EXISTS incident_events_by_id ON incident_events (event_id)",
)
CHUNK = 500  # names per statement, well under SQLite's limit on bound parameters
TIMES = {name for schema in TABLES.values() for name, kind, _ in schema if kind == "TIMESTAMP"}
RESERVED_NAMES_SQL = "SELECT DISTINCT check_name FROM check_results WHERE check_name >= ? AND check_name < ?"


def _to_text(moment: dt.datetime) -> str:
    """UTC as `YYYY-MM-DD HH:MM:SS.ffffff`: isoformat pads every year to four digits (strftime's %Y does not), so
    the text sorts as time and reads back whatever the year."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _from_text(text: str) -> dt.datetime:
    # Rows written before the year was padded hold e.g. "226-03-29 …": pad it rather than fail every run.
    padded = re.sub(r"^\d{1,3}(?=-)", lambda year: year.group().zfill(4), text)
    return dt.datetime.fromisoformat(padded).replace(tzinfo=dt.UTC)


def _chunks(names: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), CHUNK):
        yield names[start : start + CHUNK]


def _values(row: sqlite3.Row) -> dict[str, Any]:
    """A row's values, its times read back from their text."""
    return {k: _from_text(v) if k in TIMES and isinstance(v, str) else v for k, v in dict(row).items()}


def _create_table(table: str, *, temp: bool = False) -> str:
    columns = ", ".join(
        f"{name} {SQLITE_TYPES[kind]}{' NOT NULL' if mode == 'REQUIRED' else ''}" for name, kind, mode in TABLES[table]
    )
    return f"CREATE {'TEMP ' if temp else ''}TABLE IF NOT EXISTS {table} ({columns})"


class SqliteStateStore:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only

    @classmethod
    def from_url(cls, url: str, *, read_only: bool = False) -> SqliteStateStore:
        return cls(sqlite_path(url), read_only=read_only)

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
            conn.row_factory = sqlite3.Row
            self._upgrade(conn)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state store {self.path} cannot be opened: {exc}") from exc
        return conn

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> None:
        """Creates the tables, or adds the columns a newer version brought (NULL in older rows); nothing is lost."""
        for table, schema in TABLES.items():
            existing = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not existing:
                conn.execute(_create_table(table))
                continue
            for name, kind, _ in schema:
                if name not in existing:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {SQLITE_TYPES[kind]}")
        for statement in INDEXES:
            conn.execute(statement)
        conn.commit()

    def _connect_read_only(self) -> sqlite3.Connection:
        """The file opened so that nothing can be written to it, nor the file created: the tables it lacks (all of
        them when there is no file yet) read as empty."""
        try:
            if self.path.is_file():
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            else:
                conn = sqlite3.connect(":memory:")
            conn.row_factory = sqlite3.Row
            have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in TABLES.keys() - have:
                conn.execute(_create_table(table, temp=True))  # in memory, beside the file
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state store {self.path} cannot be opened read-only: {exc}") from exc
        return conn

    def _insert(
        self,
        table: str,
        columns: list[str],
        rows: Sequence[HistoryRecord | NoticeRecord | IncidentEvent],
        verb: str = "INSERT",
    ) -> None:
        if self.read_only:
            raise StateError(f"state store {self.path} is opened read-only: {table} cannot be written")

        def values() -> Iterator[tuple[Any, ...]]:  # one row at a time: a run of thousands holds no copy of them
            for row in rows:
                plain = to_values(row)
                yield tuple(_to_text(v) if isinstance(v, dt.datetime) else v for v in map(plain.get, columns))

        placeholders = ", ".join("?" for _ in columns)
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany(f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", values())
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {table} could not be written: {exc}") from exc

    def append(self, records: Sequence[HistoryRecord]) -> None:
        if records:
            self._insert("check_results", COLUMNS, records)

    def append_notices(self, events: Sequence[NoticeRecord]) -> None:
        if events:
            self._insert("notices", NOTICE_COLUMNS, events)

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        if events:
            self._insert("incident_events", EVENT_COLUMNS, events, verb="INSERT OR IGNORE")

    def _read(self, what: str, statements: Iterator[tuple[str, list[Any]]]) -> list[sqlite3.Row]:
        try:
            with closing(self._connect()) as conn:
                return [row for sql, params in statements for row in conn.execute(sql, params).fetchall()]
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {what} could not be read: {exc}") from exc

    def latest(self, check_names: Collection[str], now: dt.datetime) -> dict[str, HistoryRecord]:
        """One indexed lookup per check: the cost does not grow with the history. Rows after `now` (a run at an
        earlier --now) are not the state as of now."""
        reserved = self._read("history", iter([(RESERVED_NAMES_SQL, [RESERVED_PREFIX, chr(ord(RESERVED_PREFIX) + 1)])]))
        names = sorted(set(check_names) | {row[0] for row in reserved})
        return self._newest(names, now)

    def _newest(self, names: Sequence[str], now: dt.datetime) -> dict[str, HistoryRecord]:
        def statements() -> Iterator[tuple[str, list[Any]]]:
            for chunk in _chunks(names):
                values = ", ".join("(?)" for _ in chunk)
                yield (
                    f"WITH names(name) AS (VALUES {values}) SELECT {', '.join(f'c.{c}' for c in COLUMNS)} "
                    "FROM names JOIN check_results c ON c.rowid = (SELECT rowid FROM check_results"
                    " WHERE check_name = names.name AND status != 'invalid' AND checked_at <= ?"
                    " ORDER BY checked_at DESC, rowid DESC LIMIT 1)",
                    [*chunk, _to_text(now)],
                )

        rows = self._read("history", statements())
        return {row["check_name"]: from_values(HistoryRecord, _values(row)) for row in rows}

    def incident_events(self, check_names: Collection[str], now: dt.datetime) -> list[IncidentEvent]:
        def statements() -> Iterator[tuple[str, list[Any]]]:
            for chunk in _chunks(sorted(set(check_names))):
                marks = ", ".join("?" for _ in chunk)
                yield (
                    f"SELECT {', '.join(EVENT_COLUMNS)} FROM incident_events"
                    f" WHERE check_name IN ({marks}) AND at <= ? ORDER BY at, rowid",
                    [*chunk, _to_text(now)],
                )

        return [from_values(IncidentEvent, _values(row)) for row in self._read("incident_events", statements())]

    def clicked_incident(
        self, check_name: str, channel: str, ts: str, now: dt.datetime
    ) -> tuple[HistoryRecord | None, list[IncidentEvent]]:
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM incident_events"
            " WHERE check_name = ? AND slack_channel = ? AND slack_ts = ? AND at <= ? ORDER BY at, rowid"
        )
        rows = self._read("incident_events", iter([(sql, [check_name, channel, ts, _to_text(now)])]))
        events = [from_values(IncidentEvent, _values(row)) for row in rows]
        return self._newest([check_name], now).get(check_name), events

    def points(
        self, check_names: Collection[str], now: dt.datetime, *, limit: int = POINTS_LIMIT
    ) -> dict[str, list[tuple[dt.datetime, float]]]:
        sql = (
            "SELECT check_name, checked_at, value FROM check_results WHERE check_name = ? AND checked_at <= ? "
            "AND status IN ('ok', 'alert') AND value IS NOT NULL ORDER BY checked_at DESC, rowid DESC LIMIT ?"
        )
        rows = self._read("history", ((sql, [name, _to_text(now), limit]) for name in sorted(set(check_names))))
        out: dict[str, list[tuple[dt.datetime, float]]] = {}
        for row in rows:
            at = _from_text(row["checked_at"])
            out.setdefault(row["check_name"], []).append((at, row["value"]))
        return {name: points[::-1] for name, points in out.items()}

    def pending_notices(
        self, check_names: Collection[str], now: dt.datetime, committed: Mapping[str, str]
    ) -> list[NoticeRecord]:
        names = sorted(set(check_names))

        def statements() -> Iterator[tuple[str, list[Any]]]:
            for chunk in _chunks(names):
                marks = ", ".join("?" for _ in chunk)
                based = [committed.get(name, NO_ROW) for name in chunk]
                yield (
                    f"SELECT {', '.join(NOTICE_COLUMNS)} FROM ("
                    " SELECT *, ROW_NUMBER() OVER (PARTITION BY notice_id ORDER BY recorded_at DESC, rowid DESC) AS n"
                    f" FROM notices WHERE check_name IN ({marks})"
                    ") WHERE n = 1 AND (event IN (?, ?) OR (event = 'failed' AND kind IN (?, ?))"
                    f" OR check_name || '/' || based_on IN ({marks})) ORDER BY recorded_at, notice_id",
                    [*chunk, *UNCONFIRMED, *CLOSING_KINDS, *(f"{n}/{b}" for n, b in zip(chunk, based))],
                )

        rows = self._read("notices", statements())
        return [from_values(NoticeRecord, _values(row)) for row in rows]

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
