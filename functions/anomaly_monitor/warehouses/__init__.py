"""Warehouses run a check's SQL: SQLite locally, BigQuery in the cloud."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import Protocol

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.settings import Settings


class Session(Protocol):
    """What answers a check's SQL: a warehouse, one of its sessions, or a backtest's answers per tick."""

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None,
        now: dt.datetime,
    ) -> QueryResult:
        """Runs one read-only query; keeps the first `limit` rows (None: all) and counts the rest.

        `now` is the run's instant (taken once, after the run lock): what CURRENT_TIMESTAMP() and its kin mean.
        Raises QueryError with a message a user can act on."""
        ...

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """Validates the query without reading data; returns the bytes it would scan (None if unknown)."""
        ...


class Warehouse(Session, Protocol):
    def session(self) -> AbstractContextManager[Session]:
        """The same warehouse for many queries (a run's checks, a backtest's ticks), from one thread or several:
        on SQLite its connections are kept and reused, one query at a time each, and closed at the end;
        elsewhere the warehouse itself."""
        ...


class RunWarehouse(Warehouse, Protocol):
    """What a run needs of a warehouse beyond its queries."""

    def session(self) -> AbstractContextManager[RunWarehouse]:
        """As Warehouse.session; what it yields readies and runs a run's checks too."""
        ...

    def prepare(self, sql: str) -> None:
        """Readies a check's query for this run from the tree the registry's guard has just parsed (SQLite: its
        translation, cached by text), so the run parses each text once and keeps no tree. Never raises: a
        query that cannot be readied fails when it runs, with its message."""
        ...

    def workers(self, max_workers: int) -> int:
        """How many checks to run at once when MAX_WORKERS allows `max_workers`: all of them where checks wait
        (BigQuery), no more than the CPUs where the work is the process's own (SQLite)."""
        ...


def open_warehouse(url: str, settings: Settings) -> RunWarehouse:
    """The warehouse a URL names: `sqlite:///path.db` or `bigquery://PROJECT/DATASET`."""
    if url.startswith("sqlite:///"):
        from anomaly_monitor.warehouses.sqlite import SqliteWarehouse

        return SqliteWarehouse.from_url(url)
    if url.startswith("bigquery://"):
        from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_url(url, settings)
    raise ConfigError(f"warehouse URL {url!r} is not sqlite:///PATH or bigquery://PROJECT/DATASET")
