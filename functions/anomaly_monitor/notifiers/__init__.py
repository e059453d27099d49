"""Notifiers deliver incident notices: to Slack when a token is set, else to the terminal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

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


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    check: Check
    result: CheckResult  # this run's result (for a closing notice sent late: what the ok run said)
    ref: MessageRef | None  # the incident's message; None when opening
    since: dt.datetime  # the first failing run of the incident
    failing_runs: int  # failing runs so far (for RESOLVED: how many it lasted)
    problem: str  # the latest failing message (for RESOLVED: what it was)
    at: dt.datetime | None = None  # this run's time (--now), for durations; formatters never read the clock
    id: str = ""  # unique; carried in the message's metadata, so an unconfirmed post can be found
    incident_id: str = ""
    status: Status = Status.ALERT  # the failing status it tells of
    until: dt.datetime | None = None  # RESOLVED and MISSED: when the check was ok again
    based_on: str | None = None  # the history row it was decided from (run_id), for the journal
    members: tuple[str, ...] = ()  # a grouped incident: the checks that failed for its cause
    unconfirmed_before: bool = False  # an earlier attempt could not be confirmed: the message says it may repeat
    by: str = ""  # EXPECTED: the Slack user id of who marked it


@dataclass(frozen=True)
class Sent:
    """A delivered notice: the message it became, and the incident's message from now on."""

    ts: str | None  # None where there is no message id (the terminal)
    ref: MessageRef | None
    moved: bool = False  # the incident's message was gone, so this notice started a new one


ChartRenderer = Callable[[CheckResult], bytes | None]  # a PNG of a result's series, None when it has none


class Notifier(Protocol):
    def channel_for(self, notice: Notice) -> str:
        """Where the notice goes: the incident's channel for a reply, else the check's or the default one."""
        ...

    def send(self, notice: Notice) -> Sent:
        """Delivers one notice.

        Raises DeliveryError when it was certainly not delivered (retried on a later run), DeliveryUnknown when
        it may have been (looked for by `find` on the next run, never sent again blindly)."""
        ...

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        """(ts, thread ts or None) of the message carrying this notice id in the thread or the channel, or None.

        Raises LookupUnavailable when it cannot be searched at all, DeliveryError when Slack cannot be reached."""
        ...
