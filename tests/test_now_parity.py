"""`run --now` gives a time-relative check the same answer on SQLite and on BigQuery (the emulator)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from anomaly_monitor.clients.bigquery import bigquery_client
from tests import bq_emulator
from tests.local_files import REPO, write_registry

pytestmark = pytest.mark.slow
bigquery_emulator = bq_emulator.bigquery_emulator

# Events every 5 hours over three days, around the spring change of clocks in Europe (2026-03-29).
EVENTS = [(i, f"2026-03-{27 + (i * 5) // 24:02d} {(i * 5) % 24:02d}:15:00") for i in range(15)]
CHECKS = [
    {
        "name": "events_last_24h",
        "type": "threshold",
        "max": "3",
        "sql": "SELECT COUNT(*) AS value FROM events "
        "WHERE ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 24 HOUR) AND ts <= CURRENT_TIMESTAMP()",
    },
    {"name": "events_today", "sql": "SELECT id FROM events WHERE DATE(ts) = CURRENT_DATE() ORDER BY id"},
    {
        "name": "events_today_in_los_angeles",
        "sql": "SELECT id FROM events "
        "WHERE DATE(ts, 'America/Los_Angeles') = CURRENT_DATE('America/Los_Angeles') ORDER BY id",
    },
    {
        "name": "minutes_since_last_event",
        "type": "threshold",
        "max": "120",
        "sql": "SELECT TIMESTAMP_DIFF(CURRENT_TIMESTAMP, MAX(ts), MINUTE) AS value FROM events "
        "WHERE ts <= CURRENT_TIMESTAMP()",
    },
    {
        "name": "berlin_hour",
        "type": "threshold",
        "max": "12",
        "sql": "SELECT EXTRACT(HOUR FROM CURRENT_DATETIME('Europe/Berlin')) AS value",
    },
    {
        "name": "utc_minute_of_day",
        "type": "threshold",
        "min": "0",
        "sql": "SELECT EXTRACT(HOUR FROM CURRENT_TIME()) * 60 + EXTRACT(MINUTE FROM CURRENT_TIME()) AS value",
    },
]
NOWS = ["2026-03-29T00:30:00Z", "2026-03-28T13:45:30.250Z"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_registry(tmp_path_factory.mktemp("now") / "checks.csv", CHECKS)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("now") / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMP)")
        conn.executemany("INSERT INTO events VALUES (?, ?)", EVENTS)
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def bigquery_url(bigquery_emulator: bq_emulator.Emulator) -> str:
    dataset = f"now_{uuid.uuid4().hex[:8]}"
    client = bigquery_client(bigquery_emulator.project, bigquery_emulator.endpoint)
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.events (id INT64, ts TIMESTAMP)").result()
    rows = ", ".join(f"({i}, TIMESTAMP '{ts}')" for i, ts in EVENTS)
    client.query(f"INSERT INTO {dataset}.events VALUES {rows}").result()
    return f"bigquery://{bigquery_emulator.project}/{dataset}"


def run(registry: Path, warehouse: str, now: str, tmp_path: Path, endpoint: str) -> dict[str, dict]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    environment.update(PYTHONPATH=str(REPO / "functions"), BIGQUERY_API_ENDPOINT=endpoint)
    arguments = ["--checks", str(registry), "--warehouse", warehouse, "--state", f"sqlite:///{tmp_path / 's.db'}"]
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_monitor", "run", "--json", "--dry-run", "--now", now, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
    )
    assert done.returncode in (0, 1), done.stderr
    return {check["name"]: check for check in json.loads(done.stdout)["checks"]}


def answer(check: dict) -> tuple:
    return check["status"], check["value"], check["row_count"], check["rows"], check["expected"], check["message"]


def test_time_relative_checks_answer_alike_on_sqlite_and_bigquery_with_the_same_now(
    registry: Path, sqlite_url: str, bigquery_url: str, bigquery_emulator: bq_emulator.Emulator, tmp_path: Path
) -> None:
    answers = {}
    for now in NOWS:
        on_sqlite = run(registry, sqlite_url, now, tmp_path, bigquery_emulator.endpoint)
        on_bigquery = run(registry, bigquery_url, now, tmp_path, bigquery_emulator.endpoint)
        for check in CHECKS:
            name = check["name"]
            assert answer(on_sqlite[name]) == answer(on_bigquery[name]), (now, name)
            assert on_sqlite[name]["status"] in ("ok", "alert"), on_sqlite[name]["message"]
        answers[now] = {name: answer(result) for name, result in on_sqlite.items()}
    first, second = (answers[now] for now in NOWS)
    assert first["berlin_hour"][1] == 1 and second["berlin_hour"][1] == 14  # UTC+1 (CET) on both days
    assert first["utc_minute_of_day"][1] == 30 and second["utc_minute_of_day"][1] == 13 * 60 + 45
    assert first["events_today"][3] != second["events_today"][3]
    assert first["events_today_in_los_angeles"][2] > 0  # still the 28th there
