"""Parsing of the sqlite:// and bigquery:// URLs the options and environment take."""

from __future__ import annotations

from pathlib import Path

from anomaly_monitor.errors import ConfigError


def sqlite_path(url: str) -> Path:
    """SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db."""
    path = url.removeprefix("sqlite:///")
    if not path or path == url:
        raise ConfigError(f"{url!r} is not a SQLite URL: write sqlite:///relative/path.db or sqlite:////abs/path.db")
    return Path(path)


def bigquery_dataset(url: str) -> tuple[str, str]:
    """bigquery://PROJECT/DATASET -> (project, dataset)."""
    parts = url.removeprefix("bigquery://").strip("/").split("/")
    if not url.startswith("bigquery://") or len(parts) != 2 or not all(parts):
        raise ConfigError(f"{url!r} is not a BigQuery URL: write bigquery://PROJECT/DATASET")
    return parts[0], parts[1]
