"""The demo warehouse as `make run` builds it (init_db.populate), for tests that run the demo registry."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import init_db

# The instant the session's demo warehouse is built at, and so what CURRENT_TIMESTAMP() means when it is queried.
DEMO_NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # a Monday


def build_demo_warehouse(folder: Path, now: dt.datetime) -> Path:
    """The demo warehouse as `make run` builds it, as if it were `now` (a few seconds: build it once)."""
    path = folder / "warehouse.db"
    conn = sqlite3.connect(path)
    try:
        init_db.populate(conn, now)
    finally:
        conn.close()
    return path
