"""A run killed at any point loses nothing and duplicates nothing; eight invocations at once post once.

Real processes: the CLI is started as a subprocess and killed with SIGKILL (what a function time-out or an
out-of-memory kill does) while the local Slack server holds its request, or while the state file is locked;
the functions-framework server answers real HTTP requests. The product has no test hooks: the faults are
the server's and the operating system's.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deployment import LATE_SQL, ROOT, Monitor, minutes
from tests.slack_server import SlackServer

pytestmark = pytest.mark.slow
SLOW_SQL = (
    "WITH RECURSIVE n AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM n WHERE x < 300000000) SELECT COUNT(*) FROM n"
)


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackServer) -> Monitor:
    m = Monitor(tmp_path, slack)
    m.register({"name": "late_settle", "sql": LATE_SQL, "severity": "critical"})
    m.late_rows("order 1")
    return m


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, json.loads(out) if out.strip() else {}, err


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def openings(slack: SlackServer) -> list[dict[str, Any]]:
    return [m for m in slack.top_level() if SlackServer.notice(m).get("kind") == "opened"]


def test_killed_while_its_query_runs_the_next_run_does_it_all_once(monitor: Monitor, slack: SlackServer) -> None:
    monitor.register({"name": "late_settle", "sql": LATE_SQL}, {"name": "slow", "sql": SLOW_SQL})
    process = monitor.cli(minutes(0), QUERY_TIMEOUT_S="600")
    wait_for(lambda: monitor.state.exists())  # it read the state and is running its queries
    time.sleep(0.5)
    kill(process)
    assert slack.top_level() == [] and monitor.history() == []
    monitor.register({"name": "late_settle", "sql": LATE_SQL})
    code, doc, _ = finish(monitor.cli(minutes(10)))
    assert code == 1 and doc["checks"][0]["notified"] is True
    assert len(openings(slack)) == 1


@pytest.mark.parametrize("slack_acts", [True, False], ids=["slack-acted", "slack-never-got-it"])
def test_killed_between_post_and_record_the_alert_is_posted_once(
    monitor: Monitor, slack: SlackServer, slack_acts: bool
) -> None:
    slack.hold("chat.postMessage")
    process = monitor.cli(minutes(0))
    assert slack.held.wait(60), "the run never posted"
    kill(process)
    slack.release(act=slack_acts)
    wait_for(lambda: len(slack.calls_to("chat.postMessage")) == 1)
    assert [n["event"] for n in monitor.notices()] == ["attempt"], "the intent was written before the post"
    assert monitor.history() == []

    code, doc, err = finish(monitor.cli(minutes(10)))
    assert code == 1, err
    assert doc["checks"][0]["notified"] is (not slack_acts), "found in Slack: this run had nothing to send"
    assert len(openings(slack)) == 1
    assert len(slack.calls_to("chat.postMessage")) == (1 if slack_acts else 2)
    finish(monitor.cli(minutes(20)))
    assert len(slack.state.messages) == 1
    last = monitor.history()[-1]
    # the killed run's decision is not lost either: its incident, begun at its time, goes on
    assert (last["announced"], last["failing_runs"], last["incident_start"]) == (
        "alert",
        3,
        "2024-05-01 09:00:00.000000",
    )


@pytest.mark.parametrize("slack_acts", [True, False], ids=["slack-acted", "slack-never-got-it"])
def test_killed_between_update_and_reply_the_resolution_is_told_once(
    monitor: Monitor, slack: SlackServer, slack_acts: bool
) -> None:
    monitor.run(minutes(0))
    [opened] = slack.top_level()
    monitor.late_rows()
    slack.hold("chat.postMessage")  # the reply, after chat.update went through
    process = monitor.cli(minutes(10))
    assert slack.held.wait(60)
    assert len(slack.calls_to("chat.update")) == 1
    kill(process)
    slack.release(act=slack_acts)
    code, _, err = finish(monitor.cli(minutes(20)))
    assert code == 0, err
    finish(monitor.cli(minutes(30)))
    assert [SlackServer.notice(m)["kind"] for m in slack.replies(opened["ts"])] == ["resolved"]
    assert slack.state.messages[(opened["channel"], opened["ts"])]["blocks"][0]["text"]["text"].startswith("✅")
    monitor.late_rows("order 7")
    finish(monitor.cli(minutes(40)))
    assert len(openings(slack)) == 2, "the next failure is a new incident"


def test_killed_while_recording_the_next_run_adopts_what_was_posted(monitor: Monitor, slack: SlackServer) -> None:
    slack.hold("chat.postMessage")
    process = monitor.cli(minutes(0))
    assert slack.held.wait(60)
    blocker = sqlite3.connect(monitor.state, timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")  # the run cannot write its outcome nor its results
    slack.release(act=True)
    wait_for(lambda: len(slack.top_level()) == 1)
    time.sleep(0.3)  # it has the answer and waits for the state file
    kill(process)
    blocker.rollback()
    blocker.close()
    code, _, err = finish(monitor.cli(minutes(10)))
    assert code == 1, err
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert [n["event"] for n in monitor.notices()] == ["attempt", "delivered"]


# ---------------------------------------------------------------- eight at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return answer.status


def test_eight_concurrent_invocations_post_once(monitor: Monitor, slack: SlackServer, tmp_path: Path) -> None:
    monitor.register(*({"name": f"late_{i}", "sql": LATE_SQL} for i in range(3)))
    slack.state.delay_s = 0.3  # widen the race window: every invocation is past its queries while one posts
    port = free_port()
    framework = Path(sys.executable).with_name("functions-framework")
    source = str(ROOT / "functions" / "main.py")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(framework), "--target", "run_checks", "--source", source, "--host", "127.0.0.1", "--port", str(port)],
        env=monitor.env(),
        stdout=log,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _answers(url), timeout=60)
        clis = [monitor.cli(None) for _ in range(4)]  # the real clock, like the HTTP invocations beside them
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(post(url, {"force": True}))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        codes = [finish(p, timeout=180)[0] for p in clis]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert statuses == [200] * 4 and codes == [1] * 4
    assert sorted(SlackServer.notice(m)["check"] for m in slack.top_level()) == ["late_0", "late_1", "late_2"]
    assert len(slack.calls_to("chat.postMessage")) == 3


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # a 405 to GET: it is up
    except OSError:
        return False
    return True
