"""The monitor tells of its own failures: the `_registry` incident, one message for a shared cause, the log
events outside monitoring matches, and no secret anywhere."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly_monitor import logs
from anomaly_monitor.errors import RegistryError
from anomaly_monitor.redact import MASK, SLACK_TOKEN, quote, redact, register
from tests.deployment import LATE_SQL, Monitor, minutes
from tests.slack_server import TOKEN, SlackServer


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackServer) -> Monitor:
    m = Monitor(tmp_path, slack)
    m.register({"name": "late_settle", "sql": LATE_SQL})
    return m


@pytest.fixture
def json_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Logging configured as the function does it; returns a reader of the raw stderr text."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("json")
    yield stream.getvalue
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def header(message: dict[str, Any]) -> str:
    return message["blocks"][0]["text"]["text"]


# ---------------------------------------------------------------- the registry


def test_an_unreadable_registry_is_one_incident_resolved_when_it_reads_again(
    monitor: Monitor, slack: SlackServer
) -> None:
    monitor.run(minutes(0))
    monitor.checks.rename(monitor.root / "moved.csv")
    for n in (10, 20, 30):  # Cloud Scheduler retries, then the next ticks
        with pytest.raises(RegistryError, match="does not exist"):
            monitor.run(minutes(n))
    [message] = slack.top_level()
    assert header(message) == "⚠️ Critical · The check registry cannot be read"
    assert message["channel"] == "C0ALERTS", "SLACK_DEFAULT_CHANNEL"
    assert "does not exist" in json.dumps(message["blocks"])
    (monitor.root / "moved.csv").rename(monitor.checks)
    assert monitor.run(minutes(40)).exit_code() == 0
    assert header(slack.state.messages[(message["channel"], message["ts"])]).startswith("✅ Resolved")
    [reply] = slack.replies(message["ts"])
    assert SlackServer.notice(reply)["kind"] == "resolved"
    monitor.run(minutes(50))
    assert len(slack.state.messages) == 2
    assert [r["status"] for r in monitor.history("_registry")] == ["error"] * 3 + ["ok"]


def test_the_cli_reports_a_run_that_could_not_happen_in_one_event(monitor: Monitor, slack: SlackServer) -> None:
    monitor.checks.unlink()
    process = monitor.cli(minutes(0))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3 and out == ""
    failed = [json.loads(line) for line in err.splitlines() if '"run_failed"' in line]
    assert len(failed) == 1 and failed[0]["severity"] == "ERROR"
    assert "does not exist" in failed[0]["message"]
    assert len(slack.top_level()) == 1


def test_a_finished_run_logs_its_summary_as_the_run_finished_event(monitor: Monitor, json_log: Any) -> None:
    monitor.late_rows("order 1")
    report = monitor.run(minutes(0))
    monitor.run(minutes(10))
    events = [json.loads(line) for line in json_log().splitlines() if '"run_finished"' in line]
    assert len(events) == 2
    first = events[0]
    assert (first["run_id"], first["summary"]["alert"], first["delivery_failures"]) == (report.run_id, 1, 0)
    assert isinstance(first["duration_ms"], int)
    assert events[1]["state_rows_read"] == 1, "one row per check: what the run read of the history"


# ---------------------------------------------------------------- one shared cause


def test_checks_failing_for_one_cause_are_one_grouped_incident(monitor: Monitor, slack: SlackServer) -> None:
    names = [f"check_{i}" for i in range(4)]
    monitor.register(*({"name": n, "sql": "SELECT value FROM metric WHERE value > 1000"} for n in names))
    monitor.run(minutes(0))
    good = monitor.warehouse.read_bytes()
    monitor.warehouse.write_bytes(b"this is not a database" * 100)
    report = monitor.run(minutes(10))
    assert [c["status"] for c in report.to_json()["checks"]] == ["error"] * 4
    assert all("cannot be read" in c["message"] and c["notified"] for c in report.to_json()["checks"])
    [message] = slack.top_level()
    assert header(message) == "⚠️ Warning · 4 checks could not run"
    text = json.dumps(message["blocks"])
    assert "check_0, check_1, check_2, check_3" in text and "the warehouse could not be reached" in text
    assert {r["cause"] for r in monitor.history() if r["status"] == "error"} == {"warehouse"}
    monitor.run(minutes(20))
    assert len(slack.state.messages) == 1, "still broken: quiet"
    monitor.warehouse.write_bytes(good)
    assert monitor.run(minutes(30)).exit_code() == 0
    assert header(slack.state.messages[(message["channel"], message["ts"])]).startswith("✅ Resolved")
    assert len(slack.top_level()) == 1, "no check posted on its own"


def test_fewer_checks_than_the_threshold_are_told_one_by_one(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register(*({"name": f"check_{i}", "sql": "SELECT value FROM metric WHERE value > 1000"} for i in range(2)))
    monitor.warehouse.write_bytes(b"not a database" * 100)
    monitor.run(minutes(0))
    assert sorted(header(m) for m in slack.top_level()) == [
        "⚠️ Warning · Query error · check_0",
        "⚠️ Warning · Query error · check_1",
    ]


# ---------------------------------------------------------------- secrets


def test_no_secret_reaches_logs_json_history_or_slack_even_when_echoed(
    monitor: Monitor, slack: SlackServer, json_log: Any
) -> None:
    leaked = "xoxb-9999-leaked-from-the-data"
    monitor.register(
        {"name": "late_settle", "sql": LATE_SQL},
        {"name": "leaky", "sql": f"SELECT '{leaked}' AS token, 'and {TOKEN}' AS again"},
    )
    monitor.late_rows("order 1")
    slack.fail("chat.postMessage", "echo")
    slack.fail("chat.postMessage", "echo_500")
    slack.fail("users.lookupByEmail", "echo")
    first = monitor.run(minutes(0))
    second = monitor.run(minutes(10))
    with sqlite3.connect(monitor.state) as conn:
        stored = json.dumps([conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("check_results", "notices")])
    seen = {
        "logs": json_log(),
        "json": json.dumps([first.to_json(), second.to_json()]),
        "state": stored,
        "slack": json.dumps(list(slack.state.messages.values())),
    }
    assert "Authorization" in seen["logs"] or "invalid_request" in seen["logs"], "the echo did reach the monitor"
    for where, text in seen.items():
        assert TOKEN not in text, where
        assert leaked not in text, where
        assert not SLACK_TOKEN.search(text), where
    assert MASK in seen["json"]


@given(st.text(max_size=200), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=60))
def test_redaction_masks_every_slack_token_in_any_text(text: str, tail: str) -> None:
    for prefix in ("xoxb-", "xoxp-", "xoxe.xoxb-", "xapp-", "xoxa-2-"):
        token = prefix + tail
        cleaned = redact(f"{text}{token} {text}")
        assert token not in cleaned
        assert not SLACK_TOKEN.search(cleaned)


@given(st.text(max_size=2000), st.integers(min_value=0, max_value=600))
def test_quoted_outside_text_is_capped_and_never_crashes(text: str, limit: int) -> None:
    register(TOKEN)
    quoted = quote(text + TOKEN, limit)
    assert len(quoted) <= max(limit, 1)
    assert TOKEN not in quoted
