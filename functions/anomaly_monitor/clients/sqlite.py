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
