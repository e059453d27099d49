"""Never silent, never twice: whole runs against the local Slack server while it misbehaves.

Each test sets up one fault the way real networks and Slack produce it and asserts, from the server's own
record of the messages it holds, that every failing period got exactly one top-level message and was resolved.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from anomaly_monitor.models import RunReport
from tests.deployment import LATE_SQL, Monitor, minutes
from tests.slack_server import SlackServer


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackServer) -> Monitor:
    m = Monitor(tmp_path, slack)
    m.register({"name": "late_settle", "sql": LATE_SQL, "severity": "critical"})
    return m


def status(report: RunReport, name: str) -> dict[str, Any]:
    return next(c for c in report.to_json()["checks"] if c["name"] == name)


def blocks(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def kinds(slack: SlackServer) -> list[str]:
    return [
        SlackServer.notice(m).get("kind", "?") for m in sorted(slack.state.messages.values(), key=lambda m: m["ts"])
    ]


# ---------------------------------------------------------------- unknown outcomes


@pytest.mark.parametrize("fault", ["drop_after", "server_error_after", "late"])
def test_a_post_slack_acted_on_but_never_confirmed_is_found_not_repeated(
    monitor: Monitor, slack: SlackServer, fault: str
) -> None:
    monitor.late_rows("order 1")
    slack.fail("chat.postMessage", fault, delay_s=1.0)
    first = monitor.run(minutes(0), notifier=monitor.notifier(timeout=0.4))
    assert first.exit_code() == 2 and status(first, "late_settle")["notified"] is False
    assert [n["event"] for n in monitor.notices()] == ["attempt", "unknown"]
    second = monitor.run(minutes(10))
    third = monitor.run(minutes(20))
    [message] = slack.top_level()
    assert len(slack.calls_to("chat.postMessage")) == 1, "looked for, never posted again"
    assert second.exit_code() == 1 and third.exit_code() == 1
    assert [n["event"] for n in monitor.notices()] == ["attempt", "unknown", "delivered"]
    assert [(r["slack_ts"], r["announced"]) for r in monitor.history()] == [
        (None, None),
        *[(message["ts"], "alert")] * 2,
    ]


@pytest.mark.parametrize("fault", ["drop", "server_error"])
def test_a_post_lost_before_slack_acted_is_sent_on_the_next_run(
    monitor: Monitor, slack: SlackServer, fault: str
) -> None:
    monitor.late_rows("order 1")
    slack.fail("chat.postMessage", fault)
    assert monitor.run(minutes(0)).exit_code() == 2
    assert slack.top_level() == []
    assert monitor.run(minutes(10)).exit_code() == 1
    monitor.run(minutes(20))
    assert len(slack.top_level()) == 1
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.calls_to("conversations.history")) == 1, "looked for once, on the run after"


def test_without_the_history_scope_an_unconfirmed_alert_is_sent_again_saying_it_may_repeat(
    monitor: Monitor, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack.state.scopes = {"chat:write", "chat:write.public", "channels:read"}
    monitor.late_rows("order 1")
    slack.fail("chat.postMessage", "drop_after")
    monitor.run(minutes(0))
    report = monitor.run(minutes(10))
    assert status(report, "late_settle")["notified"] is True
    first, second = sorted(slack.top_level(), key=lambda m: m["ts"])
    assert "may repeat an earlier message" not in blocks(first)
    assert "may repeat an earlier message" in blocks(second)
    assert "cannot be looked for in Slack (Slack said missing_scope reading #alerts" in caplog.text
    assert "add the scope channels:history" in caplog.text
    monitor.run(minutes(20))
    assert len(slack.top_level()) == 2, "said once, not every run"


# ---------------------------------------------------------------- half-done and deleted


def test_a_half_done_resolve_never_hides_the_next_incident(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    monitor.run(minutes(0))
    monitor.late_rows()
    slack.fail("chat.postMessage", "fatal_error")  # chat.update marks it resolved, then the reply fails
    assert monitor.run(minutes(10)).exit_code() == 2
    [opened] = slack.top_level()
    assert opened["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    monitor.late_rows("order 9")
    report = monitor.run(minutes(20))
    assert report.exit_code() == 1 and status(report, "late_settle")["notified"] is True
    first, second = sorted(slack.top_level(), key=lambda m: m["ts"])
    header = second["blocks"][0]["text"]["text"]
    assert header == "🔴 Critical · late_settle", "the new failure is a new, visible incident"
    assert [SlackServer.notice(m)["kind"] for m in slack.replies(first["ts"])] == ["resolved"]
    monitor.late_rows()
    monitor.run(minutes(30))
    assert [SlackServer.notice(m)["kind"] for m in slack.replies(second["ts"])] == ["resolved"]
    assert len(slack.replies(first["ts"])) == 1


def test_a_deleted_incident_message_is_continued_in_a_new_message(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL, "renotify_hours": "1"})
    monitor.late_rows("order 1")
    monitor.run(minutes(0))
    [opened] = slack.top_level()
    slack.delete(opened["channel"], opened["ts"])
    report = monitor.run(minutes(60))
    assert report.exit_code() == 1
    [moved] = slack.top_level()
    assert "is gone; it continues here" in blocks(moved) and "Still failing" in blocks(moved)
    monitor.late_rows()
    monitor.run(minutes(70))
    [resolved] = slack.replies(moved["ts"])
    assert SlackServer.notice(resolved)["kind"] == "resolved"
    assert slack.state.messages[(moved["channel"], moved["ts"])]["blocks"][0]["text"]["text"].startswith("✅")
    monitor.late_rows("order 2")
    monitor.run(minutes(80))
    assert len(slack.top_level()) == 2, "a new failure after the continued incident is a new incident"


def test_a_resolution_whose_message_was_deleted_is_posted_on_its_own(monitor: Monitor, slack: SlackServer) -> None:
    monitor.late_rows("order 1")
    monitor.run(minutes(0))
    [opened] = slack.top_level()
    slack.delete(opened["channel"], opened["ts"])
    monitor.late_rows()
    assert monitor.run(minutes(10)).exit_code() == 0
    [resolved] = slack.top_level()
    assert resolved["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"
    assert "is gone; it continues here" in blocks(resolved)


# ---------------------------------------------------------------- outages


def test_an_incident_that_opened_and_cleared_during_an_outage_is_reported_once_slack_is_back(
    monitor: Monitor, slack: SlackServer
) -> None:
    slack.down = True
    monitor.late_rows("order 1")
    assert monitor.run(minutes(10)).exit_code() == 2
    monitor.run(minutes(20))
    monitor.late_rows()
    assert monitor.run(minutes(40)).exit_code() == 2
    slack.down = False
    assert monitor.run(minutes(50)).exit_code() == 0
    [message] = slack.top_level()
    assert message["blocks"][0]["text"]["text"] == "✅ Resolved · late_settle"
    assert "Failed from 2024-05-01 09:10 UTC to 2024-05-01 09:40 UTC* (2 runs, 30 min) while Slack was unreachable" in (
        blocks(message)
    )
    monitor.run(minutes(60))
    assert len(slack.state.messages) == 1


def test_an_outage_is_never_a_reason_to_lose_the_run(monitor: Monitor, slack: SlackServer) -> None:
    slack.down = True
    monitor.late_rows("order 1")
    report = monitor.run(minutes(0))
    assert report.exit_code() == 2 and report.delivery_failures == 1
    assert [r["status"] for r in monitor.history()] == ["alert"]
    assert [n["event"] for n in monitor.notices()] == ["attempt", "failed"], "refused: certainly not delivered"


# ---------------------------------------------------------------- rate and pace


def test_a_hundred_alerts_to_one_channel_are_all_delivered_once_at_slacks_pace(
    monitor: Monitor, slack: SlackServer
) -> None:
    monitor.register(*({"name": f"check_{i:03d}", "sql": LATE_SQL} for i in range(100)))
    monitor.late_rows("order 1")
    slack.state.rate_interval_s = 0.02  # Slack's "one a second", scaled down: faster writes get a 429
    slack.state.rate_retry_after = 0.02
    report = monitor.run(minutes(0), notifier=monitor.notifier(pace_s=0.03))
    assert report.exit_code() == 1 and report.delivery_failures == 0
    names = sorted(SlackServer.notice(m)["check"] for m in slack.top_level())
    assert names == [f"check_{i:03d}" for i in range(100)]
    assert len(slack.calls_to("chat.postMessage")) == 100 + slack.state.rate_limited, "only a 429 is tried again"


def test_without_pacing_the_rate_limit_is_honoured_and_nothing_is_lost_or_doubled(
    monitor: Monitor, slack: SlackServer
) -> None:
    monitor.register(*({"name": f"check_{i:02d}", "sql": LATE_SQL} for i in range(20)))
    monitor.late_rows("order 1")
    slack.state.rate_interval_s = 0.05
    slack.state.rate_retry_after = 0.05
    report = monitor.run(minutes(0))
    assert report.exit_code() == 1
    assert slack.state.rate_limited > 0
    assert len(slack.calls_to("chat.postMessage")) == 20 + slack.state.rate_limited
    assert sorted(SlackServer.notice(m)["check"] for m in slack.top_level()) == [f"check_{i:02d}" for i in range(20)]


def test_channels_do_not_wait_on_each_other(monitor: Monitor, slack: SlackServer) -> None:
    slack.add_channel("payments", "C0PAYMENTS")
    monitor.register(
        {"name": "held", "sql": LATE_SQL, "channel": "#alerts"},
        *({"name": f"pay_{i}", "sql": LATE_SQL, "channel": "#payments"} for i in range(3)),
    )
    monitor.late_rows("order 1")
    slack.hold("chat.postMessage")
    run = threading.Thread(target=monitor.run, args=(minutes(0),))
    run.start()
    assert slack.held.wait(10)
    posted: list[str] = []
    for _ in range(200):  # the #payments posts go out while the #alerts one is held
        posted = [SlackServer.notice(m)["check"] for m in slack.top_level()]
        if len(posted) == 3 or (posted and "held" in posted):
            break
        threading.Event().wait(0.05)
    held_first = SlackServer.notice(slack.calls_to("chat.postMessage")[0].params)
    slack.release()
    run.join(30)
    if held_first.get("check") == "held":
        assert sorted(posted) == ["pay_0", "pay_1", "pay_2"]
    assert len(slack.top_level()) == 4
