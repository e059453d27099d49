"""Incident lifecycle end to end: the real runner, SQLite files, and slack_sdk against the local Slack server."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from anomaly_monitor.models import RunReport
from tests.deployment import LATE_SQL, T0, Monitor, hours, minutes
from tests.slack_server import TOKEN, SlackServer


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackServer) -> Monitor:
    m = Monitor(tmp_path, slack)
    m.register({"name": "late_settle", "sql": LATE_SQL, "severity": "critical"})
    return m


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(m["blocks"], ensure_ascii=False) for m in messages]


def status(report: RunReport, name: str) -> dict[str, Any]:
    return next(c for c in report.to_json()["checks"] if c["name"] == name)


# ---------------------------------------------------------------- open, quiet, remind, resolve


def test_failing_check_opens_one_top_level_message(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1", "order 4")
    report = monitor.run(T0)
    assert report.exit_code() == 1
    [message] = slack.top_level()
    assert message["channel"] == "C0ALERTS"
    assert message["blocks"][0]["text"]["text"] == "🔴 Critical · late_settle"
    [row] = monitor.history()
    assert (row["status"], row["notified"], row["slack_channel"], row["slack_ts"]) == (
        "alert",
        1,
        "C0ALERTS",
        message["ts"],
    )


def test_still_failing_stays_quiet(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    for n in (0, 10, 20, 30):
        monitor.run(minutes(n))
    assert len(slack.calls_to("chat.postMessage")) == 1
    ts = slack.top_level()[0]["ts"]
    assert [(r["notified"], r["slack_ts"]) for r in monitor.history()] == [(1, ts), (0, ts), (0, ts), (0, ts)]


def test_reminder_in_thread_after_renotify_hours(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "renotify_hours": "2"})
    monitor.late_rows("order 1")
    for h in (0, 1, 2, 3, 4):
        monitor.run(hours(h))
    [opened] = slack.top_level()
    replies = slack.replies(opened["ts"])
    assert len(replies) == 2
    assert "Still failing* since 2024-05-01 09:00 UTC: 3 runs, 2 h so far" in texts(replies)[0]
    assert "5 runs, 4 h so far" in texts(replies)[1]


def test_renotify_zero_never_reminds(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "renotify_hours": "0"})
    monitor.late_rows("order 1")
    for h in (0, 24, 48, 96):
        monitor.run(hours(h))
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_ok_again_resolves_in_thread_and_updates_the_original(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    monitor.run(hours(0))
    monitor.run(hours(1))
    monitor.late_rows()
    report = monitor.run(hours(2))
    assert report.exit_code() == 0
    [opened] = slack.top_level()
    [update] = slack.calls_to("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (opened["channel"], opened["ts"])
    assert opened["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"
    [reply] = slack.replies(opened["ts"])
    assert reply["text"] == "late_settle resolved after 2 runs (2 h)"
    assert monitor.history()[-1]["status"] == "ok" and monitor.history()[-1]["notified"] == 1

    monitor.run(hours(3))  # still ok: nothing more to say
    assert len(slack.calls_to("chat.postMessage")) == 2
    monitor.late_rows("order 9")
    monitor.run(hours(4))  # failing again is a new incident with a message of its own
    assert len(slack.top_level()) == 2


# ---------------------------------------------------------------- query errors and transitions


def test_query_error_opens_an_incident_that_reads_differently(monitor: Monitor, slack: SlackServer) -> None:
    monitor.sql("DROP TABLE late")
    report = monitor.run(T0)
    assert report.exit_code() == 2
    [message] = slack.top_level()
    assert message["blocks"][0]["text"]["text"] == "⚠️ Critical · Query error · late_settle"
    assert "so the data was not checked" in texts([message])[0]
    assert message["text"].startswith("⚠️ Critical · Query error · late_settle: ")


def test_alert_error_alert_notes_each_change_in_the_thread(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    monitor.run(hours(0))
    monitor.sql("ALTER TABLE late RENAME TO late_moved")
    monitor.run(hours(1))
    monitor.run(hours(2))  # still an error: nothing new
    monitor.sql("ALTER TABLE late_moved RENAME TO late")
    monitor.run(hours(3))
    monitor.late_rows()
    monitor.run(hours(4))
    [opened] = slack.top_level()
    replies = texts(slack.replies(opened["ts"]))
    assert len(replies) == 3
    assert "Now failing to run" in replies[0]
    assert "Runs again, and the data still fails the check" in replies[1]
    assert "Resolved* after 4 runs (4 h)" in replies[2]
    assert [r["status"] for r in monitor.history()] == ["alert", "error", "error", "alert", "ok"]
    assert [r["notified"] for r in monitor.history()] == [1, 1, 0, 1, 1]


def test_alert_after_waits_for_the_nth_failing_run(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "alert_after": "3"})
    monitor.late_rows("order 1")
    first = monitor.run(minutes(0))
    assert status(first, "late_settle")["status"] == "alert"
    assert status(first, "late_settle")["notified"] is False
    assert first.exit_code() == 1
    monitor.run(minutes(10))
    assert slack.calls_to("chat.postMessage") == []
    third = monitor.run(minutes(20))
    assert status(third, "late_settle")["notified"] is True
    [message] = slack.top_level()
    assert "failing since 2024-05-01 09:00 UTC (3 runs)" in texts([message])[0]


def test_alert_after_never_reached_stays_silent_and_resolves_silently(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "alert_after": "3"})
    monitor.late_rows("order 1")
    monitor.run(minutes(0))
    monitor.run(minutes(10))
    monitor.late_rows()
    monitor.run(minutes(20))
    assert slack.state.calls == []


# ---------------------------------------------------------------- delivery failures and races


def test_alert_undelivered_in_an_outage_is_posted_once_when_slack_is_back(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register(
        {"name": "late_settle", "sql": LATE_SQL},
        {"name": "revenue", "type": "threshold", "sql": "SELECT value FROM metric", "min": "10"},
    )
    monitor.late_rows("order 1")
    slack.down = True
    during = monitor.run(minutes(0))
    assert during.exit_code() == 2
    assert [(r["check_name"], r["status"], r["notified"]) for r in monitor.history()] == [
        ("late_settle", "alert", 0),
        ("revenue", "ok", 0),
    ]
    assert status(during, "late_settle")["notified"] is False

    attempts = len(slack.calls_to("chat.postMessage"))  # dropped, each retried twice
    slack.down = False
    after = monitor.run(minutes(10))
    assert after.exit_code() == 1
    monitor.run(minutes(20))
    assert len(slack.top_level()) == 1
    assert len(slack.calls_to("chat.postMessage")) == attempts + 1


def test_resolved_notice_undelivered_is_retried_next_run(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    monitor.run(hours(0))
    monitor.late_rows()
    slack.down = True
    assert monitor.run(hours(1)).exit_code() == 2
    slack.down = False
    monitor.run(hours(2))
    monitor.run(hours(3))
    [opened] = slack.top_level()
    assert len(slack.replies(opened["ts"])) == 1
    assert opened["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"


def test_two_concurrent_runs_post_one_message(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    slack.state.delay_s = 0.3  # both runs are past their queries while the first one is posting
    barrier = threading.Barrier(2)
    reports: list[RunReport] = []

    def one_run() -> None:
        barrier.wait()
        reports.append(monitor.run(minutes(0)))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reports) == 2
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert sorted(r["notified"] for r in monitor.history()) == [0, 1]


def test_unknown_channel_fails_that_check_only(
    monitor: Monitor, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    monitor.register(
        {"name": "late_settle", "sql": LATE_SQL, "channel": "#nowhere"},
        {"name": "revenue", "type": "threshold", "sql": "SELECT value FROM metric", "min": "1000"},
    )
    monitor.late_rows("order 1")
    report = monitor.run(T0)
    assert report.exit_code() == 2
    assert report.delivery_failures == 1
    assert status(report, "late_settle")["notified"] is False
    assert status(report, "revenue")["notified"] is True
    [message] = slack.top_level()
    assert message["blocks"][0]["text"]["text"] == "🟠 Warning · revenue"
    assert "check late_settle: opened notice for #nowhere not delivered: Slack said channel_not_found" in caplog.text
    assert TOKEN not in caplog.text


# ---------------------------------------------------------------- what the message holds


def test_row_cells_are_escaped_in_what_slack_receives(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("<!channel> pay now", "<@U0CEO> & <https://evil.example|login>")
    monitor.run(T0)
    [call] = slack.calls_to("chat.postMessage")
    sent = json.dumps(call.params, ensure_ascii=False)
    for raw in ("<!channel>", "<@U0CEO>", "<https://evil"):
        assert raw not in sent
    assert "&lt;!channel&gt; pay now" in sent
    assert "&lt;@U0CEO&gt; &amp; &lt;https://evil.example|login&gt;" in sent


def test_huge_result_stays_within_slack_limits(monitor: Monitor, slack: SlackServer) -> None:
    columns = ", ".join(f"printf('%.200c', 'x') AS wide_{i:02d}" for i in range(12))
    sql = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) SELECT i, {columns} FROM n"
    monitor.register({"name": "huge", "sql": sql})
    report = monitor.run(T0)
    assert status(report, "huge")["row_count"] == 10_000
    assert len(status(report, "huge")["rows"]) == 20
    [call] = slack.calls_to("chat.postMessage")
    blocks, text = call.params["blocks"], call.params["text"]
    assert len(blocks) <= 50 and len(text) <= 40_000
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)
    assert "and 9,980 more rows" in json.dumps(blocks)


def test_dry_run_posts_and_records_nothing(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    report = monitor.run(T0, dry_run=True)
    assert status(report, "late_settle")["status"] == "alert"
    assert [c.method for c in slack.state.calls if not c.method.startswith(("users.", "auth.", "conversations."))] == []
    assert monitor.history() == []


def test_email_owners_are_looked_up_once_per_run(monitor: Monitor, slack: SlackServer) -> None:
    slack.add_user("ana@example.com", "U0ANA")
    owners = "ana@example.com, nobody@example.com, U0LEAD"
    monitor.register(
        {"name": "late_settle", "sql": LATE_SQL, "owners": owners},
        {"name": "revenue", "type": "threshold", "sql": "SELECT value FROM metric", "min": "1000", "owners": owners},
    )
    monitor.late_rows("order 1")
    monitor.run(T0)
    assert sorted(c.params["email"] for c in slack.calls_to("users.lookupByEmail")) == [
        "ana@example.com",
        "nobody@example.com",
    ]
    assert len(slack.top_level()) == 2
    for text in texts(slack.top_level()):
        assert "*Owners:* <@U0ANA> nobody@example.com <@U0LEAD>" in text


def test_unresolvable_email_owner_is_shown_as_text_and_the_alert_still_posts(
    monitor: Monitor, slack: SlackServer
) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "owners": "gone@example.com"})
    monitor.late_rows("order 1")
    report = monitor.run(T0)
    assert status(report, "late_settle")["notified"] is True
    [text] = texts(slack.top_level())
    assert "*Owners:* gone@example.com" in text


def test_a_row_repeating_a_valid_name_is_invalid_and_not_notified(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL}, {"name": "late_settle", "sql": "SELECT 2 AS b"})
    monitor.late_rows("order 1")
    report = monitor.run(T0)
    first, repeated = [c for c in report.to_json()["checks"] if c["name"] == "late_settle"]
    assert (first["status"], first["notified"]) == ("alert", True)
    assert (repeated["status"], repeated["notified"]) == ("invalid", False), "as its history row says"
    assert [(r["status"], r["notified"]) for r in monitor.history()] == [("alert", 1), ("invalid", 0)]
    [invalid] = [r for r in report.results if r.status == "invalid"]
    assert invalid.incident is None, "the status tab shows the incident on the valid row only"
