"""The sqlite:/// URLs that name the local warehouse and state files."""

from __future__ import annotations

from pathlib import Path

from anomaly_monitor.errors import ConfigError


def sqlite_path(url: str) -> Path:
    """SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db."""
    path = url.removeprefix("sqlite:///")
    if not path or path == url:
        raise ConfigError(f"{url!r} is not a SQLite URL: write sqlite:///relative/path.db or sqlite:////abs/path.db")
    return Path(path)
