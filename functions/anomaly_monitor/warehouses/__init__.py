"""Warehouses run a check's SQL: SQLite locally, BigQuery in the cloud."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.models import QueryResult
from anomaly_monitor.settings import Settings


class Warehouse(Protocol):
    def query(
        self, sql: str, *, check_name: str, limit: int | None, timeout_s: float, max_bytes: int | None
    ) -> QueryResult:
        """Runs one read-only query; keeps the first `limit` rows (None: all) and counts the rest.

        Raises QueryError with a message a user can act on."""
        ...

    def dry_run(self, sql: str, *, check_name: str) -> int | None:
        """Validates the query without reading data; returns the bytes it would scan (None if unknown)."""
        ...


def open_warehouse(url: str, settings: Settings, now: dt.datetime) -> Warehouse:
    """The warehouse a URL names: `sqlite:///path.db` or `bigquery://PROJECT/DATASET`.

    `now` is what CURRENT_TIMESTAMP() means on SQLite (the --now option); BigQuery keeps its own clock."""
    if url.startswith("sqlite:///"):
        from anomaly_monitor.warehouses.sqlite import SqliteWarehouse

        return SqliteWarehouse.from_url(url, now)
    if url.startswith("bigquery://"):
        from anomaly_monitor.warehouses.bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_url(url, settings)
    raise ConfigError(f"warehouse URL {url!r} is not sqlite:///PATH or bigquery://PROJECT/DATASET")
