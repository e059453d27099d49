"""Slack's interactivity contract, piece by piece: the signature, the payload, the message after a click, and the
endpoint in-process on a real SQLite state and the local Slack server, fed whatever a stranger or Slack may send."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomaly_monitor.incidents import marks
from anomaly_monitor.models import Action, Check, CheckType, HistoryRecord, IncidentEvent, Status
from anomaly_monitor.notices import MessageRef
from anomaly_monitor.notifiers.blocks import STATUS_BLOCK_ID, actions_block, clicked_message
from anomaly_monitor.notifiers.interactivity import BadClick, Endpoint, Responder, Unauthorized, parse, verify
from anomaly_monitor.state.sqlite import SqliteStateStore
from tests.slack_server import TOKEN, SlackServer, serving

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000.0
TS = "1799999000.000100"


def sign(body: bytes, at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def click_payload(action_id: str = "acknowledge", check: str = "late", **changes: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"action_id": action_id, "block_id": f"incident:{check}", "action_ts": "1799999999.1"}
    if action_id == "snooze":
        action |= {"type": "static_select", "selected_option": {"value": "tomorrow|Europe/Berlin"}}
    else:
        action |= {"type": "button", "value": action_id}
    body = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana"},
        "team": {"id": "T0TEAM"},
        "container": {"type": "message", "channel_id": "C0ALERTS", "message_ts": TS},
        "message": {"ts": TS, "text": "late", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [action],
    }
    return body | changes


def form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


# ---------------------------------------------------------------- the signature


def test_slacks_documented_example_verifies() -> None:
    # https://api.slack.com/authentication/verifying-requests-from-slack: the example request and its signature
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    verify(SECRET, body, headers, 1531420618 + 60)
    with pytest.raises(Unauthorized, match="more than 5 minutes off"):
        verify(SECRET, body, headers, 1531420618 + 301)
    with pytest.raises(Unauthorized, match="does not match"):
        verify(SECRET, body + b"&x=1", headers, 1531420618)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400),
    st.dictionaries(
        st.sampled_from(["X-Slack-Request-Timestamp", "X-Slack-Signature", "x-slack-signature", "Content-Type"]),
        st.text(max_size=80),
    ),
    st.floats(min_value=0, max_value=4e9),
)
def test_nothing_but_slacks_signature_passes(body: bytes, headers: dict[str, str], now: float) -> None:
    with pytest.raises(Unauthorized):
        verify(SECRET, body, headers, now)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400).map(str.encode), st.floats(min_value=-300, max_value=300))
def test_any_body_signed_within_five_minutes_passes_and_a_changed_one_does_not(body: bytes, skew: float) -> None:
    """Any UTF-8 body (Slack sends URL-encoded ASCII; slack_sdk's verifier reads the body as UTF-8)."""
    headers = sign(body)
    verify(SECRET, body, headers, NOW + skew)
    with pytest.raises(Unauthorized):
        verify(SECRET, body + b"!", headers, NOW)
    with pytest.raises(Unauthorized):
        verify(SECRET, body, sign(body, secret=SECRET + "x"), NOW)


# ---------------------------------------------------------------- the payload


def test_a_click_is_read_from_its_payload() -> None:
    interaction = parse(form(click_payload("snooze", check="_cause:permission:p.sales")))
    click = interaction.click
    assert (click.check_name, click.channel, click.message_ts, click.action) == (
        "_cause:permission:p.sales",
        "C0ALERTS",
        TS,
        Action.SNOOZE,
    )
    assert (click.choice, click.timezone, click.user_id, click.user_name) == (
        "tomorrow",
        "Europe/Berlin",
        "U0ANA",
        "ana",
    )
    assert interaction.response_url == "https://hooks.slack.com/actions/T0TEAM/1/abc"
    assert interaction.blocks and interaction.text == "late"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        JSON,
        st.builds(
            lambda extra: click_payload() | extra,
            st.dictionaries(
                st.sampled_from(["type", "user", "container", "actions", "message", "team", "response_url"]),
                JSON,
                max_size=3,
            ),
        ),
    )
)
def test_no_payload_crashes_the_reading(payload: object) -> None:
    try:
        parse(form(payload))
    except BadClick as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_no_body_crashes_the_reading(body: bytes) -> None:
    with contextlib.suppress(BadClick):
        parse(body)


# ---------------------------------------------------------------- the message after a click


def ev(action: Action, user: str, **extra: Any) -> IncidentEvent:
    values = dict(until=None, user_name=None, detail=None) | extra
    return IncidentEvent(
        f"{action}{user}", "late", "C0ALERTS", TS, action, user_id=user, at=dt.datetime.now(dt.UTC), **values
    )


def test_the_message_shows_who_did_what_before_the_buttons_and_loses_them_once_expected() -> None:
    check = Check(name="late", sql="SELECT 1", type=CheckType.THRESHOLD, timezone="Europe/Berlin")
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "late"}}, *actions_block(check)]
    ref = MessageRef("C0ALERTS", TS)
    acked = clicked_message(blocks, marks([ev(Action.ACKNOWLEDGE, "U0ANA")], ref))
    assert [b.get("block_id") for b in acked] == [None, STATUS_BLOCK_ID, "incident:late"]
    again = clicked_message(acked, marks([ev(Action.ACKNOWLEDGE, "U0ANA"), ev(Action.MUTE, "U0BOB")], ref))
    assert [b.get("block_id") for b in again] == [None, STATUS_BLOCK_ID, "incident:late"], "one status line"
    assert again[1]["elements"][0]["text"] == "👀 Acknowledged by <@U0ANA> · 🔕 Muted until resolved by <@U0BOB>"
    done = clicked_message(again, marks([ev(Action.EXPECTED, "U0CY")], ref))
    assert [b.get("block_id") for b in done] == [None, STATUS_BLOCK_ID]


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-:.", min_size=1, max_size=300),
    st.sampled_from(sorted(CheckType)),
    st.sampled_from(["UTC", "America/Argentina/ComodRivadavia", "Europe/Berlin"]),
)
def test_the_buttons_stay_within_slacks_limits(name: str, kind: CheckType, zone: str) -> None:
    blocks = actions_block(Check(name=name, sql="SELECT 1", type=kind, timezone=zone))
    if len("incident:" + name) > 255:
        assert blocks == [], "no block_id can carry it: no buttons rather than a message Slack refuses"
        return
    [block] = blocks
    assert block["block_id"] == "incident:" + name and len(block["elements"]) <= 25
    for element in block["elements"]:
        assert len(element["action_id"]) <= 255
        assert len(element.get("value", "")) <= 2000
        for option in element.get("options", []):
            assert len(option["value"]) <= 150 and len(option["text"]["text"]) <= 75
    assert ("expected" in [e["action_id"] for e in block["elements"]]) == (kind is not CheckType.ROWS)


# ---------------------------------------------------------------- the endpoint, in-process


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackServer]:
    with serving() as server:
        yield server


def endpoint(path: Path, slack: SlackServer) -> Endpoint:
    responder = Responder(TOKEN, slack.base_url)
    return Endpoint(SECRET, SqliteStateStore(path), lambda: responder, clock=lambda: NOW)


def open_incident(path: Path) -> None:
    at = dt.datetime.fromtimestamp(NOW - 600, dt.UTC)
    SqliteStateStore(path).append(
        [
            HistoryRecord(
                "r1",
                "late",
                at,
                Status.ALERT,
                100.0,
                None,
                "too high",
                5,
                None,
                True,
                "C0ALERTS",
                TS,
                incident_id="r1",
                incident_start=at,
                failing_runs=1,
                announced="alert",
                last_notice_at=at,
            )
        ]
    )


def clicks_recorded(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return conn.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0] if "incident_events" in tables else 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["X-Slack-Request-Timestamp", "X-Slack-Signature"]), st.text(max_size=70)),
)
def test_without_the_secret_the_endpoint_does_nothing_but_401(tmp_path: Path, slack, body, headers) -> None:
    path = tmp_path / "state.db"
    calls = len(slack.state.calls)
    answer = endpoint(path, slack).handle(body, headers)
    assert answer.status == 401 and answer.body["error"]
    assert not path.exists(), "the state store is not even opened"
    assert len(slack.state.calls) == calls, "Slack is not called"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        JSON,
        st.builds(
            lambda extra: click_payload() | extra,
            st.dictionaries(
                st.sampled_from(["type", "user", "container", "actions", "team", "response_url"]), JSON, max_size=2
            ),
        ),
    )
)
def test_a_signed_payload_is_200_or_400_and_only_a_click_on_the_open_incident_is_recorded(
    tmp_path_factory, slack, payload: object
) -> None:
    path = tmp_path_factory.mktemp("state") / "state.db"
    open_incident(path)
    body = form(payload)
    answer = endpoint(path, slack).handle(body, sign(body))
    assert answer.status in (200, 400)
    recorded = answer.status == 200 and answer.body["outcome"] == "recorded"
    assert clicks_recorded(path) == (1 if recorded else 0)


# ---------------------------------------------------------------- the SQLite store's clicks


def test_sqlite_keeps_each_click_once_reads_them_as_of_a_time_and_read_only_creates_nothing(tmp_path: Path) -> None:
    from anomaly_monitor.errors import StateError

    path = tmp_path / "state.db"
    assert SqliteStateStore(path, read_only=True).incident_events(["late"], dt.datetime.now(dt.UTC)) == []
    assert not path.exists()
    store = SqliteStateStore(path)
    open_incident(path)
    first, second = ev(Action.ACKNOWLEDGE, "U0ANA"), ev(Action.MUTE, "U0BOB")
    store.append_events([first, first])
    store.append_events([first, second])  # the first again, delivered a second time
    later = second.at + dt.timedelta(seconds=1)
    assert store.incident_events(["late", "other"], later) == [first, second]
    assert store.incident_events(["late"], first.at - dt.timedelta(seconds=1)) == [], "as of the run's time"
    at = dt.datetime.fromtimestamp(NOW, dt.UTC)  # after the incident's row and the clicks
    row, events = store.clicked_incident("late", "C0ALERTS", TS, at)
    assert row is not None and row.slack_ts == TS and events == [first, second]
    assert store.clicked_incident("late", "C0OTHER", TS, at) == (row, [])
    reader = SqliteStateStore(path, read_only=True)
    assert reader.incident_events(["late"], later) == [first, second]
    with pytest.raises(StateError, match="read-only"):
        reader.append_events([ev(Action.SNOOZE, "U0CY")])
