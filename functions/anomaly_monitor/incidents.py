"""The alert lifecycle: what each result does to its check's incident, and which notice, if any, it calls for.

One incident is one unbroken run of failing results (`alert` or `error`) of a check. It opens with one top-level
message after `alert_after` failing runs, stays quiet but for a reminder every `renotify_hours`, notes in its
thread when it changes between a data alert and a query error, and is closed by the first `ok`, whatever Slack
was told: the closing notice (resolved, or the whole incident in one message when its opening never got out) is
then owed until delivered, and a later failure is a new incident with a message of its own.

What people said from Slack (`Marks`, read from `incident_events`) quiets it: acknowledged, no reminders; muted,
nothing until it resolves; snoozed, no reminders and no new incident for the check until the time; marked
expected, it is resolved in Slack at once and stays quiet until the check is ok again (its failing streak was
declared normal, so it is not a new incident either).

The state (`Lifecycle`) is carried forward in every history row, so a check's newest row is all a run reads;
what Slack confirmed is folded in from the delivery journal (`fold`). Everything here is pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from anomaly_monitor.models import (
    Action,
    Check,
    CheckResult,
    HistoryRecord,
    IncidentEvent,
    NoticeEvent,
    NoticeRecord,
    Status,
)
from anomaly_monitor.notices import REGISTRY, MessageRef, Notice, NoticeKind

__all__ = [
    "CLOSING",
    "FAILING",
    "REGISTRY",
    "Lifecycle",
    "Marks",
    "Step",
    "columns",
    "fold",
    "from_record",
    "marks",
    "step",
]

FAILING = (Status.ALERT, Status.ERROR)
CLOSING = (NoticeKind.RESOLVED, NoticeKind.MISSED)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A check's alert state, as its newest history row carries it."""

    incident_id: str | None = None  # the open incident (None: none is open)
    since: dt.datetime | None = None  # its first failing run
    failing_runs: int = 0
    status: Status | None = None  # its newest failing status
    problem: str = ""  # its newest failing message
    ref: MessageRef | None = None  # its message, once posted
    announced: Status | None = None  # the failing status Slack was last told of; None: not announced yet; OK:
    # resolved in Slack because someone marked it expected (it stays open, quietly, until the check is ok)
    last_notice_at: dt.datetime | None = None
    cause: str | None = None  # the shared cause of the newest failure (see causes.py)
    # when the row it was read from ran: not part of the state (no column carries it), so not compared
    last_run_at: dt.datetime | None = field(default=None, compare=False)

    @property
    def open(self) -> bool:
        return self.incident_id is not None


def from_record(record: HistoryRecord | None) -> Lifecycle:
    """The state a check's newest history row carries."""
    if record is None:
        return Lifecycle()
    if record.failing_runs is None:
        return _from_older_row(record)
    if record.incident_id is None:
        return Lifecycle(cause=record.cause)
    ref = MessageRef(record.slack_channel, record.slack_ts) if record.slack_channel and record.slack_ts else None
    return Lifecycle(
        incident_id=record.incident_id,
        since=record.incident_start or record.checked_at,
        failing_runs=record.failing_runs,
        status=record.status if record.status in FAILING else None,
        problem=record.message if record.status in FAILING else "",
        ref=ref,
        announced=Status(record.announced) if record.announced else None,
        last_notice_at=record.last_notice_at,
        cause=record.cause,
        last_run_at=record.checked_at,
    )


def _from_older_row(record: HistoryRecord) -> Lifecycle:
    """A row written before the state columns existed: the best reading of that row alone (it counts the
    incident's runs and age from itself, and treats a resolved notice it had not delivered as still due)."""
    ref = MessageRef(record.slack_channel, record.slack_ts) if record.slack_channel and record.slack_ts else None
    if record.status in FAILING:
        announced = record.status if (record.notified or ref) else None
        return Lifecycle(
            incident_id=f"older-{record.run_id}",
            since=record.checked_at,
            failing_runs=1,
            status=record.status,
            problem=record.message,
            ref=ref,
            announced=announced,
            last_notice_at=record.checked_at if announced else None,
        )
    if record.status is Status.OK and ref and not record.notified:
        return Lifecycle(
            incident_id=f"older-{record.run_id}",
            since=record.checked_at,
            failing_runs=1,
            status=Status.ALERT,
            ref=ref,
            announced=Status.ALERT,
            last_notice_at=record.checked_at,
        )
    return Lifecycle()


def columns(state: Lifecycle) -> dict[str, object]:
    """The history columns that carry the state forward."""
    return {
        "slack_channel": state.ref.channel if state.ref else None,
        "slack_ts": state.ref.ts if state.ref else None,
        "incident_id": state.incident_id,
        "incident_start": state.since,
        "failing_runs": state.failing_runs,
        "announced": str(state.announced) if state.announced else None,
        "last_notice_at": state.last_notice_at,
        "cause": state.cause,
    }


@dataclass(frozen=True)
class Marks:
    """What people said from Slack (incident_events) that a run honours for one check."""

    acknowledged: tuple[IncidentEvent, ...] = ()  # on the open incident's message, oldest first
    muted: IncidentEvent | None = None  # on the open incident's message: the first mute
    expected: IncidentEvent | None = None  # on the open incident's message: the first mark
    snooze: IncidentEvent | None = None  # the check's newest snooze, on any of its incidents (it may be over)

    @property
    def expected_by(self) -> str:
        """The Slack user id of who marked the incident expected ("" when no one did)."""
        return (self.expected.user_id or "") if self.expected else ""

    def snoozed(self, moment: dt.datetime) -> bool:
        until = self.snooze.until if self.snooze else None
        return until is not None and moment < until

    def snoozed_through(self, moment: dt.datetime | None) -> bool:
        """Whether the check's newest snooze lasted until `moment` (the incident's last failing run) at least."""
        until = self.snooze.until if self.snooze else None
        return until is not None and moment is not None and moment <= until


NO_MARKS = Marks()


def marks(events: Sequence[IncidentEvent], ref: MessageRef | None) -> Marks:
    """One check's marks, from its events (oldest first), for the incident whose message is `ref`. A click on
    an earlier message of the check (an incident that ended, or a message that was deleted) marks nothing now,
    except a snooze, which is the check's."""
    seen: set[str] = set()
    acknowledged: list[IncidentEvent] = []
    muted = expected = snooze = None
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if event.action is Action.SNOOZE:
            snooze = event
        elif ref is not None and (event.slack_channel, event.slack_ts) == (ref.channel, ref.ts):
            if event.action is Action.ACKNOWLEDGE:
                acknowledged.append(event)
            elif event.action is Action.MUTE:
                muted = muted or event
            elif event.action is Action.EXPECTED:
                expected = expected or event
    return Marks(tuple(acknowledged), muted, expected, snooze)


@dataclass(frozen=True)
class Step:
    state: Lifecycle
    notices: tuple[Notice, ...] = ()


def step(
    check: Check,
    state: Lifecycle,
    result: CheckResult,
    now: dt.datetime,
    run_id: str,
    based_on: str,
    marks: Marks = NO_MARKS,
) -> Step:
    """This run's result applied to the check's incident: the new state and the notices it calls for.

    `run_id` names new incidents and notices; `based_on` (the run of the row `state` was read from) goes into
    each notice, so a run that crashes before recording can be recognised by the next one. `marks` are what
    people said from Slack about the check (see `marks`)."""
    if result.status in FAILING:
        opened = state if state.open else Lifecycle(incident_id=run_id, since=now)
        current = replace(
            opened,
            failing_runs=opened.failing_runs + 1,
            status=result.status,
            problem=result.message,
            cause=result.cause,
            last_run_at=now,
        )
        kind = _failing_kind(check, current, result.status, now, marks)
        if kind is None:
            return Step(current)
        notice = Notice(
            kind=kind,
            check=check,
            result=result,
            ref=None if kind is NoticeKind.OPENED else current.ref,
            since=current.since or now,
            failing_runs=current.failing_runs,
            problem=result.message,
            id=f"{run_id}:{check.name}:{kind}",
            incident_id=current.incident_id or run_id,
            status=result.status,
            by=marks.expected_by if kind is NoticeKind.EXPECTED else "",
            at=now,
            based_on=based_on,
        )
        return Step(current, (notice,))
    if result.status is Status.OK:
        closed = Lifecycle(cause=result.cause)
        if not state.open or state.announced is Status.OK:
            return Step(closed)  # nothing open, or already resolved in Slack when it was marked expected
        if state.announced is not None:
            kind = NoticeKind.RESOLVED
        elif state.failing_runs >= check.alert_after and not marks.snoozed_through(state.last_run_at):
            kind = NoticeKind.MISSED
        else:
            return Step(closed)  # never due (alert_after), or held back by a snooze all along: nothing to close
        notice = Notice(
            kind=kind,
            check=check,
            result=result,
            ref=state.ref if kind is NoticeKind.RESOLVED else None,
            since=state.since or now,
            failing_runs=state.failing_runs,
            problem=state.problem,
            id=f"{run_id}:{check.name}:{kind}",
            incident_id=state.incident_id or run_id,
            status=state.status or Status.ALERT,
            until=now,
            # ok again after someone marked it expected: resolved in their name (a RESOLVED notice, so that an
            # undelivered one is owed like any other close)
            by=marks.expected_by if kind is NoticeKind.RESOLVED else "",
            at=now,
            based_on=based_on,
        )
        return Step(closed, (notice,))
    return Step(state)  # invalid or skipped: says nothing about the data


def _failing_kind(check: Check, state: Lifecycle, status: Status, now: dt.datetime, marks: Marks) -> NoticeKind | None:
    if state.announced is Status.OK:
        return None  # marked expected and resolved in Slack: quiet until the check is ok
    if state.announced is None:
        due = state.failing_runs >= check.alert_after and not marks.snoozed(now)
        return NoticeKind.OPENED if due else None
    if marks.expected is not None:
        return NoticeKind.EXPECTED
    if marks.muted is not None or marks.snoozed(now):
        return None
    if state.announced is not status:
        return NoticeKind.CHANGED
    if marks.acknowledged:
        return None
    last = state.last_notice_at
    if check.renotify_hours > 0 and (last is None or now - last >= dt.timedelta(hours=check.renotify_hours)):
        return NoticeKind.REMINDER
    return None


def fold(state: Lifecycle, record: NoticeRecord, based_on: str) -> Lifecycle:
    """What a journal event adds to the state read from history.

    A notice decided by a run that never recorded its results (its `based_on` is the newest row's run) brings
    that run's decision: the incident it opened, or the close of the one it resolved. A delivered notice brings
    what Slack now shows: the incident announced, its message, the time of its last notice. Folding an event
    twice changes nothing."""
    kind = NoticeKind(record.kind)
    if record.based_on == based_on:
        if kind is NoticeKind.OPENED and not state.open:
            state = Lifecycle(
                incident_id=record.incident_id,
                since=record.since,
                failing_runs=record.failing_runs or 1,
                status=Status(record.status) if record.status else Status.ALERT,
                problem=record.problem or "",
            )
        elif kind in CLOSING and state.incident_id == record.incident_id:
            state = Lifecycle()
    if record.event is not NoticeEvent.DELIVERED or state.incident_id != record.incident_id or kind in CLOSING:
        return state
    if record.slack_ts is not None and record.slack_channel is not None and record.thread_ts is None:
        # a top-level message: the opening, or a notice whose thread was gone
        state = replace(state, ref=MessageRef(record.slack_channel, record.slack_ts))
    last = max(filter(None, (state.last_notice_at, record.at)))
    state = replace(state, last_notice_at=last)
    if kind in (NoticeKind.OPENED, NoticeKind.CHANGED) and record.status:
        state = replace(state, announced=Status(record.status))
    elif kind is NoticeKind.EXPECTED:
        state = replace(state, announced=Status.OK)  # Slack shows it resolved
    return state
