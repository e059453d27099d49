"""Slack's interactivity contract for the incident buttons: verify the request, read the click, answer in Slack.

Slack POSTs each click to the `slack_actions` Request URL as a form field `payload` holding JSON, signed with the
app's signing secret (v0: HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`). Nothing is read or written
before the signature and the timestamp (at most 5 minutes off) check out, so without the secret the public URL can
be made to do nothing but answer 401. A verified click is checked against the history and recorded
(`actions.take`); then the incident's message is rewritten to show who did what (chat.update, idempotent) and
the click is told in its thread, or the person who clicked is told why nothing changed (an ephemeral message
through the click's `response_url`). Slack waits 3 seconds for the answer: every call here has a short timeout,
and a message that cannot be updated never undoes a recorded click.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from anomaly_monitor import actions, redact
from anomaly_monitor.actions import Click, Outcome, Taken
from anomaly_monitor.errors import ConfigError, MonitorError
from anomaly_monitor.incidents import marks
from anomaly_monitor.models import Action
from anomaly_monitor.notices import MessageRef
from anomaly_monitor.notifiers.blocks import (
    ACTIONS_BLOCK_PREFIX,
    BLOCK_ID_CHARS,
    click_reply,
    clicked_message,
    status_line,
)
from anomaly_monitor.settings import Settings
from anomaly_monitor.state import StateStore, open_state

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # a click with the biggest message Slack allows is far smaller
TOLERANCE_S = 5 * 60  # Slack's rule: a request whose timestamp is further off is a replay
SLACK_TIMEOUT_S = 2  # per call: Slack waits 3 seconds for the whole answer
HOOKS = ("https", "hooks.slack.com")  # where Slack's response_url points
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,40}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")
SLACK_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Unauthorized(MonitorError):
    """Not a request from Slack (401): no signature, a wrong one, or a timestamp too far off."""


class BadClick(MonitorError):
    """A signed request that is not a click on one of the monitor's buttons (400)."""


def verify(secret: str, body: bytes, headers: Mapping[str, str], now: float) -> None:
    """Slack's v0 signature of this body and timestamp, by slack_sdk's SignatureVerifier; raises Unauthorized."""
    from slack_sdk.signature import Clock, SignatureVerifier

    class At(Clock):
        def now(self) -> float:
            return now

    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-slack-request-timestamp"), lower.get("x-slack-signature")
    if not timestamp or not signature:
        raise Unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp: only Slack may call this URL")
    if not TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise Unauthorized("X-Slack-Request-Timestamp is more than 5 minutes off: a replayed request is refused")
    try:
        valid = SignatureVerifier(secret, At()).is_valid(body, timestamp, signature)
    except (UnicodeDecodeError, ValueError):  # a body Slack would never send
        valid = False
    if not valid:
        raise Unauthorized("the signature does not match the body and timestamp: not signed with this app's secret")


# ---------------------------------------------------------------- the click


@dataclass(frozen=True)
class Interaction:
    """A verified click and what is needed to answer it."""

    click: Click
    response_url: str | None  # Slack's URL to answer the person who clicked (ephemeral)
    blocks: list[dict[str, Any]] | None  # the clicked message as Slack holds it, to rewrite it
    text: str  # its plain-text fallback


def _text(value: Any, what: str, pattern: re.Pattern[str] | None = None, limit: int = 255) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadClick(f"the payload's {what} is missing or not a short text")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadClick(f"the payload's {what} is not what Slack sends: {redact.quote(value, 80)!r}")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadClick(f"the payload has no {what} object")
    return value


def parse(body: bytes) -> Interaction:
    """The click a verified body describes (a `block_actions` payload); raises BadClick naming what is wrong."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
        (raw,) = form["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError, RecursionError):
        raise BadClick("the body is not a form with one `payload` field holding JSON, as Slack sends") from None
    payload = _object(payload, "top-level")
    if payload.get("type") != "block_actions":
        raise BadClick(f"only button clicks (block_actions) are handled, not {redact.quote(payload.get('type'), 40)}")
    clicked = payload.get("actions")
    if not isinstance(clicked, list) or len(clicked) != 1:
        raise BadClick("a click carries exactly one action")
    action = _object(clicked[0], "action")
    container = _object(payload.get("container"), "container")
    if container.get("type") != "message":
        raise BadClick("only clicks on messages are handled")
    user = _object(payload.get("user"), "user")
    block_id = _text(action.get("block_id"), "block_id", limit=BLOCK_ID_CHARS)
    check_name = block_id.removeprefix(ACTIONS_BLOCK_PREFIX)
    if check_name == block_id or not check_name.isprintable():
        raise BadClick("the click is not on the monitor's incident buttons")
    try:
        kind = Action(action.get("action_id", ""))
    except ValueError:
        raise BadClick(f"unknown action_id {redact.quote(action.get('action_id'), 40)!r}") from None
    choice, timezone = None, "UTC"
    if kind is Action.SNOOZE:
        selected = _object(action.get("selected_option"), "selected_option")
        choice, _, timezone = _text(selected.get("value"), "snooze value", limit=150).partition("|")
        if choice not in actions.SNOOZES or not _known_zone(timezone):
            raise BadClick(f"the snooze choice {redact.quote(selected.get('value'), 80)!r} is not one of the menu's")
    elif action.get("value") != kind:
        raise BadClick(f"the {kind} button's value is not the one the monitor gave it")
    team = payload.get("team")
    message = payload.get("message")
    if not isinstance(message, dict):
        message = {}
    blocks, text = message.get("blocks"), message.get("text")
    name = user.get("username") or user.get("name")
    return Interaction(
        click=Click(
            check_name=check_name,
            channel=_text(container.get("channel_id"), "container.channel_id", CHANNEL_ID),
            message_ts=_text(container.get("message_ts"), "container.message_ts", SLACK_TS),
            action=kind,
            user_id=_text(user.get("id"), "user.id", USER_ID),
            action_ts=_text(action.get("action_ts"), "action_ts", SLACK_TS),
            user_name=redact.quote(name, 100) if isinstance(name, str) and name else None,
            choice=choice,
            timezone=timezone,
            team_id=team.get("id") if isinstance(team, dict) and isinstance(team.get("id"), str) else None,
        ),
        response_url=payload.get("response_url") if isinstance(payload.get("response_url"), str) else None,
        blocks=blocks if isinstance(blocks, list) and all(isinstance(b, dict) for b in blocks) else None,
        text=text if isinstance(text, str) else "",
    )


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- answering in Slack


@dataclass
class Responder:
    """What a click says back in Slack: the message rewritten and a note in its thread, or a word to the clicker."""

    token: str
    api_url: str | None = None  # SLACK_API_URL; its host may also serve response_urls (the tests' local Slack)

    def show(self, interaction: Interaction, taken: Taken) -> None:
        """The incident's message shows who did what; its thread tells what this click changes."""
        from slack_sdk import WebClient

        from anomaly_monitor.notifiers.slack_client import SLACK_API_URL

        click = interaction.click
        ref = MessageRef(click.channel, click.message_ts)
        before, after = marks(taken.events[:-1], ref), marks(taken.events, ref)
        if taken.event is None or status_line(before) == status_line(after):
            return  # e.g. the same person acknowledging again: nothing new to show
        base_url = (self.api_url or SLACK_API_URL).rstrip("/") + "/"
        # no retries: Slack waits 3 seconds for the whole answer, and the thread note is not idempotent
        client = WebClient(token=self.token, base_url=base_url, timeout=SLACK_TIMEOUT_S, retry_handlers=[])
        if interaction.blocks is not None:
            blocks = clicked_message(interaction.blocks, after)
            client.chat_update(channel=click.channel, ts=click.message_ts, text=interaction.text, blocks=blocks)
        client.chat_postMessage(channel=click.channel, thread_ts=click.message_ts, text=click_reply(taken.event))

    def tell(self, response_url: str | None, text: str) -> None:
        """An ephemeral answer only the person who clicked sees, through the click's own response_url."""
        if response_url is None or not self._slacks(response_url):
            log.warning("the click's response_url is not Slack's: the person who clicked is not told why")
            return
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(response_url, timeout=SLACK_TIMEOUT_S).send(
            text=text, response_type="ephemeral", replace_original=False
        )
        if response.status_code != 200:
            log.warning("Slack answered %s to the ephemeral reply", response.status_code)

    def _slacks(self, url: str) -> bool:
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname) == HOOKS:
            return True
        api = urlsplit(self.api_url) if self.api_url else None
        return api is not None and (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


# ---------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Endpoint:
    """One per instance: the signing secret, the state store and the Slack answers, built once."""

    signing_secret: str
    state: StateStore
    slack: Callable[[], Responder | None]  # built on the first verified click (it reads the bot token)
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoint:
        from anomaly_monitor.clients.secret_manager import slack_bot_token, slack_signing_secret

        secret = slack_signing_secret(settings)
        if not secret:
            raise ConfigError("no signing secret: set SLACK_SIGNING_SECRET or SLACK_SIGNING_SECRET_SECRET")
        redact.register(secret)

        @functools.cache
        def slack() -> Responder | None:
            token = slack_bot_token(settings)
            redact.register(token)
            return Responder(token, settings.slack_api_url) if token else None

        return cls(secret, open_state(settings.state_url, settings), slack)

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Verify, read, record, answer: 401 unsigned, 400 not a click of ours, 200 otherwise (also when the click
        changes nothing: the person who clicked is told why), 500 when the click could not be recorded."""
        try:
            verify(self.signing_secret, body, headers, self.clock())
        except Unauthorized as exc:
            log.warning("slack_actions: refused an unsigned request: %s", exc)
            return Answer(401, {"error": str(exc)})
        try:
            interaction = parse(body)
        except BadClick as exc:
            log.warning("slack_actions: a signed request that is not a click of ours: %s", exc)
            return Answer(400, {"error": str(exc)})
        click = interaction.click
        where = f"{click.action} by {click.user_id} on check {click.check_name} (message {click.message_ts})"
        taken = actions.take(click, self.state, now_utc())  # StateError: the door answers 500
        fields = {"event": "slack_action", "check": click.check_name}
        log.info("slack_actions: %s: %s", where, taken.outcome, extra=fields)
        try:
            slack = self.slack()
            if taken.outcome is Outcome.NOT_OPEN and slack is not None:
                slack.tell(interaction.response_url, f"Nothing was recorded: {taken.reason}")
            elif taken.outcome is Outcome.RECORDED and slack is not None:
                slack.show(interaction, taken)
        except Exception as exc:  # the click is recorded (or refused) whatever Slack says now
            log.warning("slack_actions: %s: Slack not updated (%s: %s)", where, type(exc).__name__, redact.quote(exc))
        body_out: dict[str, Any] = {"outcome": str(taken.outcome), "check": click.check_name, "action": click.action}
        if taken.event is not None:
            body_out["event_id"] = taken.event.event_id
            if taken.event.until is not None:
                body_out["until"] = taken.event.until.isoformat()
        if taken.reason:
            body_out["reason"] = taken.reason
        return Answer(200, body_out)
