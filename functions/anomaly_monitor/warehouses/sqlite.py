"""The local warehouse: BigQuery SQL translated for a read-only SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.urls import sqlite_path
from anomaly_monitor.warehouses.sqlite_connection import FUNCTION_ERROR, ReadOnlyConnection, connect_readonly
from anomaly_monitor.warehouses.sqlite_dialect import Schema, Translation, translate

FETCH_BATCH = 500  # rows fetched between deadline checks
UNREADABLE = ("file is not a database", "unable to open database", "disk image is malformed", "disk I/O error")


class SqliteWarehouse:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"warehouse {path} does not exist: build it with `make init-db` (python init_db.py)")
        self.path = path
        self._schema: tuple[tuple[int, int], Schema] | None = None  # (file version, its tables' columns)

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
        """Runs in a connection of its own (one per thread), whose clock is `now`; the deadline covers the query
        and the fetch."""
        deadline = time.monotonic() + timeout_s
        conn = self._connect(now)
        conn.deadline = deadline
        try:
            translation = self._translate(sql, conn)
            cursor = conn.execute(translation.sql)
            columns = [d[0] for d in cursor.description or ()]
            arrays = [column for column in columns if column in translation.arrays]
            rows: list[dict] = []
            count = 0
            # Fetching and counting run under the deadline too: SQLite's progress handler interrupts the steps,
            # and this loop stops between batches.
            while batch := cursor.fetchmany(FETCH_BATCH):
                if conn.past_deadline():
                    raise sqlite3.OperationalError("interrupted")
                count += len(batch)
                wanted = len(batch) if limit is None else max(0, min(len(batch), limit - len(rows)))
                rows += [_row(columns, row, arrays) for row in batch[:wanted]]
        except sqlite3.Error as exc:
            raise self._query_error(conn, exc, timeout_s) from None
        finally:
            conn.close()
        return QueryResult(columns, rows, count)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """Prepares the statement without running it (EXPLAIN); SQLite cannot say how much it would scan."""
        conn = self._connect(now)
        try:
            conn.execute("EXPLAIN " + self._translate(sql, conn).sql)
        except sqlite3.Error as exc:
            raise self._query_error(conn, exc, None) from None
        finally:
            conn.close()
        return None

    def _translate(self, sql: str, conn: ReadOnlyConnection) -> Translation:
        """The check's SQL for SQLite; the schema is read once per version of the file (for `* EXCEPT`)."""
        stat = self.path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        if self._schema is None or self._schema[0] != version:
            tables = [
                name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            ]
            columns = {
                table: [d[0] for d in conn.execute(f"SELECT * FROM {_quoted(table)} LIMIT 0").description]
                for table in tables
            }
            self._schema = (version, Schema(columns))
        return translate(sql, self._schema[1])

    def _connect(self, now: dt.datetime) -> ReadOnlyConnection:
        try:
            return connect_readonly(str(self.path), now)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None

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


def _row(columns: list[str], values: tuple, arrays: list[str]) -> dict:
    """One result row; ARRAY columns (JSON text in SQLite) become lists, NULL an empty one, as BigQuery returns."""
    row = dict(zip(columns, values))
    for column in arrays:
        row[column] = json.loads(row[column]) if isinstance(row[column], str) else []
    return row


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
