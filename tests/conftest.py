"""Shared fixtures: small real SQLite warehouses and registries in tmp_path."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from pathlib import Path

import pytest

from anomaly_monitor.models import HistoryRecord
from anomaly_monitor.state.schema import from_values

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def write_registry(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def warehouse(tmp_path: Path) -> Callable[[str], Path]:
    """Builds a SQLite warehouse file from a SQL script; returns its path."""

    def build(script: str) -> Path:
        path = tmp_path / "warehouse.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(script)
        return path

    return build


def build_demo_warehouse(folder: Path, now: dt.datetime) -> Path:
    """The demo warehouse as `make run` builds it, as if it were `now`."""
    import init_db

    path = folder / "warehouse.db"
    conn = sqlite3.connect(path)
    try:
        init_db.populate(conn, now)
    finally:
        conn.close()
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Callable[[Sequence[dict[str, str]]], Path]:
    return lambda rows: write_registry(tmp_path / "checks.csv", rows)


MEASURED: list[str] = []  # figures tests measure without asserting on them (timing is not for assertions here)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in MEASURED:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def measured() -> list[str]:
    """Lines printed at the end of the session: figures to report, e.g. answer times."""
    return MEASURED


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
