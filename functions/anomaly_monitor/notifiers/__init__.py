"""Notifiers deliver incident notices: to Slack when a token is set, else to the terminal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from anomaly_monitor.models import Check, CheckResult


class NoticeKind(StrEnum):
    OPENED = "opened"  # a new top-level message
    REMINDER = "reminder"  # still failing after renotify_hours: a thread reply
    CHANGED = "changed"  # failing differently (data alert <-> query error): a thread reply
    RESOLVED = "resolved"  # ok again: a thread reply, and the original message marked resolved


@dataclass(frozen=True)
class MessageRef:
    """Where an incident's top-level message is, to thread replies under it."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    check: Check
    result: CheckResult  # this run's result
    ref: MessageRef | None  # the incident's message; None when opening
    since: dt.datetime  # the first failing run of the incident
    failing_runs: int  # failing runs so far (for RESOLVED: how many it lasted)
    problem: str  # the latest failing message (for RESOLVED: what it was)
    at: dt.datetime | None = None  # this run's time (--now), for durations; formatters never read the clock


ChartRenderer = Callable[[CheckResult], bytes | None]  # a PNG of a result's series, None when it has none


class Notifier(Protocol):
    def send(self, notice: Notice) -> MessageRef | None:
        """Delivers one notice; returns the incident's message (None where there is none, e.g. the terminal).

        Raises DeliveryError when it could not be delivered: the run records that and retries next time."""
        ...
