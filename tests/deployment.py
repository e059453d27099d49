"""One deployment of the product in a temporary folder, for tests: registry, warehouse, state, the local Slack.

Runs happen in-process (`run`, as the doors make them) or as a real CLI process (`cli`), against the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slack_sdk.http_retry import FixedValueRetryIntervalCalculator

from anomaly_monitor.models import RunReport
from anomaly_monitor.notifiers.slack import SlackNotifier
from anomaly_monitor.notifiers.slack_client import Budget, web_client
from anomaly_monitor.runner import Backends, RunOptions, run
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources.csv_source import CsvSource
from anomaly_monitor.state.sqlite import SqliteStateStore
from anomaly_monitor.warehouses.sqlite import SqliteWarehouse
from tests.slack_server import TOKEN, SlackServer

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
FAST = FixedValueRetryIntervalCalculator(0.01)  # the retry policy of production, without the waiting
HEADER = ["name", "type", "sql", "min", "max", "severity", "channel", "owners", "alert_after", "renotify_hours"]
LATE_SQL = "SELECT id, note FROM late ORDER BY id"


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def hours(n: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


class Monitor:
    """One deployment of the product in tmp_path: registry CSV, warehouse and state files, Slack settings."""

    def __init__(self, root: Path, slack: SlackServer) -> None:
        self.root, self.slack = root, slack
        self.checks = root / "checks.csv"
        self.warehouse = root / "warehouse.db"
        self.state = root / "state.db"
        self.settings = Settings(
            slack_bot_token=TOKEN, slack_api_url=slack.base_url, slack_default_channel="#alerts", max_workers=2
        )
        self.sql("CREATE TABLE late (id INTEGER, note TEXT)")
        self.sql("CREATE TABLE metric (value REAL)")
        self.sql("INSERT INTO metric VALUES (100)")

    def sql(self, statement: str, params: Sequence[Any] = ()) -> None:
        with sqlite3.connect(self.warehouse) as conn:
            conn.execute(statement, params)

    def late_rows(self, *notes: str) -> None:
        self.sql("DELETE FROM late")
        for i, note in enumerate(notes, 1):
            self.sql("INSERT INTO late VALUES (?, ?)", (i, note))

    def register(self, *rows: dict[str, Any]) -> None:
        with self.checks.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, HEADER)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in HEADER})

    def notifier(self, *, timeout: float = 15, pace_s: float = 0.0, budget: Budget | None = None) -> SlackNotifier:
        client = web_client(TOKEN, self.slack.base_url, FAST, timeout=timeout, budget=budget)
        return SlackNotifier(client, self.settings.slack_default_channel, pace_s=pace_s)

    def run(self, now: dt.datetime, *, notifier: SlackNotifier | None = None, **options: Any) -> RunReport:
        """A run as the doors make it: fresh backends, one notifier per run (unpaced unless one is given)."""
        backends = Backends(
            source=CsvSource(self.checks),
            warehouse=SqliteWarehouse(self.warehouse),
            state=SqliteStateStore(self.state),
            notifier=notifier or self.notifier(),
            settings=self.settings,
        )
        return run(backends, RunOptions(now=now, force=True, **options))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a real CLI process of this deployment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "K_SERVICE"))}
        return env | {
            "PYTHONPATH": str(ROOT / "functions"),
            "CHECKS_SOURCE": str(self.checks),
            "WAREHOUSE_URL": f"sqlite:///{self.warehouse}",
            "STATE_URL": f"sqlite:///{self.state}",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": self.slack.base_url,
            "SLACK_DEFAULT_CHANNEL": "#alerts",
            "LOG_FORMAT": "json",
            **extra,
        }

    def cli(self, now: dt.datetime | None, *args: str, **env: str) -> subprocess.Popen[str]:
        """`anomaly_monitor run --force --json --now NOW` as a real process (the caller waits for or kills it);
        without `now`, on the real clock, as the HTTP function runs."""
        clock = ["--now", now.isoformat()] if now else []
        command = [sys.executable, "-m", "anomaly_monitor", "run", "--force", "--json", *clock, *args]
        return subprocess.Popen(
            command, cwd=ROOT, env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def notices(self) -> list[dict[str, Any]]:
        """The delivery journal, oldest event first."""
        if not self.state.exists():
            return []
        with sqlite3.connect(self.state) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM notices ORDER BY rowid").fetchall()]

    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        with sqlite3.connect(self.state) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM check_results ORDER BY checked_at, rowid").fetchall()
        return [dict(r) for r in rows if name is None or r["check_name"] == name]
