"""Delivering notices exactly once: a write-ahead journal, a look in Slack for unknown outcomes, paced sending.

Every notice is journaled in `notices` (append-only) as an `attempt` before its request is made, and its outcome
after it: `delivered`, `failed` (Slack certainly did not act: it refused, rate-limited, or was never reached) or
`unknown` (it may have: a time-out, an answer lost after the request went out, a 5xx). A run starts by settling
what earlier runs left open:

- an unconfirmed notice (`attempt` with no outcome because the run died, or `unknown`) is looked for in Slack by
  the notice id its message carries in `metadata`; found, it is delivered; not found, it failed. It is never
  simply sent again. When Slack cannot be searched (the app lacks the history scopes) the run says so in an
  ERROR log line and treats it as failed, and what it sends next for that check says it may repeat a message;
- a closing notice (resolved, or a whole missed incident) that failed is owed, and sent again;
- notices decided by a run that died before recording its results are folded into the state read from history.

While an opening stays unconfirmed because Slack cannot be reached, nothing else is sent about that incident.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from anomaly_monitor import incidents
from anomaly_monitor.errors import DeliveryError, DeliveryUnknown, LookupUnavailable
from anomaly_monitor.incidents import CLOSING, Lifecycle
from anomaly_monitor.models import Check, CheckResult, NoticeEvent, NoticeRecord, Status
from anomaly_monitor.notices import MessageRef, Notice, NoticeKind, Sent
from anomaly_monitor.notifiers import Notifier
from anomaly_monitor.redact import quote
from anomaly_monitor.state import StateStore

log = logging.getLogger(__name__)

MAX_CHANNELS_AT_ONCE = 8  # channels are paced separately, so they are sent to in parallel


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Outcome:
    event: NoticeEvent
    sent: Sent | None = None
    detail: str | None = None

    @property
    def delivered(self) -> bool:
        return self.event is NoticeEvent.DELIVERED


@dataclass
class Ledger:
    """What the journal says this run must take into account."""

    fold: dict[str, list[NoticeRecord]] = field(default_factory=dict)  # per check: events for its state
    owed: list[NoticeRecord] = field(default_factory=list)  # closing notices to send (again)
    waiting: list[NoticeRecord] = field(default_factory=list)  # unconfirmed, and Slack could not be searched now
    repeat_warning: set[str] = field(default_factory=set)  # checks whose next notices may repeat a message
    events: list[NoticeRecord] = field(default_factory=list)  # what the lookups found, for the journal


def journal(
    notice: Notice,
    event: NoticeEvent,
    run_id: str,
    channel: str,
    outcome: Outcome | None = None,
) -> NoticeRecord:
    """A notice as a journal event; a delivered one records where it landed."""
    thread = notice.ref.ts if notice.ref and notice.kind not in (NoticeKind.OPENED, NoticeKind.MISSED) else None
    sent = outcome.sent if outcome else None
    if sent is not None and sent.moved:
        thread = None  # its thread was gone: it became a top-level message
    return NoticeRecord(
        notice_id=notice.id,
        check_name=notice.check.name,
        event=event,
        recorded_at=wall_clock(),
        run_id=run_id,
        kind=str(notice.kind),
        at=notice.at or notice.since,
        based_on=notice.based_on,
        incident_id=notice.incident_id,
        since=notice.since,
        until=notice.until,
        failing_runs=notice.failing_runs,
        status=str(notice.status),
        problem=quote(notice.problem, 1000),
        resolution=quote(notice.result.message, 1000) if notice.kind in CLOSING else None,
        slack_channel=(sent.ref.channel if sent and sent.ref else None)
        or (notice.ref.channel if notice.ref else channel),
        thread_ts=thread,
        slack_ts=sent.ts if sent else None,
        members=",".join(notice.members) or None,
        detail=outcome.detail if outcome else None,
    )


def confirmed(state: Lifecycle, notice: Notice, outcome: Outcome, run_id: str) -> Lifecycle:
    """The check's state once Slack confirmed one of this run's notices: what the run records for the next one."""
    return incidents.fold(state, journal(notice, NoticeEvent.DELIVERED, run_id, "", outcome), based_on="")


def notice_from(record: NoticeRecord, checks: Mapping[str, Check], warn_repeat: bool = False) -> Notice:
    """A journaled closing notice, to send it again: the registry's check when it still has it."""
    check = checks.get(record.check_name) or Check(name=record.check_name, sql="", channel=record.slack_channel)
    result = CheckResult(record.check_name, check.type, Status.OK, record.resolution or "", check=check)
    ref = MessageRef(record.slack_channel, record.thread_ts) if record.slack_channel and record.thread_ts else None
    return Notice(
        kind=NoticeKind(record.kind),
        check=check,
        result=result,
        ref=ref,
        since=record.since or record.at,
        failing_runs=record.failing_runs or 0,
        problem=record.problem or "",
        at=record.until or record.at,
        id=record.notice_id,
        incident_id=record.incident_id or "",
        status=Status(record.status) if record.status else Status.ALERT,
        until=record.until,
        based_on=record.based_on,
        members=tuple(record.members.split(",")) if record.members else (),
        unconfirmed_before=warn_repeat,
    )


def reconcile(pending: Sequence[NoticeRecord], notifier: Notifier, run_id: str) -> Ledger:
    """Settles what earlier runs left open (see the module docstring); writes nothing itself."""
    ledger = Ledger()
    found_openings: dict[tuple[str, str], NoticeRecord] = {}
    for record in pending:
        if record.event in (NoticeEvent.ATTEMPT, NoticeEvent.UNKNOWN):
            settled = _look_up(record, notifier, run_id, ledger)
            if settled is None:
                ledger.waiting.append(record)
                continue
            ledger.events.append(settled)
            record = settled
        if record.event is NoticeEvent.DELIVERED and record.kind == NoticeKind.OPENED:
            found_openings[(record.check_name, record.incident_id or "")] = record
        if record.event is NoticeEvent.FAILED and record.kind in CLOSING:
            ledger.owed.append(record)
        ledger.fold.setdefault(record.check_name, []).append(record)
    # a whole incident owed as one message whose opening turns out to have been posted after all: resolve that
    for n, owed in enumerate(ledger.owed):
        opening = found_openings.get((owed.check_name, owed.incident_id or ""))
        if owed.kind == NoticeKind.MISSED and opening is not None:
            ledger.owed[n] = replace(
                owed, kind=str(NoticeKind.RESOLVED), slack_channel=opening.slack_channel, thread_ts=opening.slack_ts
            )
    return ledger


def _look_up(record: NoticeRecord, notifier: Notifier, run_id: str, ledger: Ledger) -> NoticeRecord | None:
    """The outcome Slack shows for an unconfirmed notice, as a journal event; None when it cannot tell now."""
    where = f"check {record.check_name}: {record.kind} notice {record.notice_id}"
    settled = replace(record, recorded_at=wall_clock(), run_id=run_id)
    try:
        found = notifier.find(record.notice_id, record.slack_channel or "", record.thread_ts)
    except LookupUnavailable as exc:
        log.error(
            "%s was not confirmed and cannot be looked for in Slack (%s); it is treated as not delivered, and "
            "what is sent next for this check says it may repeat an earlier message",
            where,
            exc,
            extra={"check": record.check_name},
        )
        ledger.repeat_warning.add(record.check_name)
        return replace(settled, event=NoticeEvent.FAILED, detail=quote(f"not confirmed; Slack not searchable: {exc}"))
    except DeliveryError as exc:
        log.warning("%s is still unconfirmed: %s; looked for again next run", where, exc)
        return None
    if found is None:
        log.info("%s was not confirmed and is not in Slack: it is due again", where)
        return replace(settled, event=NoticeEvent.FAILED, detail="not confirmed, and not found in Slack")
    ts, thread = found
    log.info("%s was not confirmed but is in Slack (%s): not sent again", where, ts)
    return replace(settled, event=NoticeEvent.DELIVERED, slack_ts=ts, thread_ts=thread, detail="found in Slack")


def held_back(notices: Sequence[Notice], waiting: Sequence[NoticeRecord]) -> tuple[list[Notice], list[Notice]]:
    """Splits this run's notices into those that may go now and those that must wait for an unconfirmed one:
    nothing about an incident whose opening is unconfirmed, and no second notice of an unconfirmed kind."""
    blocked_incidents = {(w.check_name, w.incident_id) for w in waiting if w.kind == NoticeKind.OPENED}
    blocked_kinds = {(w.check_name, w.incident_id, w.kind) for w in waiting}
    go: list[Notice] = []
    wait: list[Notice] = []
    for notice in notices:
        key = (notice.check.name, notice.incident_id)
        if key in blocked_incidents or (*key, str(notice.kind)) in blocked_kinds:
            wait.append(notice)
        else:
            go.append(notice)
    return go, wait


def send(
    notices: Sequence[Notice],
    notifier: Notifier,
    state: StateStore,
    run_id: str,
    deferred: Sequence[Notice] = (),
) -> dict[str, Outcome]:
    """Journals each notice, sends them (channels in parallel, each channel in order), journals the outcomes.

    `deferred` closing notices are not sent but journaled as failed, so that they stay owed."""
    outcomes: dict[str, Outcome] = {}
    channels: dict[str, str] = {}
    for notice in notices:
        try:
            channels[notice.id] = notifier.channel_for(notice)
        except DeliveryError as exc:
            log.error("check %s: %s notice not delivered: %s", notice.check.name, notice.kind, exc)
            outcomes[notice.id] = Outcome(NoticeEvent.FAILED, detail=quote(str(exc)))
    for notice in deferred:
        outcomes[notice.id] = Outcome(NoticeEvent.FAILED, detail="waits until an earlier notice is confirmed")
    ready = [n for n in notices if n.id in channels]
    state.append_notices(
        [journal(n, NoticeEvent.ATTEMPT, run_id, channels[n.id]) for n in ready]
        + [journal(n, NoticeEvent.FAILED, run_id, "", outcomes[n.id]) for n in deferred if n.kind in CLOSING]
    )
    by_channel: dict[str, list[Notice]] = defaultdict(list)
    for notice in ready:
        by_channel[notice.ref.channel if notice.ref else channels[notice.id]].append(notice)
    if by_channel:
        workers = min(MAX_CHANNELS_AT_ONCE, len(by_channel))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack") as pool:
            batches = list(pool.map(lambda batch: [(n, _send_one(n, notifier)) for n in batch], by_channel.values()))
        outcomes.update((notice.id, outcome) for batch in batches for notice, outcome in batch)
    settled = [n for n in notices if n.id in channels or n.kind in CLOSING]
    state.append_notices(
        [journal(n, outcomes[n.id].event, run_id, channels.get(n.id, ""), outcomes[n.id]) for n in settled]
    )
    return outcomes


def _send_one(notice: Notice, notifier: Notifier) -> Outcome:
    try:
        return Outcome(NoticeEvent.DELIVERED, notifier.send(notice))
    except DeliveryUnknown as exc:
        log.error(
            "check %s: %s notice may not have been delivered: %s; it is looked for in Slack on the next run, "
            "never sent again blindly",
            notice.check.name,
            notice.kind,
            exc,
            extra={"check": notice.check.name},
        )
        return Outcome(NoticeEvent.UNKNOWN, detail=quote(str(exc)))
    except DeliveryError as exc:
        log.error(
            "check %s: %s notice not delivered, retried next run: %s",
            notice.check.name,
            notice.kind,
            exc,
            extra={"check": notice.check.name},
        )
        return Outcome(NoticeEvent.FAILED, detail=quote(str(exc)))
