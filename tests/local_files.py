"""The local files a run reads and writes, as tests make and read them: a registry CSV written from rows, and
the history runs recorded in a SQLite state file."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

from anomaly_monitor.models import HistoryRecord
from anomaly_monitor.state.schema import from_values

REPO = Path(__file__).resolve().parents[1]


def write_registry(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """A checks CSV whose header is every column any row names."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def recorded(state_db: Path, names: Iterable[str]) -> dict[str, list[HistoryRecord]]:
    """Every row the runs recorded for these checks, oldest first, read straight from the file (nothing is
    created when there is none)."""
    if not state_db.exists():
        return {}
    wanted = set(names)
    with closing(sqlite3.connect(f"{state_db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM check_results ORDER BY checked_at, rowid").fetchall()
    out: dict[str, list[HistoryRecord]] = {}
    for row in rows:
        if row["check_name"] in wanted:
            out.setdefault(row["check_name"], []).append(from_values(HistoryRecord, dict(row)))
    return out
