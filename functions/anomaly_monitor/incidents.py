"""The alert lifecycle: which notice, if any, each result calls for, derived from the check's history.

One incident is one unbroken run of failing results (`alert` or `error`). It opens with one top-level
message after `alert_after` failing runs, stays quiet but for a reminder every `renotify_hours`, notes in
its thread when it changes between a data alert and a query error, and is resolved by the first `ok`.
What was delivered is read back from the history (`notified`, `slack_channel`, `slack_ts`), so a notice
that failed is simply due again on the next run, and a run that sees a notice already delivered by
another run does not send it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from anomaly_monitor.errors import DeliveryError
from anomaly_monitor.models import Check, CheckResult, HistoryRecord, OpenIncident, Status
from anomaly_monitor.notifiers import MessageRef, Notice, NoticeKind, Notifier

log = logging.getLogger(__name__)

FAILING = (Status.ALERT, Status.ERROR)


@dataclass
class Incident:
    """What the history says about the check's current incident (empty when there is none)."""

    records: list[HistoryRecord]  # the incident's failing runs (and an unannounced ok), oldest first
    opened: bool  # its opening message was delivered
    ref: MessageRef | None
    last_notified_at: dt.datetime | None

    @property
    def failing(self) -> list[HistoryRecord]:
        return [r for r in self.records if r.status in FAILING]


def current_incident(history: Sequence[HistoryRecord]) -> Incident:
    """Walks back from the newest record to the last ok whose incident (if any) was announced as resolved."""
    records: list[HistoryRecord] = []
    for record in reversed(history):
        if record.status is Status.INVALID:
            continue  # a broken registry row says nothing about the data
        if record.status is Status.OK and (record.notified or not record.slack_ts):
            break  # an ok that closed nothing, or whose resolved notice went out
        records.append(record)
    records.reverse()
    refs = [r for r in records if r.slack_ts and r.slack_channel]
    notified = [r.checked_at for r in records if r.notified]
    return Incident(
        records=records,
        opened=bool(notified or refs),  # a long incident's first message may lie beyond the history read
        ref=MessageRef(refs[-1].slack_channel, refs[-1].slack_ts) if refs else None,  # type: ignore[arg-type]
        last_notified_at=max(notified) if notified else None,
    )


def notice_for(check: Check, result: CheckResult, incident: Incident, now: dt.datetime) -> Notice | None:
    """The notice this result calls for, or None to stay quiet."""
    failing = incident.failing
    if result.status in FAILING:
        runs = len(failing) + 1
        since = failing[0].checked_at if failing else now
        problem = result.message
        if not incident.opened:
            if runs < check.alert_after:
                return None
            return Notice(NoticeKind.OPENED, check, result, None, since, runs, problem, now)
        announced = [r.status for r in failing if r.notified]
        if announced and announced[-1] is not result.status:
            return Notice(NoticeKind.CHANGED, check, result, incident.ref, since, runs, problem, now)
        last = incident.last_notified_at
        due = last is None or now - last >= dt.timedelta(hours=check.renotify_hours)
        if check.renotify_hours > 0 and due:
            return Notice(NoticeKind.REMINDER, check, result, incident.ref, since, runs, problem, now)
        return None
    if result.status is Status.OK and incident.opened:
        last = failing[-1] if failing else incident.records[-1]
        since = failing[0].checked_at if failing else last.checked_at
        return Notice(NoticeKind.RESOLVED, check, result, incident.ref, since, len(failing), last.message, now)
    return None


def deliver(
    results: Sequence[CheckResult], history: dict[str, list[HistoryRecord]], notifier: Notifier, now: dt.datetime
) -> int:
    """Sends the notices the results call for and records delivery on each result; returns how many failed."""
    failures = 0
    for result in results:
        if result.check is None or result.status not in (Status.OK, *FAILING):
            continue
        incident = current_incident(history.get(result.name, []))
        if result.status in FAILING:
            failing = incident.failing
            result.incident = OpenIncident(since=failing[0].checked_at if failing else now)
        if incident.ref:  # every record of an incident points at its message, however long it lasts
            result.slack_channel, result.slack_ts = incident.ref.channel, incident.ref.ts
        notice = notice_for(result.check, result, incident, now)
        if notice is None:
            continue
        try:
            ref = notifier.send(notice)
        except DeliveryError as exc:
            failures += 1
            log.error("check %s: %s notice not delivered, retried next run: %s", result.name, notice.kind, exc)
            continue
        result.notified = True
        if ref is not None:
            result.slack_channel, result.slack_ts = ref.channel, ref.ts
    return failures
