"""The local warehouse: BigQuery SQL translated for a read-only SQLite file."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.urls import sqlite_path
from anomaly_monitor.warehouses.sqlite_dialect import to_sqlite
from anomaly_monitor.warehouses.sqlite_functions import connect_readonly

PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks


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
        translated = to_sqlite(sql)
        deadline = time.monotonic() + timeout_s
        conn = connect_readonly(str(self.path), now)
        conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            cursor = conn.execute(translated)
            columns = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
            count = len(rows) + (0 if limit is None else sum(1 for _ in cursor))
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise QueryError(f"timed out after {timeout_s:g} s (QUERY_TIMEOUT_S) and was cancelled") from None
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        except sqlite3.Error as exc:
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        finally:
            conn.close()
        return QueryResult(columns, [dict(zip(columns, row)) for row in rows], count)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """Prepares the statement without running it (EXPLAIN); SQLite cannot say how much it would scan."""
        conn = connect_readonly(str(self.path), now)
        try:
            conn.execute("EXPLAIN " + to_sqlite(sql))
        except sqlite3.Error as exc:
            raise QueryError(f"SQLite rejected the translated query: {exc}") from None
        finally:
            conn.close()
        return None
