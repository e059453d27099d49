"""The alert lifecycle: what each result does to its check's incident, and which notice, if any, it calls for.

One incident is one unbroken run of failing results (`alert` or `error`) of a check. It opens with one top-level
message after `alert_after` failing runs, stays quiet but for a reminder every `renotify_hours`, notes in its
thread when it changes between a data alert and a query error, and is closed by the first `ok`, whatever Slack
was told: the closing notice (resolved, or the whole incident in one message when its opening never got out) is
then owed until delivered, and a later failure is a new incident with a message of its own.

The state (`Lifecycle`) is carried forward in every history row, so a check's newest row is all a run reads;
what Slack confirmed is folded in from the delivery journal (`fold`). Everything here is pure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from anomaly_monitor.models import Check, CheckResult, HistoryRecord, NoticeEvent, NoticeRecord, Status
from anomaly_monitor.notifiers import REGISTRY, MessageRef, Notice, NoticeKind

__all__ = ["CLOSING", "FAILING", "REGISTRY", "Lifecycle", "Step", "columns", "fold", "from_record", "step"]

FAILING = (Status.ALERT, Status.ERROR)
CLOSING = (NoticeKind.RESOLVED, NoticeKind.MISSED)


@dataclass(frozen=True)
class Lifecycle:
    """A check's alert state, as its newest history row carries it."""

    incident_id: str | None = None  # the open incident (None: none is open)
    since: dt.datetime | None = None  # its first failing run
    failing_runs: int = 0
    status: Status | None = None  # its newest failing status
    problem: str = ""  # its newest failing message
    ref: MessageRef | None = None  # its message, once posted
    announced: Status | None = None  # the failing status Slack was last told of; None: not announced yet
    last_notice_at: dt.datetime | None = None
    cause: str | None = None  # the shared cause of the newest failure (see causes.py)

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
class Step:
    state: Lifecycle
    notices: tuple[Notice, ...] = ()


def step(check: Check, state: Lifecycle, result: CheckResult, now: dt.datetime, run_id: str, based_on: str) -> Step:
    """This run's result applied to the check's incident: the new state and the notices it calls for.

    `run_id` names new incidents and notices; `based_on` (the run of the row `state` was read from) goes into
    each notice, so a run that crashes before recording can be recognised by the next one."""
    ids = {"at": now, "based_on": based_on}
    if result.status in FAILING:
        opened = state if state.open else Lifecycle(incident_id=run_id, since=now)
        current = replace(
            opened,
            failing_runs=opened.failing_runs + 1,
            status=result.status,
            problem=result.message,
            cause=result.cause,
        )
        kind = _failing_kind(check, current, result.status, now)
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
            **ids,
        )
        return Step(current, (notice,))
    if result.status is Status.OK:
        closed = Lifecycle(cause=result.cause)
        if not state.open:
            return Step(closed)
        if state.announced is not None:
            kind = NoticeKind.RESOLVED
        elif state.failing_runs >= check.alert_after:
            kind = NoticeKind.MISSED
        else:
            return Step(closed)  # it never reached alert_after: nothing was due, nothing to close
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
            **ids,
        )
        return Step(closed, (notice,))
    return Step(state)  # invalid or skipped: says nothing about the data


def _failing_kind(check: Check, state: Lifecycle, status: Status, now: dt.datetime) -> NoticeKind | None:
    if state.announced is None:
        return NoticeKind.OPENED if state.failing_runs >= check.alert_after else None
    if state.announced is not status:
        return NoticeKind.CHANGED
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
    moved = record.slack_ts is not None and record.slack_channel is not None and record.thread_ts is None
    if moved:  # a top-level message: the opening, or a notice whose thread was gone
        state = replace(state, ref=MessageRef(record.slack_channel, record.slack_ts))  # type: ignore[arg-type]
    last = max(filter(None, (state.last_notice_at, record.at)))
    state = replace(state, last_notice_at=last)
    if kind in (NoticeKind.OPENED, NoticeKind.CHANGED) and record.status:
        state = replace(state, announced=Status(record.status))
    return state
