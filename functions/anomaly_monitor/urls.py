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


def same_sqlite_file(first: str, second: str) -> bool:
    """Whether two URLs name one SQLite file, however they spell it (relative or absolute, `..`, links)."""
    if not (first.startswith("sqlite:///") and second.startswith("sqlite:///")):
        return False
    a, b = sqlite_path(first), sqlite_path(second)
    try:
        if a.exists() and b.exists():
            return a.samefile(b)  # hard and symbolic links too
        return a.resolve() == b.resolve()
    except OSError:  # unreadable paths: opening them fails later with a clearer message
        return False
