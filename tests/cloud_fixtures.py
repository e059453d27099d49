"""Small local backends for the cloud-path tests: a SQLite warehouse and registry made in a temp dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from anomaly_monitor.notifiers.console import ConsoleNotifier
from anomaly_monitor.runner import Backends
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.csv_source import CsvSource
from anomaly_monitor.state.sqlite import SqliteStateStore
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse

CHECKS_HEADER = "name,type,sql,min,max,schedule,timezone,tags\n"
ORDERS_SCRIPT = """
CREATE TABLE orders (id INTEGER, amount REAL, status TEXT);
INSERT INTO orders VALUES (1, 10.0, 'settled'), (2, -5.0, 'settled'), (3, 7.5, 'stuck');
"""  # a SQL script for the `warehouse` fixture: one negative amount, one stuck order


def make_warehouse(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, status TEXT, amount REAL)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(1, "authorised", 10.0), (2, "settled", 20.0), (3, "authorised", 5.0)],
        )
    return path


def local_backends(tmp: Path, checks_csv: str) -> Backends:
    """Backends over files in `tmp`: checks.csv with CHECKS_HEADER plus the given rows, warehouse.db, state.db."""
    (tmp / "checks.csv").write_text(CHECKS_HEADER + checks_csv)
    warehouse = tmp / "warehouse.db"
    if not warehouse.exists():
        make_warehouse(warehouse)
    return Backends(
        source=CsvSource(tmp / "checks.csv"),
        warehouse=SqliteWarehouse(warehouse),
        state=SqliteStateStore(tmp / "state.db"),
        notifier=ConsoleNotifier(None),
        settings=Settings(),
    )
