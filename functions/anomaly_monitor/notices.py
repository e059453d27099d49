"""Incident notices: what the alert lifecycle asks a notifier to say, whatever the transport, and what came of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from anomaly_monitor.models import Check, CheckResult, Status


class NoticeKind(StrEnum):
    OPENED = "opened"  # a new top-level message
    REMINDER = "reminder"  # still failing after renotify_hours: a thread reply
    CHANGED = "changed"  # failing differently (data alert <-> query error): a thread reply
    RESOLVED = "resolved"  # ok again: a thread reply, and the original message marked resolved
    MISSED = "missed"  # a whole incident that began and ended while it could not be posted: one top-level message
    EXPECTED = "expected"  # marked expected from Slack: resolved in its thread and message; quiet until it is ok


TOP_LEVEL = (NoticeKind.OPENED, NoticeKind.MISSED)  # the notices that start a message of their own
REGISTRY = "_registry"  # the monitor's own incident: the check registry cannot be read


@dataclass(frozen=True)
class MessageRef:
    """Where an incident's top-level message is, to thread replies under it."""

    channel: str
    ts: str


@dataclass(frozen=True, kw_only=True)
class Notice:
    kind: NoticeKind
    check: Check
    result: CheckResult  # this run's result (for a closing notice sent late: what the ok run said)
    since: dt.datetime  # the first failing run of the incident
    failing_runs: int  # failing runs so far (for RESOLVED: how many it lasted)
    problem: str  # the latest failing message (for RESOLVED: what it was)
    at: dt.datetime  # this run's time (--now), for durations; formatters never read the clock
    ref: MessageRef | None = None  # the incident's message; None when opening
    id: str = ""  # unique; carried in the message's metadata, so an unconfirmed post can be found
    incident_id: str = ""
    status: Status = Status.ALERT  # the failing status it tells of
    until: dt.datetime | None = None  # RESOLVED and MISSED: when the check was ok again
    based_on: str | None = None  # the history row it was decided from (run_id), for the journal
    members: tuple[str, ...] = ()  # a grouped incident: the checks that failed for its cause
    unconfirmed_before: bool = False  # an earlier attempt could not be confirmed: the message says it may repeat
    by: str = ""  # EXPECTED, or RESOLVED after a mark: the Slack user id of who marked it expected


@dataclass(frozen=True)
class Sent:
    """A delivered notice: the message it became, and the incident's message from now on."""

    ts: str | None  # None where there is no message id (the terminal)
    ref: MessageRef | None
    moved: bool = False  # the incident's message was gone, so this notice started a new one
