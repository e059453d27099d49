"""The buttons, end to end: incidents posted by real runs to the local Slack server, clicks signed as Slack signs
them and sent to `slack_actions` in the real functions-framework server on a free port, then the next runs."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.deployment import LATE_SQL, Monitor
from tests.servers import free_port
from tests.slack_server import TOKEN, SlackServer, serving

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK = Path(sys.executable).with_name("functions-framework")
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documentation example signing secret
METRIC_SQL = "SELECT value FROM metric"
ANSWER_TIMES: dict[str, list[float]] = {}  # seconds per outcome, of every signed click here (reported at the end)


# ---------------------------------------------------------------- the deployment and the function


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackServer]:
    with serving() as server:
        yield server


@pytest.fixture(scope="module")
def monitor(tmp_path_factory, slack: SlackServer) -> Monitor:
    return Monitor(tmp_path_factory.mktemp("deployment"), slack)


@contextmanager
def serving_function(monitor: Monitor, slack: SlackServer, **env: str) -> Iterator[str]:
    """slack_actions served by functions-framework on a free port, on the deployment's state and the local Slack."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "K_SERVICE"))}
    environment |= {
        "PYTHONPATH": str(ROOT / "functions"),
        "STATE_URL": f"sqlite:///{monitor.state}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.base_url,
        "LOG_FORMAT": "json",
        **env,
    }
    port = free_port()
    log_path = monitor.root / f"function-{port}.log"
    with log_path.open("w") as log:
        command = [str(FRAMEWORK), "--target", "slack_actions", "--source", str(ROOT / "functions" / "main.py")]
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], env=environment, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while send(url, b"", {}, method="GET")[0] != 405:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"functions-framework did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        try:
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def function(monitor: Monitor, slack: SlackServer, measured: list[str]) -> Iterator[str]:
    # a registry and a warehouse that cannot be opened: a click never reads the one nor runs a check on the other
    nowhere = monitor.root / "nowhere"
    with serving_function(
        monitor,
        slack,
        SLACK_SIGNING_SECRET=SECRET,
        CHECKS_SOURCE=str(nowhere / "checks.csv"),
        WAREHOUSE_URL=f"sqlite:///{nowhere / 'warehouse.db'}",
    ) as url:
        yield url
    assert not nowhere.exists()
    for what, times in (
        ("recorded clicks (lookup, append, chat.update, thread reply)", ANSWER_TIMES.get("recorded", [])),
        ("signed requests of any outcome", [t for ts in ANSWER_TIMES.values() for t in ts]),
    ):
        if times:
            measured.append(
                f"slack_actions answer time, {len(times)} {what} through functions-framework: median "
                f"{statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms (Slack waits 3,000 ms)"
            )


def send(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


# ---------------------------------------------------------------- clicks, as Slack sends them


def payload(
    slack: SlackServer,
    message: dict[str, Any],
    action_id: str,
    *,
    choice: str | None = None,
    user: str = "U0ANA",
    name: str = "ana",
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A block_actions payload for a click on one of the message's elements, as Slack describes it."""
    block = next(b for b in message["blocks"] if b.get("type") == "actions")
    element = next(e for e in block["elements"] if e["action_id"] == action_id)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block["block_id"],
        "type": element["type"],
        "action_ts": action_ts or f"{time.time():.6f}",
    }
    if element["type"] == "button":
        action |= {"value": element["value"], "text": element["text"]}
    else:
        action["selected_option"] = next(o for o in element["options"] if o["value"].startswith(f"{choice}|"))
    channel, ts = message["channel"], message["ts"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": "T0TEAM", "domain": "example"},
        "channel": {"id": channel, "name": "alerts"},
        "message": {"type": "message", "ts": ts, "text": message["text"], "blocks": message["blocks"]},
        "response_url": slack.response_url(ts),
        "actions": [action],
    }


def form(body: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(body)}).encode()


def signed(body: bytes, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def click(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    status, answer = send(url, body, headers or signed(body))
    ANSWER_TIMES.setdefault(answer.get("outcome", str(status)), []).append(time.monotonic() - started)
    return status, answer


# ---------------------------------------------------------------- reading the outcome


def events(monitor: Monitor) -> list[dict[str, Any]]:
    with sqlite3.connect(monitor.state) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM incident_events ORDER BY rowid")]


def opened(slack: SlackServer, check: str) -> list[dict[str, Any]]:
    """The check's top-level messages, oldest first."""
    return [m for m in slack.top_level() if slack.notice(m).get("check") == check]


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m.get("blocks")) + m.get("text", "") for m in messages)


def saying(messages: list[dict[str, Any]], words: str) -> list[dict[str, Any]]:
    """The messages whose text or blocks say `words` (any case)."""
    return [m for m in messages if words.lower() in texts([m]).lower()]


def status_line(message: dict[str, Any]) -> str:
    [status] = [b for b in message["blocks"] if b.get("block_id") == "incident_status"]
    return status["elements"][0]["text"]


def buttons(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b.get("type") == "actions" for e in b["elements"]]


def wall(minutes: float) -> dt.datetime:
    """Run times around the wall clock: slack_actions checks a click against the history as of now."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)


# ---------------------------------------------------------------- each kind of click


def test_acknowledge_is_recorded_shown_and_stops_the_reminders(function, monitor, slack) -> None:
    monitor.register(
        {"name": "ack_late", "sql": LATE_SQL, "renotify_hours": "1"},
        {"name": "ack_control", "type": "threshold", "sql": METRIC_SQL, "max": "50", "renotify_hours": "1"},
    )
    monitor.late_rows("stuck")
    monitor.run(wall(-1))
    [message] = opened(slack, "ack_late")
    assert buttons(message) == ["acknowledge", "snooze", "mute"], "no Expected on a rows check"
    assert buttons(opened(slack, "ack_control")[0]) == ["acknowledge", "snooze", "mute", "expected"]

    status, answer = click(function, form(payload(slack, message, "acknowledge")))

    assert (status, answer["outcome"], answer["action"]) == (200, "recorded", "acknowledge")
    [event] = events(monitor)[-1:]
    assert (event["check_name"], event["action"], event["user_id"], event["user_name"]) == (
        "ack_late",
        "acknowledge",
        "U0ANA",
        "ana",
    )
    assert (event["slack_channel"], event["slack_ts"], event["until"]) == (message["channel"], message["ts"], None)
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Acknowledged by <@U0ANA>" in status_line(shown)
    assert buttons(shown) == ["acknowledge", "snooze", "mute"], "others can still snooze or mute"
    assert "<@U0ANA> acknowledged this incident" in texts(slack.replies(message["ts"]))

    report = monitor.run(wall(120))  # past renotify_hours for both
    assert not saying(slack.replies(message["ts"]), "still failing"), "no reminder once acknowledged"
    sheet = {r.name: r.incident for r in report.results}  # what the status worksheet shows
    assert sheet["ack_late"] is not None and sheet["ack_late"].acknowledged_by == "ana"
    assert sheet["ack_control"] is not None and sheet["ack_control"].acknowledged_by is None
    control = opened(slack, "ack_control")[0]
    assert saying(slack.replies(control["ts"]), "still failing"), "the other one is reminded"
    assert len(opened(slack, "ack_late")) == 1


def test_a_snooze_holds_reminders_and_new_incidents_until_its_time(function, monitor, slack) -> None:
    monitor.register({"name": "snoozy", "sql": LATE_SQL, "renotify_hours": "1"})
    monitor.late_rows("stuck")
    monitor.run(wall(-1))
    [message] = opened(slack, "snoozy")

    status, answer = click(function, form(payload(slack, message, "snooze", choice="4h")))

    assert (status, answer["outcome"]) == (200, "recorded")
    until = dt.datetime.fromisoformat(answer["until"])
    assert dt.timedelta(hours=3, minutes=59) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=4)
    [event] = events(monitor)[-1:]
    assert (event["action"], json.loads(event["detail"])) == ("snooze", {"choice": "4h", "timezone": "UTC"})
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert f"Snoozed until <!date^{int(until.timestamp())}^" in status_line(shown)
    assert "by <@U0ANA>" in status_line(shown)

    report = monitor.run(wall(120))  # reminder due, but snoozed
    assert not saying(slack.replies(message["ts"]), "still failing")
    [incident] = [r.incident for r in report.results]
    assert incident is not None and (incident.snoozed_by, incident.snoozed_until) == ("ana", until)
    monitor.late_rows()
    monitor.run(wall(150))  # it resolves: that is still said
    assert saying(slack.replies(message["ts"]), "resolved after")
    monitor.late_rows("stuck again")
    monitor.run(wall(180))  # a new failure within the snooze: no new incident
    monitor.late_rows()
    monitor.run(wall(190))  # ... and its end is not announced as a missed incident either
    monitor.late_rows("and again")
    monitor.run(wall(200))
    assert len(opened(slack, "snoozy")) == 1, "nothing new while snoozed"
    monitor.run(wall(4 * 60 + 10))  # the snooze is over and it still fails
    assert len(opened(slack, "snoozy")) == 2
    assert "failing since" in texts(opened(slack, "snoozy")[1:])


def test_mute_silences_the_incident_until_it_resolves(function, monitor, slack) -> None:
    monitor.register({"name": "muted", "type": "threshold", "sql": METRIC_SQL, "max": "50", "renotify_hours": "1"})
    monitor.sql("UPDATE metric SET value = 100")
    monitor.run(wall(-1))
    [message] = opened(slack, "muted")

    status, answer = click(function, form(payload(slack, message, "mute", user="U0BOB", name="bob")))

    assert (status, answer["outcome"]) == (200, "recorded")
    assert "Muted until resolved by <@U0BOB>" in status_line(slack.state.messages[(message["channel"], message["ts"])])
    replies = len(slack.replies(message["ts"]))
    monitor.run(wall(120))
    report = monitor.run(wall(240))
    assert len(slack.replies(message["ts"])) == replies, "no reminder, nothing at all while muted"
    [incident] = [r.incident for r in report.results]
    assert incident is not None and incident.muted_by == "bob"
    monitor.sql("UPDATE metric SET value = 10")
    monitor.run(wall(250))
    assert saying(slack.replies(message["ts"])[-1:], "resolved after")
    assert "Resolved · muted" in texts([slack.state.messages[(message["channel"], message["ts"])]])
    monitor.sql("UPDATE metric SET value = 100")
    monitor.run(wall(260))
    assert len(opened(slack, "muted")) == 2, "a later incident is not muted"


def test_expected_resolves_the_incident_and_its_failing_streak_stays_quiet(function, monitor, slack) -> None:
    monitor.register({"name": "normal_now", "type": "threshold", "sql": METRIC_SQL, "max": "50"})
    monitor.sql("UPDATE metric SET value = 100")
    monitor.run(wall(-1))
    [message] = opened(slack, "normal_now")

    status, answer = click(function, form(payload(slack, message, "expected", user="U0CY", name="cy")))

    assert (status, answer["outcome"]) == (200, "recorded")
    [event] = events(monitor)[-1:]
    assert event["action"] == "expected"
    assert json.loads(event["detail"])["value"] == 100, "the judged value marked expected is kept"
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Marked expected by <@U0CY>: resolves on the next run" in status_line(shown)
    assert buttons(shown) == [], "nothing more to click"

    monitor.run(wall(10))  # still above max: resolved as expected, not re-alerted
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Resolved · normal_now" in texts([shown]) and "Marked expected" in texts([shown])
    assert saying(slack.replies(message["ts"])[-1:], "*Marked expected* by <@U0CY>: resolved after 2 runs")
    replies = len(slack.replies(message["ts"]))
    report = monitor.run(wall(20))
    assert [r.incident for r in report.results] == [None], "the sheet shows no open incident once it is expected"
    monitor.sql("UPDATE metric SET value = 10")
    monitor.run(wall(30))  # ok again: the incident ends without another word
    assert len(slack.replies(message["ts"])) == replies
    assert len(opened(slack, "normal_now")) == 1
    monitor.sql("UPDATE metric SET value = 100")
    monitor.run(wall(40))
    assert len(opened(slack, "normal_now")) == 2, "a new failure after ok is a new incident"


# ---------------------------------------------------------------- the same click twice


def test_a_click_delivered_twice_is_recorded_once(function, monitor, slack) -> None:
    monitor.register({"name": "twice", "sql": LATE_SQL})
    monitor.late_rows("stuck")
    monitor.run(wall(-1))
    [message] = opened(slack, "twice")
    body = form(payload(slack, message, "acknowledge"))
    headers = signed(body)
    before = len(events(monitor))

    first = click(function, body, headers)
    again = click(function, body, headers)  # Slack's second delivery: the same body, timestamp and signature
    later = click(function, body)  # or the same click signed again a little later

    assert [a[1]["outcome"] for a in (first, again, later)] == ["recorded", "duplicate", "duplicate"]
    assert first[1]["event_id"] and all(a[0] == 200 for a in (first, again, later))
    assert len(events(monitor)) == before + 1
    assert len(saying(slack.replies(message["ts"]), "acknowledged this incident")) == 1
    assert slack.state.messages[(message["channel"], message["ts"])]["updates"] == 1

    shown = slack.state.messages[(message["channel"], message["ts"])]
    status, answer = click(function, form(payload(slack, shown, "acknowledge")))  # she clicks it again, later
    assert (status, answer["outcome"]) == (200, "recorded")
    assert len(events(monitor)) == before + 2, "another click is another row"
    assert len(saying(slack.replies(message["ts"]), "acknowledged this incident")) == 1, "but nothing new to say"
    assert slack.state.messages[(message["channel"], message["ts"])]["updates"] == 1


def test_two_people_acknowledging_are_both_shown(function, monitor, slack) -> None:
    monitor.register({"name": "both", "sql": LATE_SQL})
    monitor.late_rows("stuck")
    monitor.run(wall(-1))
    [message] = opened(slack, "both")
    click(function, form(payload(slack, message, "acknowledge")))
    shown = slack.state.messages[(message["channel"], message["ts"])]
    click(function, form(payload(slack, shown, "acknowledge", user="U0BOB", name="bob")))
    now_shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Acknowledged by <@U0ANA>, <@U0BOB>" in status_line(now_shown)


# ---------------------------------------------------------------- what changes nothing


@pytest.fixture
def incident(function, monitor, slack) -> dict[str, Any]:
    """An open incident, and a snapshot to compare with: its clicks, Slack's messages and calls."""
    monitor.register({"name": "guarded", "type": "threshold", "sql": METRIC_SQL, "max": "50"})
    monitor.sql("UPDATE metric SET value = 100")
    monitor.run(wall(-1))
    return copy.deepcopy(opened(slack, "guarded")[-1])  # as it was when clicked


def unchanged(monitor: Monitor, slack: SlackServer):
    """A check that nothing was recorded and nothing was asked of Slack since it was made (but what is allowed)."""
    rows, calls = len(events(monitor)), len(slack.state.calls)
    messages = json.dumps(list(slack.state.messages.items()), sort_keys=True)

    def check(allowed: tuple[str, ...] = ()) -> None:
        assert len(events(monitor)) == rows, "nothing recorded"
        assert [c.method for c in slack.state.calls[calls:] if c.method not in allowed] == [], "nothing sent"
        assert json.dumps(list(slack.state.messages.items()), sort_keys=True) == messages, "no message changed"

    return check


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: {}, id="no signature at all"),
        pytest.param(lambda body: {k: v for k, v in signed(body).items() if k != "X-Slack-Signature"}, id="no sig"),
        pytest.param(lambda body: signed(body, secret="not-the-apps-secret"), id="signed with another secret"),
        pytest.param(lambda body: signed(body, at=time.time() - 6 * 60), id="stale timestamp"),
        pytest.param(lambda body: signed(body, at=time.time() + 6 * 60), id="timestamp from the future"),
        pytest.param(
            lambda body: signed(body, at=time.time() - 6 * 60) | {"X-Slack-Request-Timestamp": str(int(time.time()))},
            id="replayed with another timestamp",
        ),
        pytest.param(lambda body: signed(body + b"&x=1"), id="signature of another body"),
        pytest.param(lambda body: signed(body) | {"X-Slack-Request-Timestamp": "soon"}, id="timestamp not a number"),
        pytest.param(lambda body: signed(body) | {"X-Slack-Signature": "v1=abc"}, id="another signature version"),
    ],
)
def test_an_unsigned_or_replayed_request_is_401_and_changes_nothing(forge, function, monitor, slack, incident) -> None:
    body = form(payload(slack, incident, "expected"))
    check = unchanged(monitor, slack)
    status, answer = send(function, body, {"Content-Type": "application/x-www-form-urlencoded", **forge(body)})
    assert status == 401
    assert answer["error"]
    check()
    assert opened(slack, "guarded")[-1]["blocks"] == incident["blocks"]


def test_a_click_on_a_message_that_is_not_an_open_incident_changes_nothing_and_says_so(
    function, monitor, slack, incident
) -> None:
    elsewhere = dict(incident, ts="1600000000.000001")  # a message the monitor never posted for an incident
    check = unchanged(monitor, slack)
    status, answer = click(function, form(payload(slack, elsewhere, "acknowledge")))
    assert (status, answer["outcome"]) == (200, "not_open")
    check(allowed=("response_url",))
    [told] = slack.responses()[-1:]
    assert (told["response_type"], told["replace_original"]) == ("ephemeral", False)
    assert told["text"].startswith("Nothing was recorded: this message is not the open incident of check guarded")

    monitor.sql("UPDATE metric SET value = 10")
    monitor.run(wall(-0.1))  # resolved (before now: the click is checked against the history as of now), so an
    # old click on it, from before its buttons went, changes nothing
    check = unchanged(monitor, slack)
    status, answer = click(function, form(payload(slack, incident, "acknowledge")))
    assert (status, answer["outcome"]) == (200, "not_open")
    check(allowed=("response_url",))
    assert "check guarded has no open incident" in slack.responses()[-1]["text"]


def test_a_click_for_a_check_the_history_does_not_know_changes_nothing(function, monitor, slack, incident) -> None:
    stranger = payload(slack, incident, "acknowledge")
    stranger["actions"][0]["block_id"] = "incident:no_such_check"
    check = unchanged(monitor, slack)
    status, answer = click(function, form(stranger))
    assert (status, answer["outcome"]) == (200, "not_open")
    check(allowed=("response_url",))


def broken(change) -> Any:
    def make(slack: SlackServer, message: dict[str, Any]) -> bytes:
        body = payload(slack, message, "snooze", choice="1h")
        return change(body)

    return make


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda slack, m: b"not a form", "one `payload` field", id="not a form"),
        pytest.param(lambda slack, m: b"payload=%7Bnot+json", "one `payload` field", id="payload not JSON"),
        pytest.param(lambda slack, m: b"payload=1&payload=2", "one `payload` field", id="two payloads"),
        pytest.param(lambda slack, m: form([1, 2]), "no top-level object", id="payload a list"),  # type: ignore[arg-type]
        pytest.param(broken(lambda b: form(b | {"type": "view_submission"})), "only button clicks", id="a view"),
        pytest.param(broken(lambda b: form(b | {"actions": []})), "exactly one action", id="no action"),
        pytest.param(
            broken(lambda b: form(b | {"actions": [b["actions"][0] | {"action_id": "delete_everything"}]})),
            "unknown action_id",
            id="unknown action",
        ),
        pytest.param(
            broken(lambda b: form(b | {"actions": [b["actions"][0] | {"selected_option": {"value": "99y|UTC"}}]})),
            "not one of the menu's",
            id="snooze for 99 years",
        ),
        pytest.param(
            broken(lambda b: form(b | {"actions": [b["actions"][0] | {"selected_option": {"value": "1h|Mars/Base"}}]})),
            "not one of the menu's",
            id="unknown time zone",
        ),
        pytest.param(
            broken(lambda b: form(b | {"actions": [b["actions"][0] | {"block_id": "someone_elses_block"}]})),
            "not on the monitor's incident buttons",
            id="another app's block",
        ),
        pytest.param(broken(lambda b: form(b | {"container": {"type": "view"}})), "only clicks on messages", id="view"),
        pytest.param(
            broken(lambda b: form(b | {"container": b["container"] | {"message_ts": "yesterday"}})),
            "container.message_ts",
            id="bad ts",
        ),
        pytest.param(broken(lambda b: form(b | {"user": {"id": "<!channel>"}})), "user.id", id="bad user"),
    ],
)
def test_a_signed_body_that_is_not_our_click_is_400_and_changes_nothing(
    make, error, function, monitor, slack, incident
) -> None:
    check = unchanged(monitor, slack)
    status, answer = click(function, make(slack, incident))
    assert status == 400
    assert error in answer["error"]
    check()


def test_other_methods_are_405_and_a_huge_body_is_413(function, monitor, slack) -> None:
    check = unchanged(monitor, slack)
    status, answer = send(function, b"", {}, method="GET")
    assert status == 405 and "POST" in answer["error"]
    status, answer = send(function, b"x" * 1_000_001, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413
    check()


def test_without_its_signing_secret_the_function_refuses_every_click_with_500(monitor, slack, incident) -> None:
    check = unchanged(monitor, slack)
    with serving_function(monitor, slack) as url:
        body = form(payload(slack, incident, "acknowledge"))
        status, answer = send(url, body, signed(body))
    assert status == 500
    assert "set SLACK_SIGNING_SECRET or SLACK_SIGNING_SECRET_SECRET" in answer["error"]
    check()


# ---------------------------------------------------------------- Expected on anomaly checks, then the next runs


def judged(report) -> tuple[str, str]:
    [result] = report.results
    return str(result.status), result.message


def level_incident(monitor: Monitor, slack: SlackServer, name: str) -> dict[str, Any]:
    """A single-value anomaly check with a hard maximum of 200 (so that few points suffice to alert): three runs
    at 100, then one at 300 that opens its incident; the incident's message. The number of comparable points
    each later run names shows exactly which earlier values its baseline holds."""
    monitor.sql(f"CREATE TABLE {name} (value REAL)")
    monitor.sql(f"INSERT INTO {name} VALUES (100)")
    monitor.register({"name": name, "type": "anomaly", "sql": f"SELECT value FROM {name}", "max": "200"})
    for minute in (-60, -50, -40):
        monitor.run(wall(minute))
    monitor.sql(f"UPDATE {name} SET value = 300")
    assert judged(monitor.run(wall(-30)))[0] == "alert"
    [message] = opened(slack, name)
    return message


def test_expected_on_an_anomaly_resolves_it_by_name_and_its_value_leaves_the_baseline_for_good(
    function, monitor, slack
) -> None:
    message = level_incident(monitor, slack, "gauge_level")
    status, message_text = judged(monitor.run(wall(-20)))  # the same level: the pre-incident baseline
    assert status == "alert" and "only 3 comparable points" in message_text

    status, answer = click(function, form(payload(slack, message, "expected", user="U0DEE", name="dee")))
    assert (status, answer["outcome"]) == (200, "recorded")
    assert json.loads(events(monitor)[-1]["detail"])["value"] == 300

    # (a) the next run resolves it by name, although the value still breaches the hard maximum
    status, message_text = judged(monitor.run(wall(1)))
    assert status == "alert"
    assert "only 4 comparable points" in message_text, "the incident's first value is back, the marked one is not"
    assert saying(slack.replies(message["ts"])[-1:], "*Marked expected* by <@U0DEE>")
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Resolved · gauge_level" in texts([shown])

    # (b) from then on, the value marked expected is in no baseline: 100 ok, judged against the others
    monitor.sql("UPDATE gauge_level SET value = 100")
    status, message_text = judged(monitor.run(wall(2)))  # ok again: the incident ends without another word
    assert status == "ok" and "only 5 comparable points" in message_text
    status, message_text = judged(monitor.run(wall(3)))
    assert status == "ok" and "only 6 comparable points" in message_text, "7 would hold the value marked expected"
    assert len(opened(slack, "gauge_level")) == 1


def test_expected_then_back_in_range_still_resolves_by_name(function, monitor, slack) -> None:
    message = level_incident(monitor, slack, "dial_level")

    status, answer = click(function, form(payload(slack, message, "expected", user="U0EVE", name="eve")))
    assert (status, answer["outcome"]) == (200, "recorded")
    monitor.sql("UPDATE dial_level SET value = 100")
    status, message_text = judged(monitor.run(wall(1)))

    assert status == "ok" and "only 3 comparable points" in message_text, "the value marked expected is left out"
    [note] = slack.replies(message["ts"])[-1:]
    assert saying([note], "*Marked expected* by <@U0EVE>"), "resolved as marked, not as if nobody had said a word"
    shown = slack.state.messages[(message["channel"], message["ts"])]
    assert "Resolved · dial_level" in texts([shown]) and "Marked expected" in texts([shown])
    monitor.run(wall(2))
    assert [m for m in slack.replies(message["ts"]) if "resolved" in texts([m]).lower()] == [note], "said once"


def test_expected_leaves_out_the_period_the_alert_judged_not_the_newest_one_at_the_click(monitor, slack) -> None:
    """A series check judges the newest complete period as of its run; a click an hour later, when another period
    has completed that no run has judged yet, still marks the one the alert showed (the click is appended as
    slack_actions appends it, at a time of the test's choosing)."""
    from anomaly_monitor import actions
    from anomaly_monitor.models import Action
    from anomaly_monitor.state.sqlite import SqliteStateStore

    hour = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
    monitor.sql("CREATE TABLE hourly (ts TEXT, value REAL)")
    values = {-6: 100, -5: 101, -4: 99, -3: 100, -2: 300, -1: 100}  # hours before `hour`: a spike at 10:00
    for offset, value in values.items():
        at = hour + dt.timedelta(hours=offset)
        monitor.sql("INSERT INTO hourly VALUES (?, ?)", (at.strftime("%Y-%m-%d %H:%M:%S"), value))
    sql = "SELECT ts, value FROM hourly WHERE ts <= CURRENT_TIMESTAMP()"
    monitor.register({"name": "hourly_spike", "type": "anomaly", "sql": sql, "max": "200"})
    status, message_text = judged(monitor.run(hour - dt.timedelta(minutes=59)))  # 11:01 judges 10:00
    assert status == "alert" and "only 4 comparable points" in message_text
    [message] = opened(slack, "hourly_spike")

    store = SqliteStateStore(monitor.state)
    clicked = hour + dt.timedelta(minutes=5)  # 12:05: the 11:00 period is complete too, and was never judged
    click_ = actions.Click("hourly_spike", message["channel"], message["ts"], Action.EXPECTED, "U0FAY", "1.0", "fay")
    assert actions.take(click_, store, clicked).outcome is actions.Outcome.RECORDED

    status, message_text = judged(monitor.run(hour + dt.timedelta(minutes=10)))  # judges 11:00
    assert status == "ok" and "only 4 comparable points" in message_text, "the 10:00 spike is left out"
    assert saying(slack.replies(message["ts"])[-1:], "*Marked expected* by <@U0FAY>")
    status, message_text = judged(monitor.run(hour + dt.timedelta(minutes=20)))  # 11:00 again, nothing open
    assert status == "ok" and "only 4 comparable points" in message_text, "5 would hold the spike marked expected"
