"""Incident notices: what the alert lifecycle asks a notifier to say, whatever the transport."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True, kw_only=True)
class Notice:
    kind: NoticeKind
    check: Check
    result: CheckResult  # this run's result
    since: dt.datetime  # the first failing run of the incident
    failing_runs: int  # failing runs so far (for RESOLVED: how many it lasted)
    problem: str  # the latest failing message (for RESOLVED: what it was)
    at: dt.datetime  # this run's time (--now), for durations; formatters never read the clock
    ref: MessageRef | None = None  # the incident's message; None when opening
