"""Posts incident notices to Slack with slack_sdk: one message per incident, replies in its thread.

Delivery is exactly-once by construction: a request that changes Slack (chat.postMessage, a file upload) is
retried by the client (slack_client.py) only when Slack certainly did not act on it (a 429, or a connection that
never got the request out); a time-out, a lost answer or a 5xx is reported as unknown, and the next run looks for
the message by the notice id it carries in `metadata` (conversations.history / conversations.replies) instead of
posting again. Idempotent calls (chat.update, reads) are retried freely. Posts to one channel are paced to
Slack's rate (about one a second), `Retry-After` is honoured whenever it fits in the run's time budget, and
channels are paced separately, so they do not wait on each other.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError

from anomaly_monitor import redact
from anomaly_monitor.alerts import Alert, for_notice
from anomaly_monitor.charts import chart_for  # imports matplotlib only when a chart is drawn
from anomaly_monitor.clients.secret_manager import slack_bot_token
from anomaly_monitor.errors import ConfigError, DeliveryError, DeliveryUnknown, LookupUnavailable
from anomaly_monitor.models import Status
from anomaly_monitor.notices import TOP_LEVEL, MessageRef, Notice, NoticeKind, Sent
from anomaly_monitor.notifiers import ChartRenderer
from anomaly_monitor.notifiers.blocks import render, render_moved, render_resolved, with_repeat_warning
from anomaly_monitor.notifiers.slack_client import Budget, handlers_budget, web_client
from anomaly_monitor.settings import Settings

log = logging.getLogger(__name__)

APP_NAME = "anomaly-monitor"  # the bot's display name in slack-app-manifest.yml, for "/invite @..." hints
PACE_S = 1.0  # between two posts or updates in one channel: Slack's rate for chat.postMessage
RECORD_MARGIN_S = 20  # of the run's time budget kept for recording after the last notice
HISTORY_PAGES = 5  # of 200 messages: how far back an unconfirmed notice is looked for
EVENT_TYPE = "anomaly_monitor_notice"  # the metadata event type on every message the monitor posts
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")

# The bot scopes this notifier uses, and why (slack-app-manifest.yml grants them; a test keeps the two in step).
SCOPES = {
    "chat:write": "post, reply in threads, mark resolved",
    "chat:write.public": "post to public channels without an invitation (optional)",
    "users:read": "required by users:read.email",
    "users:read.email": "owner e-mails become mentions",
    "files:write": "the anomaly chart in the thread",
    "channels:history": "find an unconfirmed post in a public channel",
    "groups:history": "the same in a private channel",
    "channels:read": "a #name channel's id, to search it (not needed with channel ids)",
    "groups:read": "the same for private channels",
}

# Slack error codes that no retry fixes, and what the reader should do about each.
HINTS = {
    "channel_not_found": (
        "Slack knows no channel {channel} that the app can see: check the check's `channel` column "
        "(a channel id like C0123ABCD, or #name) or SLACK_DEFAULT_CHANNEL; for a private channel, "
        "invite the app first: /invite @{app}"
    ),
    "not_in_channel": "the app is not a member of {channel}: invite it there with /invite @{app}",
    "is_archived": "channel {channel} is archived: unarchive it or point the check at another channel",
    "invalid_auth": "the bot token is not valid: check SLACK_BOT_TOKEN (or the secret SLACK_BOT_TOKEN_SECRET names)",
    "not_authed": "no bot token was sent: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_SECRET",
    "token_revoked": "the bot token was revoked: reinstall the app and update the token",
    "account_inactive": "the bot token belongs to a deactivated app or user: reinstall the app",
    "missing_scope": "the app lacks the scope {needed}: add it under OAuth & Permissions and reinstall the app",
    "ratelimited": "Slack rate-limited the app beyond the run's time budget; the notice is retried on the next run",
    "msg_too_long": "the message was too long for Slack (a bug in the formatter: please report it)",
    "invalid_blocks": "Slack rejected the message layout (a bug in the formatter: please report it)",
}
GONE = ("message_not_found", "thread_not_found")  # the incident's message was deleted
UPDATE_GONE = (*GONE, "cant_update_message", "edit_window_closed")


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, ...), or the HTTP status when the answer had none; never a secret."""
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return redact.quote(error or f"HTTP {exc.response.status_code}", 100)


@dataclass
class Pacer:
    """At most one post or update per `interval` in each channel; channels do not wait on each other."""

    budget: Budget
    interval: float = PACE_S
    _next: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, channel: str) -> None:
        with self._lock:
            now = self.budget.clock()
            slot = max(now, self._next.get(channel, now))
            self._next[channel] = slot + self.interval
        delay = slot - now
        if not self.budget.allows(delay):
            raise DeliveryError(f"the run's time budget is spent before a message to {channel} could go out")
        if delay > 0:
            self.budget.sleep(delay)


class SlackNotifier:
    """One per run: it caches that run's e-mail lookups, channel ids and channel histories."""

    def __init__(
        self,
        client: WebClient,
        default_channel: str | None = None,
        chart: ChartRenderer | None = None,
        pace_s: float = PACE_S,
    ) -> None:
        self.client = client
        self.default_channel = default_channel
        self.chart = chart
        self.pacer = Pacer(handlers_budget(client), pace_s)
        self._user_ids: dict[str, str | None] = {}
        self._channel_ids: dict[str, str] = {}
        self._histories: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._users_lock = threading.Lock()  # notices go out from one thread per channel: look each e-mail up once

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackNotifier:
        token = slack_bot_token(settings)  # SLACK_BOT_TOKEN wins; else Secret Manager, read once per instance
        if token is None:
            raise ConfigError("no Slack token: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_SECRET")
        budget = Budget.lasting(max(0.0, settings.run_timeout_s - RECORD_MARGIN_S))
        client = web_client(token, settings.slack_api_url, budget=budget)
        return cls(client, settings.slack_default_channel, chart=chart_for)

    # ------------------------------------------------------------ delivery

    def channel_for(self, notice: Notice) -> str:
        if notice.ref is not None and notice.kind not in TOP_LEVEL:
            return notice.ref.channel
        channel = notice.check.channel or self.default_channel
        if not channel:
            raise DeliveryError(
                f"check {notice.check.name}: no Slack channel: fill its `channel` column or set SLACK_DEFAULT_CHANNEL"
            )
        return channel

    def send(self, notice: Notice) -> Sent:
        what = f"check {notice.check.name}: {notice.kind} notice"
        try:
            channel = self.channel_for(notice)
            alert = for_notice(notice)  # what the notice says, built once; rendered for each message it makes
            if notice.kind in TOP_LEVEL or notice.ref is None:
                return self._post_top_level(notice, alert, channel, moved=notice.kind not in TOP_LEVEL)
            if notice.kind in (NoticeKind.RESOLVED, NoticeKind.EXPECTED):
                self._mark_resolved(notice, alert, notice.ref)
            return self._reply(notice, alert, notice.ref)
        except SlackApiError as exc:
            if exc.response.status_code >= 500:  # Slack may have acted before failing
                raise DeliveryUnknown(f"{what}: Slack answered HTTP {exc.response.status_code}") from None
            raise DeliveryError(self._explain(notice, exc)) from None
        except (DeliveryError, ConfigError):
            raise
        except (URLError, SlackRequestError) as exc:  # the request never reached Slack whole
            raise DeliveryError(
                f"{what} not delivered: Slack could not be reached at {self.client.base_url} "
                f"({type(exc).__name__}: {redact.quote(exc, 200)}); retried on the next run"
            ) from None
        except (OSError, HTTPException, SlackClientError) as exc:  # time-out or lost answer: maybe delivered
            raise DeliveryUnknown(
                f"{what}: no answer from Slack ({type(exc).__name__}: {redact.quote(exc, 200)})"
            ) from None
        except Exception as exc:  # a bug here must not cost the other checks their alerts, nor post twice
            log.exception("%s failed unexpectedly", what)
            raise DeliveryUnknown(f"{what}: unexpected {type(exc).__name__}: {redact.quote(exc, 200)}") from None

    def _metadata(self, notice: Notice) -> dict[str, Any]:
        payload = {"notice_id": notice.id, "check": notice.check.name, "incident_id": notice.incident_id}
        return {"event_type": EVENT_TYPE, "event_payload": {**payload, "kind": str(notice.kind)}}

    def _post(self, notice: Notice, channel: str, body: dict[str, Any], thread_ts: str | None = None) -> Any:
        if notice.unconfirmed_before:
            body = with_repeat_warning(body)
        self.pacer.wait(channel)
        return self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata=self._metadata(notice),
            **body,
        )

    def _post_top_level(self, notice: Notice, alert: Alert, channel: str, *, moved: bool) -> Sent:
        """The incident's first message, a whole missed incident, or a notice whose thread is gone (`moved`)."""
        owners = self._resolve_owners(notice)
        body = render_moved(alert, owners) if moved else render(alert, owners)
        response = self._post(notice, channel, body)
        ref = MessageRef(response["channel"], response["ts"])
        if notice.kind is NoticeKind.OPENED:
            self._post_chart(notice, ref)
        return Sent(ref.ts, ref, moved=moved)

    def _reply(self, notice: Notice, alert: Alert, ref: MessageRef) -> Sent:
        try:
            response = self._post(notice, ref.channel, render(alert, self._resolve_owners(notice)), ref.ts)
        except SlackApiError as exc:
            if slack_error(exc) not in GONE:
                raise
            log.warning(
                "check %s: its incident message %s in %s is gone (%s); continuing in a new message",
                notice.check.name,
                ref.ts,
                ref.channel,
                slack_error(exc),
                extra={"check": notice.check.name},
            )
            return self._post_top_level(notice, alert, ref.channel, moved=True)
        return Sent(response["ts"], ref)

    def _mark_resolved(self, notice: Notice, alert: Alert, ref: MessageRef) -> None:
        """Before the reply: chat.update is idempotent, so a reply that fails after it is simply retried."""
        body = render_resolved(alert, self._resolve_owners(notice))
        try:
            self.pacer.wait(ref.channel)
            self.client.chat_update(channel=ref.channel, ts=ref.ts, **body)
        except SlackApiError as exc:
            if slack_error(exc) not in UPDATE_GONE:
                if exc.response.status_code >= 500:  # the reply was not sent: a retry repeats only the update
                    raise DeliveryError(
                        f"check {notice.check.name}: resolved notice not delivered: Slack answered HTTP "
                        f"{exc.response.status_code} to chat.update; retried on the next run"
                    ) from None
                raise
            log.warning(
                "check %s: its incident message %s in %s could not be marked resolved (%s); replying anyway",
                notice.check.name,
                ref.ts,
                ref.channel,
                slack_error(exc),
                extra={"check": notice.check.name},
            )
        except (OSError, HTTPException, SlackClientError) as exc:
            raise DeliveryError(
                f"check {notice.check.name}: resolved notice not delivered: chat.update got no answer "
                f"({type(exc).__name__}); retried on the next run"
            ) from None

    def _post_chart(self, notice: Notice, ref: MessageRef) -> None:
        """The series as a picture in the thread; a chart is a nicety, so failing here never fails the alert."""
        if self.chart is None or not notice.result.series or notice.result.status is not Status.ALERT:
            return
        try:
            png = self.chart(notice.result)
            if png:
                self.client.files_upload_v2(
                    channel=ref.channel,
                    thread_ts=ref.ts,
                    file=png,
                    filename=f"{notice.check.name}.png",
                    title=f"{notice.check.name}: recent values and expected range",
                )
        except Exception as exc:  # the alert itself is already delivered
            log.warning(
                "check %s: chart not posted (%s: %s)",
                notice.check.name,
                type(exc).__name__,
                redact.quote(exc, 200),
                extra={"check": notice.check.name},
            )

    # ------------------------------------------------------------ looking for an unconfirmed notice

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        """(ts, thread ts or None) of the message carrying this notice id, or None: the thread first, then the
        channel's newest HISTORY_PAGES × 200 messages (where a notice lands when its thread is gone)."""
        try:
            channel_id = self._channel_id(channel)
            found = self._in_thread(notice_id, channel_id, thread_ts) if thread_ts else None
            if found is not None:
                return found
            for message in self._history(channel_id):
                if self._carries(message, notice_id):
                    return message["ts"], None
            return None
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in ("missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type"):
                needed = exc.response.data.get("needed") if isinstance(exc.response.data, dict) else None
                hint = f"add the scope {redact.quote(needed, 100)} and reinstall the app" if needed else ""
                hint = hint or f"invite the app to {channel} (/invite @{APP_NAME})"
                raise LookupUnavailable(f"Slack said {error} reading {channel}: {hint}") from None
            raise DeliveryError(f"Slack said {error} reading {channel}") from None
        except (OSError, HTTPException, SlackClientError) as exc:
            raise DeliveryError(f"Slack could not be reached ({type(exc).__name__})") from None

    def _in_thread(self, notice_id: str, channel_id: str, thread_ts: str) -> tuple[str, str | None] | None:
        """The notice in the incident's thread; None when it is not there or the thread is gone."""
        try:
            for message in self._pages(self.client.conversations_replies, channel=channel_id, ts=thread_ts):
                if self._carries(message, notice_id):
                    ts = message["ts"]
                    return ts, (None if ts == thread_ts else thread_ts)
        except SlackApiError as exc:
            if slack_error(exc) not in GONE:
                raise
        return None

    @staticmethod
    def _carries(message: dict[str, Any], notice_id: str) -> bool:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return metadata.get("event_type") == EVENT_TYPE and payload.get("notice_id") == notice_id

    def _pages(self, method: Callable[..., Any], **args: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(HISTORY_PAGES):
            page = method(include_all_metadata=True, limit=200, cursor=cursor, **args)
            yield from page.get("messages") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _history(self, channel_id: str) -> list[dict[str, Any]]:
        with self._lock:
            if channel_id not in self._histories:
                self._histories[channel_id] = list(self._pages(self.client.conversations_history, channel=channel_id))
            return self._histories[channel_id]

    def _channel_id(self, channel: str) -> str:
        """Reads need a channel id; a #name is looked up once per run (conversations.list: channels:read)."""
        if CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#")
        with self._lock:
            if not self._channel_ids:
                for page in self.client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000
                ):
                    self._channel_ids.update((c["name"], c["id"]) for c in page.get("channels") or [])
        if name not in self._channel_ids:
            raise LookupUnavailable(f"no channel named {channel} is visible to the app: use its id (C…) instead")
        return self._channel_ids[name]

    # ------------------------------------------------------------ owners

    def _resolve_owners(self, notice: Notice) -> dict[str, str]:
        """E-mail owners -> user ids, each asked of Slack once per run; the unresolved are shown as text."""
        found = {}
        for owner in notice.check.owners:
            if "@" in owner:
                user_id = self._user_id(owner, notice.check.name)
                if user_id:
                    found[owner] = user_id
        return found

    def _user_id(self, email: str, check_name: str) -> str | None:
        with self._users_lock:
            if email not in self._user_ids:
                self._user_ids[email] = self._look_up_user(email, check_name)
            return self._user_ids[email]

    def _look_up_user(self, email: str, check_name: str) -> str | None:
        try:
            user_id = self.client.users_lookupByEmail(email=email)["user"]["id"]
        except SlackApiError as exc:
            # users_not_found, missing_scope (users:read.email), ...: a plain-text owner beats no alert
            log.warning(
                "check %s: owner %s not found in Slack (%s); shown as text",
                check_name,
                email,
                slack_error(exc),
                extra={"check": check_name},
            )
            user_id = None
        except Exception as exc:  # Slack unreachable: the alert's own delivery will say so
            log.warning("check %s: owner %s not looked up: %s", check_name, email, redact.quote(exc, 200))
            user_id = None
        return user_id

    # ------------------------------------------------------------ errors

    def _explain(self, notice: Notice, exc: SlackApiError) -> str:
        response = exc.response
        error = slack_error(exc)
        hint = HINTS.get(error, "")
        channel = notice.ref.channel if notice.ref and notice.kind not in TOP_LEVEL else self.channel_for(notice)
        if hint:
            needed = response.data.get("needed") if isinstance(response.data, dict) else None
            hint = hint.format(channel=channel, app=APP_NAME, needed=redact.quote(needed or "it names", 100))
        else:
            hint = "the notice is retried on the next run"
        what = f"check {notice.check.name}: {notice.kind} notice for {channel} not delivered"
        return f"{what}: Slack said {error}: {hint}"
