"""Posts incident notices to Slack with slack_sdk: one message per incident, replies in its thread."""

from __future__ import annotations

import logging
import threading
from http.client import HTTPException

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryIntervalCalculator,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from anomaly_monitor.alerts import Alert, for_notice
from anomaly_monitor.charts import chart_for  # imports matplotlib only when a chart is drawn
from anomaly_monitor.clients import cached
from anomaly_monitor.clients.secret_manager import read_secret
from anomaly_monitor.errors import ConfigError, DeliveryError
from anomaly_monitor.models import Status
from anomaly_monitor.notices import MessageRef, Notice, NoticeKind
from anomaly_monitor.notifiers import ChartRenderer
from anomaly_monitor.notifiers.blocks import Message, render, render_resolved
from anomaly_monitor.settings import Settings

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
APP_NAME = "anomaly-monitor"  # the bot's display name in slack-app-manifest.yml, for "/invite @..." hints
MAX_RETRIES = 2  # per request and per kind of failure: a run is never held up for long; the next run retries
MAX_RETRY_AFTER_S = 10  # a longer Retry-After is not waited for: the notice goes out on the next run
HTTP_TIMEOUT_S = 15


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
    "ratelimited": "Slack rate-limited the app even after retries; the notice is retried on the next run",
    "msg_too_long": "the message was too long for Slack (a bug in the formatter: please report it)",
    "invalid_blocks": "Slack rejected the message layout (a bug in the formatter: please report it)",
}
# chat.update of a resolved incident's message may find it gone or too old: the thread reply still tells.
UPDATE_GONE = ("message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found")


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, ...), or the HTTP status when the answer had none."""
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return str(error or f"HTTP {exc.response.status_code}")


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a 429 only when Slack's Retry-After is short; a long wait is better spent in the next run."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        values = {k.lower(): v for k, v in (response.headers or {}).items()}.get("retry-after") or ["1"]
        try:
            return float(values[0]) <= MAX_RETRY_AFTER_S
        except ValueError:
            return False


def retry_handlers(interval: RetryIntervalCalculator | None = None) -> list[RetryHandler]:
    """Rate limits, 500/503 and dropped connections, each retried at most MAX_RETRIES times per request."""
    interval = interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        BoundedRateLimitRetryHandler(max_retry_count=MAX_RETRIES),
        ServerErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=interval),
        ConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=interval),
    ]


def slack_bot_token(settings: Settings) -> str | None:
    """SLACK_BOT_TOKEN when set (it wins), else the secret SLACK_BOT_TOKEN_SECRET names (read once per instance),
    else None."""
    if settings.slack_bot_token:
        return settings.slack_bot_token
    if settings.slack_bot_token_secret:
        return read_secret(settings.slack_bot_token_secret)
    return None


def web_client(token: str, base_url: str | None = None, interval: RetryIntervalCalculator | None = None) -> WebClient:
    base_url = (base_url or SLACK_API_URL).rstrip("/") + "/"  # slack_sdk joins method names onto it
    return WebClient(token=token, base_url=base_url, timeout=HTTP_TIMEOUT_S, retry_handlers=retry_handlers(interval))


class SlackNotifier:
    """One per run: it caches the e-mail -> user id lookups of that run. Its WebClient is the instance's."""

    def __init__(
        self, client: WebClient, default_channel: str | None = None, chart: ChartRenderer | None = None
    ) -> None:
        self.client = client
        self.default_channel = default_channel
        self.chart = chart
        self._user_ids: dict[str, str | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackNotifier:
        token = slack_bot_token(settings)  # SLACK_BOT_TOKEN wins; else Secret Manager, read once per instance
        if token is None:
            raise ConfigError("no Slack token: set SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_SECRET")
        client = cached(("slack", token, settings.slack_api_url), lambda: web_client(token, settings.slack_api_url))
        return cls(client, settings.slack_default_channel, chart=chart_for)

    # ------------------------------------------------------------ delivery

    def send(self, notice: Notice) -> MessageRef | None:
        channel = self.channel_for(notice)
        try:
            alert = for_notice(notice)
            user_ids = self._resolve_owners(notice)
            if notice.kind is NoticeKind.OPENED or notice.ref is None:
                return self._open(notice, alert, user_ids, channel)
            if notice.kind is NoticeKind.RESOLVED:
                self._mark_resolved(notice, render_resolved(alert, user_ids), notice.ref)
            self._reply(render(alert, user_ids), notice.ref)
            return notice.ref
        except SlackApiError as exc:
            raise DeliveryError(self._explain(notice, channel, exc)) from None
        except (OSError, HTTPException, SlackClientError) as exc:  # URLError, timeouts, dropped connections
            raise DeliveryError(
                f"check {notice.check.name}: {notice.kind} notice for {channel} not delivered: Slack could not "
                f"be reached at {self.client.base_url} ({type(exc).__name__}: {exc}); retried on the next run"
            ) from None
        except Exception as exc:  # a bug here must not cost the other checks their alerts
            log.exception("check %s: %s notice failed unexpectedly", notice.check.name, notice.kind)
            raise DeliveryError(
                f"check {notice.check.name}: {notice.kind} notice for {channel} not delivered: "
                f"unexpected {type(exc).__name__}: {exc}; retried on the next run"
            ) from None

    def channel_for(self, notice: Notice) -> str:
        channel = notice.check.channel or self.default_channel
        if not channel:
            raise DeliveryError(
                f"check {notice.check.name}: no Slack channel: fill its `channel` column or set SLACK_DEFAULT_CHANNEL"
            )
        return channel

    def _open(self, notice: Notice, alert: Alert, user_ids: dict[str, str], channel: str) -> MessageRef:
        """A new top-level message (also for a notice whose incident has no message to thread under)."""
        body = render(alert, user_ids)
        response = self.client.chat_postMessage(channel=channel, unfurl_links=False, unfurl_media=False, **body)
        ref = MessageRef(response["channel"], response["ts"])
        if notice.kind is NoticeKind.OPENED:
            self._post_chart(notice, ref)
        return ref

    def _reply(self, body: Message, ref: MessageRef) -> None:
        self.client.chat_postMessage(
            channel=ref.channel, thread_ts=ref.ts, unfurl_links=False, unfurl_media=False, **body
        )

    def _mark_resolved(self, notice: Notice, body: Message, ref: MessageRef) -> None:
        """Before the reply: chat.update is idempotent, so a reply that fails after it is simply retried."""
        try:
            self.client.chat_update(channel=ref.channel, ts=ref.ts, **body)
        except SlackApiError as exc:
            if slack_error(exc) not in UPDATE_GONE:
                raise
            log.warning(
                "check %s: its incident message %s in %s could not be marked resolved (%s); replying anyway",
                notice.check.name,
                ref.ts,
                ref.channel,
                slack_error(exc),
                extra={"check": notice.check.name},
            )

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
                exc,
                extra={"check": notice.check.name},
            )

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
        with self._lock:
            if email in self._user_ids:
                return self._user_ids[email]
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
                log.warning("check %s: owner %s not looked up: %s", check_name, email, exc)
                user_id = None
            self._user_ids[email] = user_id
            return user_id

    # ------------------------------------------------------------ errors

    def _explain(self, notice: Notice, channel: str, exc: SlackApiError) -> str:
        response = exc.response
        error = slack_error(exc)
        hint = HINTS.get(error, "")
        if hint:
            needed = response.data.get("needed") if isinstance(response.data, dict) else None
            hint = hint.format(channel=channel, app=APP_NAME, needed=needed or "it names")
        elif response.status_code >= 500:
            hint = "Slack is having trouble; the notice is retried on the next run"
        else:
            hint = "the notice is retried on the next run"
        what = f"check {notice.check.name}: {notice.kind} notice for {channel} not delivered"
        return f"{what}: Slack said {error}: {hint}"
