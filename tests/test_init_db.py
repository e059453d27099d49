"""init_db.populate and its CLI: the seed rows survive the time shift, the data ends at now, builds are repeatable."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from pathlib import Path

import pytest

import init_db
from tests.demo import DEMO_NOW
from tests.seed_rows import SEED_ORDERS, SEED_TRANSACTIONS

NOW = DEMO_NOW.replace(tzinfo=None)  # timestamps in the warehouse are naive UTC text


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture
def conn(demo_warehouse: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{demo_warehouse}?mode=ro", uri=True)  # shared by the session: read only
    yield connection
    connection.close()


def test_data_csvs_start_with_the_seed_rows_verbatim() -> None:
    _, orders = init_db.read_csv(init_db.DATA_DIR / "orders.csv")
    _, transactions = init_db.read_csv(init_db.DATA_DIR / "transactions.csv")
    assert [(int(i), c, int(m)) for i, c, m in orders[:10]] == SEED_ORDERS
    assert [(int(i), c, t, int(o), s) for i, c, t, o, s in transactions[:19]] == SEED_TRANSACTIONS
    assert min(int(row[0]) for row in orders[10:]) > 1000
    assert min(int(row[0]) for row in transactions[19:]) > 1000


def test_seed_rows_are_moved_by_one_whole_day_offset(conn: sqlite3.Connection) -> None:
    orders = conn.execute("SELECT id, created_date, merchant_id FROM orders WHERE id <= 10 ORDER BY id").fetchall()
    transactions = conn.execute("SELECT * FROM transactions WHERE id <= 19 ORDER BY id").fetchall()
    assert len(orders) == 10 and len(transactions) == 19
    offset = parse(orders[0][1]) - parse(SEED_ORDERS[0][1])
    assert offset.total_seconds() % 86400 == 0
    assert [(i, parse(c) - offset, m) for i, c, m in orders] == [(i, parse(c), m) for i, c, m in SEED_ORDERS]
    assert [(i, parse(c) - offset, t, o, s) for i, c, t, o, s in transactions] == [
        (i, parse(c), t, o, s) for i, c, t, o, s in SEED_TRANSACTIONS
    ]


def test_seed_rows_are_more_than_a_week_old(conn: sqlite3.Connection) -> None:
    newest_seed = conn.execute("SELECT MAX(created_date) FROM transactions WHERE id <= 19").fetchone()[0]
    assert parse(newest_seed) < NOW - dt.timedelta(days=60)


def test_data_ends_just_before_now(conn: sqlite3.Connection) -> None:
    for table, column in [("orders", "created_date"), ("transactions", "created_date"), ("payouts", "paid_at")]:
        newest = parse(conn.execute(f"SELECT MAX({column}) FROM {table}").fetchone()[0])
        assert NOW - dt.timedelta(days=1) < newest <= NOW, table
    newest_order = parse(conn.execute("SELECT MAX(created_date) FROM orders").fetchone()[0])
    assert NOW - newest_order < dt.timedelta(minutes=30)


def test_row_counts_are_in_the_expected_range(conn: sqlite3.Connection) -> None:
    count = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in init_db.TABLES}
    assert count["merchants"] == 8
    assert 50_000 <= count["orders"] <= 90_000
    assert 1.8 * count["orders"] <= count["transactions"] <= 2.3 * count["orders"]
    assert count["payments"] == count["orders"]
    assert 1_000 <= count["payouts"] <= 1_600


def test_history_covers_about_six_months(conn: sqlite3.Connection) -> None:
    oldest = parse(conn.execute("SELECT MIN(created_date) FROM orders WHERE id > 1000").fetchone()[0])
    assert dt.timedelta(days=170) < NOW - oldest < dt.timedelta(days=200)


def test_timestamps_and_dates_use_the_sqlite_text_forms(conn: sqlite3.Connection) -> None:
    created, paid_at, payout_date = conn.execute(
        "SELECT o.created_date, p.paid_at, p.payout_date FROM orders AS o, payouts AS p LIMIT 1"
    ).fetchone()
    for value in (created, paid_at):
        assert dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    assert dt.date.fromisoformat(payout_date)
    assert conn.execute("SELECT typeof(amount) FROM payments WHERE amount IS NOT NULL LIMIT 1").fetchone() == ("real",)


def test_payout_dates_match_their_settlement_days(conn: sqlite3.Connection) -> None:
    mismatched = conn.execute(
        "SELECT COUNT(*) FROM payouts WHERE DATE(paid_at) != DATE(payout_date, '+1 day')"
    ).fetchone()[0]
    assert mismatched == 0


def test_indexes_exist_on_filtered_columns(conn: sqlite3.Connection) -> None:
    indexed = {
        (table, column)
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for index in conn.execute(f"PRAGMA index_list({table})").fetchall()
        for _, _, column in conn.execute(f"PRAGMA index_info({index[1]})").fetchall()
    }
    assert {("orders", "created_date"), ("transactions", "created_date"), ("transactions", "order_id")} <= indexed


def test_two_builds_with_the_same_now_are_equal(demo_warehouse: Path, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "again.db")
    init_db.populate(other, NOW)
    first = sqlite3.connect(demo_warehouse)
    for table in init_db.TABLES:
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert first.execute(query).fetchall() == other.execute(query).fetchall(), table
    first.close()
    other.close()


def test_hour_of_day_is_kept_and_later_rows_are_left_out(tmp_path: Path) -> None:
    early = dt.datetime(2025, 6, 11, 3, 0, 0)
    conn = sqlite3.connect(tmp_path / "early.db")
    init_db.populate(conn, early)
    newest = parse(conn.execute("SELECT MAX(created_date) FROM transactions").fetchone()[0])
    seed_auth = conn.execute("SELECT created_date FROM transactions WHERE id = 1").fetchone()[0]
    conn.close()
    assert early - dt.timedelta(hours=1) < newest <= early
    assert seed_auth.endswith(" 17:48:00")


def test_aware_now_is_converted_to_utc(tmp_path: Path) -> None:
    aware = dt.datetime(2025, 6, 11, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    conn = sqlite3.connect(tmp_path / "aware.db")
    init_db.populate(conn, aware)
    newest = parse(conn.execute("SELECT MAX(created_date) FROM orders").fetchone()[0])
    conn.close()
    utc = dt.datetime(2025, 6, 11, 9, 30)  # 11:30 at UTC+2
    assert utc - dt.timedelta(hours=1) < newest <= utc


def test_cli_builds_then_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "sub" / "warehouse.db"
    assert init_db.main(["--db", str(db), "--now", "2025-06-11T09:30:00Z"]) == 0
    assert "built" in capsys.readouterr().out
    db_bytes = db.read_bytes()

    assert init_db.main(["--db", str(db), "--now", "2025-07-01T00:00:00"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert db.read_bytes() == db_bytes

    assert init_db.main(["--db", str(db), "--force", "--now", "2025-07-01T12:00:00"]) == 0
    conn = sqlite3.connect(db)
    newest = conn.execute("SELECT MAX(created_date) FROM orders").fetchone()[0]
    conn.close()
    assert newest.startswith("2025-07-01 11:")
    assert not list(tmp_path.glob("sub/*-building"))


def test_max_age_rebuilds_a_stale_file_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "warehouse.db"
    assert init_db.main(["--db", str(db), "--now", "2025-06-11T09:30:00Z"]) == 0
    assert init_db.main(["--db", str(db), "--max-age-hours", "1"]) == 0
    assert "is up to date" in capsys.readouterr().out.splitlines()[-1]
    two_hours_ago = time.time() - 2 * 3600
    os.utime(db, (two_hours_ago, two_hours_ago))
    assert init_db.main(["--db", str(db), "--max-age-hours", "1", "--now", "2025-07-01T12:00:00Z"]) == 0
    assert "built" in capsys.readouterr().out.splitlines()[-1]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT MAX(created_date) FROM orders").fetchone()[0].startswith("2025-07-01 11:")
