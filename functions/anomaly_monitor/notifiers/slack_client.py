"""The Slack Web API client: slack_sdk's WebClient with retry handlers that never make Slack act twice.

A request that changes Slack (chat.postMessage, a file upload) is retried only when Slack certainly did not act on
it (a 429, or a connection that never got the request out); idempotent calls (chat.update, reads) are retried on a
5xx or a dropped connection too. A 429's `Retry-After` is honoured whenever it fits in the run's time budget,
except for an owner's e-mail lookup: that owner is shown as text rather than hold the alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
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

from anomaly_monitor import redact

SLACK_API_URL = "https://slack.com/api/"
MAX_RETRIES = 2  # per request, for 5xx and dropped connections on idempotent calls
MAX_RATE_LIMIT_RETRIES = 50  # a 429 is retried while its Retry-After fits in the time budget
HTTP_TIMEOUT_S = 15

# Calls Slack may safely receive twice: retried on a 5xx or a dropped connection. Everything else changes Slack.
IDEMPOTENT = (
    "chat.update",
    "conversations.history",
    "conversations.replies",
    "conversations.list",
    "users.lookupByEmail",
    "auth.test",
)
# Calls not worth waiting out a 429 for: a rate-limited owner lookup shows the e-mail as text, not hold the alert.
NOT_WAITED_FOR = ("users.lookupByEmail",)


def slack_method(request: HttpRequest) -> str:
    return request.url.rsplit("/", 1)[-1].split("?", 1)[0]


def retry_after_s(response: HttpResponse) -> float:
    values = {k.lower(): v for k, v in (response.headers or {}).items()}.get("retry-after") or ["1"]
    value = values[0] if isinstance(values, list) else values
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


@dataclass
class Budget:
    """How long delivery may wait, for Retry-After and pacing: until `deadline` on `clock`. Injectable."""

    deadline: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def lasting(cls, seconds: float) -> Budget:
        return cls(time.monotonic() + seconds)

    def allows(self, seconds: float) -> bool:
        return self.clock() + seconds <= self.deadline


class PatientRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """A 429 means Slack did not act: wait its Retry-After, however long, while that fits in the time budget."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(max_retry_count=MAX_RATE_LIMIT_RETRIES)
        self.budget = budget

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429 or slack_method(request) in NOT_WAITED_FOR:
            return False
        return self.budget.allows(retry_after_s(response))

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self.budget.sleep(retry_after_s(response) if response is not None else 1.0)
        state.increment_current_attempt()


class IdempotentServerErrorRetryHandler(ServerErrorRetryHandler):
    """A 500/503 may come after Slack acted: only calls that can safely happen twice are retried."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest, **kwargs: Any) -> bool:
        return slack_method(request) in IDEMPOTENT and super()._can_retry(state=state, request=request, **kwargs)


def never_sent(error: Exception | None) -> bool:
    """urllib raises URLError only while connecting or writing the request: Slack never had it whole."""
    return isinstance(error, URLError) and not hasattr(error, "code")


class SafeConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """A dropped connection may come after Slack acted: retried for idempotent calls, or when nothing was sent."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if slack_method(request) not in IDEMPOTENT and not never_sent(error):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def retry_handlers(budget: Budget, interval: RetryIntervalCalculator | None = None) -> list[RetryHandler]:
    interval = interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        PatientRateLimitRetryHandler(budget),
        IdempotentServerErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=interval),
        SafeConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES, interval_calculator=interval),
    ]


def web_client(
    token: str,
    base_url: str | None = None,
    interval: RetryIntervalCalculator | None = None,
    *,
    timeout: float = HTTP_TIMEOUT_S,
    budget: Budget | None = None,
) -> WebClient:
    redact.register(token)
    base_url = (base_url or SLACK_API_URL).rstrip("/") + "/"  # slack_sdk joins method names onto it
    handlers = retry_handlers(budget or Budget.lasting(60), interval)
    # slack_sdk annotates `timeout` as int; it goes to urllib, which takes seconds as a float
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=handlers)  # type: ignore[arg-type]


def handlers_budget(client: WebClient) -> Budget:
    """The budget the client's 429 handler waits within (one per client, shared with the pacer)."""
    for handler in client.retry_handlers:
        if isinstance(handler, PatientRateLimitRetryHandler):
            return handler.budget
    return Budget.lasting(60)
