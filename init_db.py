"""Builds the local demo warehouse (a SQLite file) from data/*.csv, moved in time so that it ends now.

The CSVs are written by data/generate_demo.py around a fixed calendar: their last day is the generated "today".
Loading moves every TIMESTAMP and DATE column by one offset, a whole number of days, so that this last day
becomes the current UTC day, and leaves out the rows that would then lie in the future (a settlement due this
evening has not happened yet). The data therefore always runs right up to now, whatever the hour you build it:

- hour of day is kept, so the daily rhythm and the hour_of_day checks see real UTC hours;
- calendar days stay whole, so a DATE column still names the day its timestamps fall on;
- the weekday is not kept (the generated weekend moves with the build day), but the weekly pattern keeps its
  7-day period, so day_of_week checks still compare like with like;
- intervals between rows are unchanged, so the seed orders keep their verdicts to the second.

Timestamps are stored as UTC text `YYYY-MM-DD HH:MM:SS`, dates as `YYYY-MM-DD`, the forms SQLite's date
functions read. Usage: python init_db.py [--db data/warehouse.db] [--force] [--now ISO-8601]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_DB = DATA_DIR / "warehouse.db"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # INTEGER, REAL, TEXT, TIMESTAMP or DATE; the last two are stored as TEXT
    primary_key: bool = False

    @property
    def declaration(self) -> str:
        sql_type = "TEXT" if self.kind in ("TIMESTAMP", "DATE") else self.kind
        return f"{self.name} {sql_type}" + (" PRIMARY KEY" if self.primary_key else "")


TABLES: dict[str, tuple[Column, ...]] = {
    "merchants": (
        Column("merchant_id", "INTEGER", primary_key=True),
        Column("name", "TEXT"),
        Column("country", "TEXT"),
        Column("currency", "TEXT"),
        Column("category", "TEXT"),
        Column("onboarded_date", "DATE"),
    ),
    "orders": (
        Column("id", "INTEGER", primary_key=True),
        Column("created_date", "TIMESTAMP"),
        Column("merchant_id", "INTEGER"),
    ),
    "transactions": (
        Column("id", "INTEGER", primary_key=True),
        Column("created_date", "TIMESTAMP"),
        Column("transaction_type", "TEXT"),
        Column("order_id", "INTEGER"),
        Column("transaction_status", "TEXT"),
    ),
    "payments": (
        Column("order_id", "INTEGER", primary_key=True),
        Column("created_date", "TIMESTAMP"),
        Column("amount", "REAL"),
        Column("currency", "TEXT"),
        Column("payment_method", "TEXT"),
    ),
    "payouts": (
        Column("payout_id", "INTEGER", primary_key=True),
        Column("merchant_id", "INTEGER"),
        Column("payout_date", "DATE"),
        Column("currency", "TEXT"),
        Column("settled_orders", "INTEGER"),
        Column("amount", "REAL"),
        Column("paid_at", "TIMESTAMP"),
    ),
}

# The columns checks filter and join on.
INDEXES = {
    "orders": ("created_date", "merchant_id"),
    "transactions": ("created_date", "order_id"),
    "payments": ("created_date",),
    "payouts": ("payout_date", "merchant_id"),
}


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header, *rows = csv.reader(handle)
    return header, rows


def last_day(tables: dict[str, tuple[list[str], list[list[str]]]]) -> dt.date:
    """The day of the newest timestamp in the CSVs: the generated "today"."""
    newest = max(
        row[header.index(column.name)]
        for name, (header, rows) in tables.items()
        for column in TABLES[name]
        if column.kind == "TIMESTAMP"
        for row in rows
    )
    return dt.date.fromisoformat(newest[:10])


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """A naive datetime is taken as UTC; an aware one is converted to UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def convert_column(kind: str, texts: list[str], days: dt.timedelta) -> list[object]:
    """CSV text to SQL values; TIMESTAMP and DATE values moved by `days`; an empty cell is NULL."""
    if kind in ("TIMESTAMP", "DATE"):
        # The shift is whole days, so only the date part changes: move each distinct day once.
        moved = {day: (dt.date.fromisoformat(day) + days).isoformat() for day in {text[:10] for text in texts if text}}
        return [moved[text[:10]] + text[10:] if text else None for text in texts]
    parse = {"INTEGER": int, "REAL": float, "TEXT": str}[kind]
    return [parse(text) if text else None for text in texts]


def shifted_rows(
    name: str, header: list[str], rows: list[list[str]], days: dt.timedelta, now_text: str
) -> list[tuple[object, ...]]:
    """Rows as SQL values in TABLES order, moved by `days`; rows with a timestamp after now are left out."""
    columns = TABLES[name]
    values = [convert_column(c.kind, [row[header.index(c.name)] for row in rows], days) for c in columns]
    stamps = [converted for column, converted in zip(columns, values, strict=True) if column.kind == "TIMESTAMP"]
    rows_stamps = zip(*stamps, strict=True) if stamps else ([] for _ in rows)
    future = [any(text is not None and text > now_text for text in row) for row in rows_stamps]
    return [row for row, late in zip(zip(*values, strict=True), future, strict=True) if not late]


def create_tables(conn: sqlite3.Connection) -> None:
    for name, columns in TABLES.items():
        conn.execute(f"CREATE TABLE {name} ({', '.join(c.declaration for c in columns)})")


def create_indexes(conn: sqlite3.Connection) -> None:
    for name, columns in INDEXES.items():
        for column in columns:
            conn.execute(f"CREATE INDEX {name}_{column} ON {name} ({column})")


def populate(conn: sqlite3.Connection, now: dt.datetime | None = None, data_dir: Path = DATA_DIR) -> None:
    """Create the demo tables in an empty database and load data_dir/*.csv, moved so that the data ends at `now`.

    `now` defaults to the current time; a naive value is UTC. A table without a CSV is created empty.
    """
    now = utc_naive(now or dt.datetime.now(dt.UTC))
    tables = {name: read_csv(data_dir / f"{name}.csv") for name in TABLES if (data_dir / f"{name}.csv").exists()}
    days = now.date() - last_day(tables)
    now_text = now.strftime("%Y-%m-%d %H:%M:%S")
    with conn:
        create_tables(conn)
        for name, (header, rows) in tables.items():
            columns = TABLES[name]
            placeholders = ", ".join("?" for _ in columns)
            conn.executemany(
                f"INSERT INTO {name} ({', '.join(c.name for c in columns)}) VALUES ({placeholders})",
                shifted_rows(name, header, rows, days, now_text),
            )
        create_indexes(conn)  # after loading: faster than maintaining them row by row


# Exclusion windows of the demo, in days relative to the build day like the planted incidents: written to
# data/exclusions.csv (beside checks.csv) with every build, so `make run` shows one honoured.
DEMO_EXCLUSIONS = [
    ("orders_daily", -1, -1, "promotion day: order volume not comparable"),
    ("*", -45, -45, "public holiday"),
]


def write_exclusions(path: Path, now: dt.datetime | None = None) -> None:
    """The demo's exclusion windows as ISO dates around the build day (`check,from,to,reason`)."""
    today = utc_naive(now or dt.datetime.now(dt.UTC)).date()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["check", "from", "to", "reason"])
        for check, start, end, reason in DEMO_EXCLUSIONS:
            first, last = today + dt.timedelta(days=start), today + dt.timedelta(days=end)
            writer.writerow([check, first.isoformat(), last.isoformat(), reason])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="SQLite file to build (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild the file if it exists")
    parser.add_argument(
        "--max-age-hours",
        type=float,
        metavar="H",
        help="also rebuild an existing file older than H hours, so the demo data keeps ending near now",
    )
    parser.add_argument(
        "--now",
        type=dt.datetime.fromisoformat,
        help="build as if it were this time (ISO-8601, default: the current time; without offset: UTC)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db: Path = args.db
    stale = (
        args.max_age_hours is not None and db.exists() and time.time() - db.stat().st_mtime > args.max_age_hours * 3600
    )
    if db.exists() and not (args.force or stale):
        print(f"{db} is up to date (use --force, or make init-db, to rebuild it)")
        return 0
    partial = db.with_name(db.name + "-building")  # replaced atomically when complete
    db.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial)
    try:
        populate(conn, args.now)
        counts = {name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0] for name in TABLES}
        newest = conn.execute("SELECT MAX(created_date) FROM orders").fetchone()[0]
    finally:
        conn.close()
    partial.replace(db)
    write_exclusions(db.with_name("exclusions.csv"), args.now)  # beside checks.csv for the default --db
    summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
    print(f"built {db}: {summary}; newest order {newest} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
