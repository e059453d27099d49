"""The local warehouse: BigQuery SQL translated for a read-only SQLite file."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anomaly_monitor.clients.sqlite import sqlite_path
from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.warehouses.sqlite_dialect import to_sqlite
from anomaly_monitor.warehouses.sqlite_functions import connect_readonly, set_clock

PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks
UNREADABLE = ("file is not a database", "unable to open database", "disk image is malformed", "disk I/O error")


class SqliteWarehouse:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"warehouse {path} does not exist: build it with `make init-db` (python init_db.py)")
        self.path = path

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
        """Runs in a connection of its own (one per thread), whose clock is `now`; the deadline interrupts the
        query itself."""
        with self.session() as session:
            return session.query(sql, check_name=check_name, limit=limit, timeout_s=timeout_s, now=now)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """Prepares the statement without running it (EXPLAIN); SQLite cannot say how much it would scan."""
        with self.session() as session:
            return session.dry_run(sql, check_name=check_name, now=now)

    @contextmanager
    def session(self) -> Iterator[SqliteSession]:
        """Many queries on one read-only connection, in the thread that opened it (a backtest's ticks)."""
        session = SqliteSession(self.path)
        try:
            yield session
        finally:
            session.close()


class SqliteSession:
    """One read-only connection, opened at the first query; each query sets its own clock and deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self, now: dt.datetime) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_readonly(str(self.path), now)
        else:
            set_clock(self._conn, now)
        return self._conn

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
        translated = to_sqlite(sql)
        deadline = time.monotonic() + timeout_s
        try:
            conn = self._connection(now)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            cursor = conn.execute(translated)
            columns = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
            count = len(rows) + (0 if limit is None else sum(1 for _ in cursor))
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise QueryError(f"timed out after {timeout_s:g} s (QUERY_TIMEOUT_S) and was cancelled") from None
            if any(sign in str(exc) for sign in UNREADABLE):
                raise self._unreadable(exc) from None
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if any(sign in str(exc) for sign in UNREADABLE):
                raise self._unreadable(exc) from None
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        except sqlite3.Error as exc:
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        finally:
            conn.set_progress_handler(None, 0)
        return QueryResult(columns, [dict(zip(columns, row)) for row in rows], count)

    def _unreadable(self, exc: sqlite3.Error) -> QueryError:
        """The warehouse file itself, not the check's SQL: every check fails alike (one grouped alert)."""
        return QueryError(f"the warehouse {self.path} cannot be read: {exc}", cause="warehouse")

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        try:
            self._connection(now).execute("EXPLAIN " + to_sqlite(sql)).fetchall()
        except sqlite3.Error as exc:
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
