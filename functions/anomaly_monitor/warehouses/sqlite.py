"""The local warehouse: BigQuery SQL translated for a read-only SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from anomaly_monitor.clients.sqlite import sqlite_path
from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.readonly import take_parsed
from anomaly_monitor.warehouses.sqlite_connection import (
    FUNCTION_ERROR,
    ReadOnlyConnection,
    connect_readonly,
    set_clock,
)
from anomaly_monitor.warehouses.sqlite_dialect import Schema, Translation, translate

FETCH_BATCH = 500  # rows fetched between deadline checks
FETCH_TURN_S = 0.05  # the longest a connection waits for its turn to fetch (see SqliteSession._fetch)
UNREADABLE = ("file is not a database", "unable to open database", "disk image is malformed", "disk I/O error")


class SqliteWarehouse:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"warehouse {path} does not exist: build it with `make init-db` (python init_db.py)")
        self.path = path
        self.schema = SchemaCache(path)

    @classmethod
    def from_url(cls, url: str) -> SqliteWarehouse:
        return cls(sqlite_path(url))

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None = None,
        now: dt.datetime,
    ) -> QueryResult:
        """Runs in a connection of its own, whose clock is `now`; the deadline covers the query and the fetch."""
        with self.session() as session:
            return session.query(sql, check_name=check_name, limit=limit, timeout_s=timeout_s, now=now)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """Prepares the statement without running it (EXPLAIN); SQLite cannot say how much it would scan."""
        with self.session() as session:
            return session.dry_run(sql, check_name=check_name, now=now)

    def prepare(self, sql: str) -> None:
        with self.session() as session:
            session.prepare(sql)

    def workers(self, max_workers: int) -> int:
        return min(max_workers, os.cpu_count() or 1)

    @contextmanager
    def session(self) -> Iterator[SqliteSessions]:
        """Many queries, from one thread or several (a run's checks, a backtest's ticks), on connections that
        are opened as needed and reused; all closed at the end."""
        sessions = SqliteSessions(self.path, self.schema)
        try:
            yield sessions
        finally:
            sessions.close()


class SqliteSessions:
    """Read-only connections reused from query to query, one query at a time each: opening one (and registering
    its functions) costs more than a cheap check's query."""

    def __init__(self, path: Path, schema: SchemaCache) -> None:
        self.path = path
        self.schema = schema
        self._idle: list[SqliteSession] = []
        self._lock = threading.Lock()
        self._fetching = threading.Lock()

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None = None,
        now: dt.datetime,
    ) -> QueryResult:
        with self._connection() as session:
            return session.query(sql, check_name=check_name, limit=limit, timeout_s=timeout_s, now=now)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        with self._connection() as session:
            return session.dry_run(sql, check_name=check_name, now=now)

    def prepare(self, sql: str) -> None:
        with self._connection() as session:
            session.prepare(sql)

    def workers(self, max_workers: int) -> int:
        return min(max_workers, os.cpu_count() or 1)  # a query holds a CPU: more at once only take turns

    @contextmanager
    def session(self) -> Iterator[SqliteSessions]:
        yield self

    def close(self) -> None:
        """Closes the idle connections; one still busy (a check the run stopped waiting for) closes with its
        session when its thread is done with it."""
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()

    @contextmanager
    def _connection(self) -> Iterator[SqliteSession]:
        with self._lock:
            session = self._idle.pop() if self._idle else SqliteSession(self.path, self.schema, self._fetching)
        try:
            yield session
        finally:
            with self._lock:
                self._idle.append(session)


class SchemaCache:
    """The warehouse's tables and columns (for `* EXCEPT`), read again only when the file changes. One Schema per
    version of a file for the whole process, so translations (cached by text and schema) outlive a run."""

    _known: ClassVar[dict[tuple[str, int, int], Schema]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path

    def of(self, conn: ReadOnlyConnection) -> Schema:
        stat = self.path.stat()
        version = (str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)
        schema = self._known.get(version)
        if schema is None:
            tables = [
                name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            ]
            columns = {
                t: [d[0] for d in conn.execute(f"SELECT * FROM {_quoted(t)} LIMIT 0").description] for t in tables
            }
            schema = Schema(columns)
            if len(self._known) >= 64:  # files rebuilt over and over (tests): forget the oldest
                self._known.pop(next(iter(self._known)))
            self._known[version] = schema
        return schema


class SqliteSession:
    """One read-only connection, opened at the first query; each query sets its own clock and deadline."""

    def __init__(self, path: Path, schema: SchemaCache, fetching: threading.Lock | None = None) -> None:
        self.path = path
        self.schema = schema
        self.fetching = fetching or threading.Lock()  # shared by the connections of one SqliteSessions
        self._conn: ReadOnlyConnection | None = None
        self._schema: Schema | None = None

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None = None,
        now: dt.datetime,
    ) -> QueryResult:
        """The deadline covers the translation, the query and the fetch."""
        deadline = time.monotonic() + timeout_s
        conn = self._connection(now)
        conn.deadline = deadline
        try:
            translation = self._translate(sql, conn)
            cursor = conn.execute(translation.sql)
            columns = [d[0] for d in cursor.description or ()]
            _refuse_duplicate_names(columns)
            arrays = [i for i, column in enumerate(columns) if column in translation.arrays]
            booleans = [i for i, column in enumerate(columns) if column in translation.booleans]
            rows: list[tuple] = []
            count = 0
            # Fetching and counting run under the deadline too: SQLite's progress handler interrupts the steps,
            # and this loop stops between batches.
            while batch := self._fetch(cursor):
                if conn.past_deadline():
                    raise sqlite3.OperationalError("interrupted")
                count += len(batch)
                wanted = len(batch) if limit is None else max(0, min(len(batch), limit - len(rows)))
                rows += _values(batch[:wanted], arrays, booleans)
        except sqlite3.Error as exc:
            raise self._query_error(conn, exc, timeout_s) from None
        finally:
            conn.deadline = float("inf")
        return QueryResult(columns, rows, count)

    def _fetch(self, cursor: sqlite3.Cursor) -> list[tuple]:
        """The next batch of rows. Connections fetch in turn: Python's sqlite3 lets go of the GIL at every row,
        and threads fetching at once hand it back and forth at every row, which costs more than the fetches
        themselves. A batch that takes long (a scan between matches) is not waited for past FETCH_TURN_S. The
        statement's first step, where an aggregate does its work, ran in execute(), alongside the others."""
        turn = self.fetching.acquire(timeout=FETCH_TURN_S)
        try:
            return cursor.fetchmany(FETCH_BATCH)
        finally:
            if turn:
                self.fetching.release()

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        conn = self._connection(now)
        try:
            conn.execute("EXPLAIN " + self._translate(sql, conn).sql).fetchall()
        except sqlite3.Error as exc:
            raise self._query_error(conn, exc, None) from None
        return None

    def prepare(self, sql: str) -> None:
        """Translates the query now, from the tree the registry's guard has just parsed; what goes wrong is left
        for the query to report."""
        try:
            self._translate(sql, self._connection(None))
        except Exception:  # the check's own query says what is wrong, as that check's error
            take_parsed(sql)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, now: dt.datetime | None) -> ReadOnlyConnection:
        """The connection, its clock at `now` (None: a connection whose clock no query reads yet)."""
        if self._conn is not None:
            if now is not None:
                set_clock(self._conn, now)
            return self._conn
        try:
            # shared between threads by SqliteSessions, never used by two at once
            self._conn = connect_readonly(str(self.path), now or dt.datetime.now(dt.UTC), check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        return self._conn

    def _translate(self, sql: str, conn: ReadOnlyConnection) -> Translation:
        if self._schema is None:  # read once per connection: a run's checks, a backtest's ticks
            self._schema = self.schema.of(conn)
        translation = translate(sql, self._schema)
        take_parsed(sql)  # translated before (cached): the tree the registry parsed is not needed
        return translation

    def _unreadable(self, exc: sqlite3.Error) -> QueryError:
        """The warehouse file itself, not the check's SQL: every check fails alike (one grouped alert)."""
        return QueryError(f"the warehouse {self.path} cannot be read: {exc}", cause="warehouse")

    def _query_error(self, conn: ReadOnlyConnection, exc: sqlite3.Error, timeout_s: float | None) -> QueryError:
        """What went wrong, in words the check's owner can act on."""
        if timeout_s is not None and conn.past_deadline():
            return QueryError(f"timed out after {timeout_s:g} s (QUERY_TIMEOUT_S) and was cancelled")
        if any(sign in str(exc) for sign in UNREADABLE):
            return self._unreadable(exc)
        if conn.refused and "not authorized" in str(exc):
            return QueryError(f"SQLite refused {conn.refused}: a check may only read tables and call safe functions")
        if conn.function_error and FUNCTION_ERROR in str(exc):
            return QueryError(conn.function_error)
        return QueryError(f"SQLite rejected the translated query: {exc}")


def _refuse_duplicate_names(columns: list[str]) -> None:
    """BigQuery refuses a result that names a column twice (its names are case-insensitive); SQLite would return
    it, and a row keyed by column name would silently keep only one of them."""
    seen: dict[str, int] = {}
    for column in columns:
        seen[column.casefold()] = seen.get(column.casefold(), 0) + 1
    duplicates = [c for c, n in seen.items() if n > 1]
    if duplicates:
        raise QueryError(
            f"Duplicate column names in the result are not supported. Found duplicate(s): {', '.join(duplicates)} "
            "(give each column its own alias)"
        )


def _values(values: list[tuple], arrays: list[int], booleans: list[int]) -> list[tuple]:
    """Result rows; ARRAY columns (JSON text in SQLite) become lists, NULL an empty one, and BOOL columns (0 and
    1 in SQLite) False and True, as BigQuery returns them."""
    if not arrays and not booleans:
        return values

    def cell(i: int, v: object) -> object:
        if i in arrays:
            return json.loads(v) if isinstance(v, str) else []
        if i in booleans and v is not None:
            return bool(v)
        return v

    return [tuple(cell(i, v) for i, v in enumerate(row)) for row in values]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
