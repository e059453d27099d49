"""The alert lifecycle as pure functions: open once, stay quiet, remind, note changes, close, owe, fold, reconcile."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_monitor import delivery, incidents
from anomaly_monitor.errors import DeliveryError, DeliveryUnknown, LookupUnavailable
from anomaly_monitor.incidents import CLOSING, Lifecycle
from anomaly_monitor.models import Check, CheckResult, HistoryRecord, NoticeEvent, NoticeRecord, Status
from anomaly_monitor.notices import TOP_LEVEL, MessageRef, Notice, NoticeKind, Sent

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)


class RecordingNotifier:
    """Stands in for Slack at the boundary: remembers each notice, can be switched off."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []
        self.down = False

    def channel_for(self, notice: Notice) -> str:
        return notice.ref.channel if notice.ref else "C1"

    def send(self, notice: Notice) -> Sent:
        if self.down:
            raise DeliveryError("Slack is unreachable")
        self.sent.append(notice)
        if notice.kind in TOP_LEVEL:
            ts = f"{len(self.sent)}.000"
            return Sent(ts, MessageRef("C1", ts))
        return Sent(f"{len(self.sent)}.000", notice.ref)

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        raise LookupUnavailable("not in these tests")


class Timeline:
    """One check through successive statuses, its state carried as the runner carries it between runs."""

    def __init__(self, **check: object) -> None:
        self.check = Check(name="late_settle", sql="SELECT 1", **check)  # type: ignore[arg-type]
        self.state = Lifecycle()
        self.owed: list[Notice] = []  # closing notices not delivered yet
        self.notifier = RecordingNotifier()
        self.now = T0
        self.runs = 0

    def run(self, status: Status, message: str = "") -> incidents.Lifecycle:
        run_id = f"r{self.runs}"
        result = CheckResult(self.check.name, "rows", status, message or str(status), check=self.check)
        step = incidents.step(self.check, self.state, result, self.now, run_id, based_on=f"r{self.runs - 1}")
        state, owed = step.state, []
        for notice in [*self.owed, *step.notices]:
            try:
                sent = self.notifier.send(notice)
            except DeliveryError:
                owed += [notice] if notice.kind in CLOSING else []
                continue
            state = delivery.confirmed(state, notice, delivery.Outcome(NoticeEvent.DELIVERED, sent), run_id)
        self.state, self.owed = state, owed
        self.now += STEP
        self.runs += 1
        return state

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.notifier.sent]


def test_first_failing_run_opens_one_incident_then_stays_quiet():
    t = Timeline()
    t.run(Status.OK)
    first = t.run(Status.ALERT)
    t.run(Status.ALERT)
    last = t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert first.ref == MessageRef("C1", "1.000") and first.announced is Status.ALERT
    assert (last.ref, last.incident_id, last.failing_runs, last.since) == (first.ref, "r1", 3, T0 + STEP)


def test_ok_again_resolves_in_the_thread_then_a_new_failure_is_a_new_incident():
    t = Timeline()
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    t.run(Status.OK)
    t.run(Status.OK)
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.RESOLVED, NoticeKind.OPENED]
    resolved = t.notifier.sent[1]
    assert resolved.ref == MessageRef("C1", "1.000")
    assert (resolved.failing_runs, resolved.since, resolved.until) == (2, T0, T0 + 2 * STEP)
    assert t.notifier.sent[2].incident_id != t.notifier.sent[0].incident_id


def test_alert_after_waits_for_consecutive_failures():
    t = Timeline(alert_after=3)
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    t.run(Status.OK)  # the streak is broken: nothing was ever due, nothing to close
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    assert t.kinds() == []
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert t.notifier.sent[0].failing_runs == 3


def test_reminder_after_renotify_hours_and_never_with_zero():
    t = Timeline(renotify_hours=1)
    for _ in range(9):  # 2 hours of 15-minute runs
        t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.REMINDER, NoticeKind.REMINDER]
    quiet = Timeline(renotify_hours=0)
    for _ in range(9):
        quiet.run(Status.ALERT)
    assert quiet.kinds() == [NoticeKind.OPENED]


def test_alert_to_error_and_back_is_noted_in_the_same_thread():
    t = Timeline()
    t.run(Status.ALERT)
    t.run(Status.ERROR, "timed out")
    t.run(Status.ERROR, "timed out")
    t.run(Status.ALERT)
    t.run(Status.OK)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.CHANGED, NoticeKind.CHANGED, NoticeKind.RESOLVED]
    assert {n.ref for n in t.notifier.sent[1:]} == {MessageRef("C1", "1.000")}


def test_undelivered_opening_is_retried_on_the_next_run_exactly_once():
    t = Timeline()
    t.notifier.down = True
    missed = t.run(Status.ALERT)
    assert missed.announced is None
    t.notifier.down = False
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert t.notifier.sent[0].failing_runs == 2


def test_undelivered_resolution_is_owed_until_delivered():
    t = Timeline()
    t.run(Status.ALERT)
    t.notifier.down = True
    t.run(Status.OK)
    t.run(Status.OK)
    t.notifier.down = False
    t.run(Status.OK)
    t.run(Status.OK)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.RESOLVED]


def test_a_failure_after_an_undelivered_resolution_is_a_new_visible_incident():
    """The half-done resolve: the old incident is over whatever Slack was told, and the new one is posted."""
    t = Timeline()
    t.run(Status.ALERT)
    t.notifier.down = True
    t.run(Status.OK)
    t.notifier.down = False
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.RESOLVED, NoticeKind.OPENED]
    assert t.notifier.sent[1].ref == MessageRef("C1", "1.000"), "the late resolution goes to the old thread"
    assert t.state.ref == MessageRef("C1", "3.000")


def test_an_incident_that_opened_and_cleared_during_an_outage_is_one_message_once_slack_is_back():
    t = Timeline()
    t.notifier.down = True
    t.run(Status.ALERT)
    t.run(Status.ERROR, "timed out")
    t.run(Status.OK)
    t.notifier.down = False
    t.run(Status.OK)
    [missed] = t.notifier.sent
    assert missed.kind is NoticeKind.MISSED
    assert (missed.since, missed.until, missed.failing_runs, missed.problem) == (T0, T0 + 2 * STEP, 2, "timed out")


def test_invalid_rows_neither_open_nor_resolve():
    t = Timeline()
    t.run(Status.ALERT)
    before = t.state
    assert (
        incidents.step(t.check, before, CheckResult("late_settle", "rows", Status.INVALID), t.now, "rx", "r0").state
        == before
    )
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]


# ---------------------------------------------------------------- the state in a history row


def row(**values: object) -> HistoryRecord:
    base = dict(run_id="r1", check_name="c", checked_at=T0, status=Status.ALERT, value=None, row_count=1)
    base |= dict(message="3 rows", duration_ms=1, bytes_processed=None, notified=True, slack_channel="C1")
    return HistoryRecord(**(base | {"slack_ts": "5.0"} | values))  # type: ignore[arg-type]


def test_the_state_round_trips_through_a_history_row():
    state = Lifecycle("i1", T0, 4, Status.ERROR, "boom", MessageRef("C1", "5.0"), Status.ALERT, T0 + STEP, "quota")
    carried = row(status=Status.ERROR, message="boom", **incidents.columns(state))
    assert incidents.from_record(carried) == state


def test_a_row_written_before_the_state_columns_is_read_as_well_as_it_can_be():
    announced = incidents.from_record(row())
    assert (announced.open, announced.ref, announced.announced) == (True, MessageRef("C1", "5.0"), Status.ALERT)
    unannounced = incidents.from_record(row(notified=False, slack_channel=None, slack_ts=None))
    assert unannounced.open and unannounced.announced is None
    owing = incidents.from_record(row(status=Status.OK, notified=False))
    assert owing.open and owing.announced, "its resolved notice was never delivered: still due"
    assert not incidents.from_record(row(status=Status.OK)).open


# ---------------------------------------------------------------- folding the journal


def journaled(notice: Notice, event: NoticeEvent, ts: str | None = None) -> NoticeRecord:
    outcome = delivery.Outcome(event, Sent(ts, MessageRef("C1", ts)) if ts else None)
    return delivery.journal(notice, event, "r2", "C1", outcome)


def test_a_run_that_died_after_posting_is_adopted_not_repeated():
    check = Check(name="c", sql="SELECT 1")
    failing = CheckResult("c", "rows", Status.ALERT, "3 rows", check=check)
    step = incidents.step(check, Lifecycle(), failing, T0, "r2", based_on="r1")
    [opened] = step.notices
    # the history still says r1 (no incident); the journal has r2's opening, found in Slack
    state = incidents.fold(Lifecycle(), journaled(opened, NoticeEvent.DELIVERED, "9.0"), based_on="r1")
    assert (state.incident_id, state.ref, state.announced) == ("r2", MessageRef("C1", "9.0"), Status.ALERT)
    again = incidents.step(check, state, failing, T0 + STEP, "r3", based_on="r1")
    assert again.notices == () and again.state.failing_runs == 2
    assert incidents.fold(state, journaled(opened, NoticeEvent.DELIVERED, "9.0"), based_on="r1") == state


def test_a_run_that_died_deciding_a_resolution_closes_the_incident_whatever_its_delivery():
    check = Check(name="c", sql="SELECT 1")
    open_state = Lifecycle("r0", T0, 3, Status.ALERT, "3 rows", MessageRef("C1", "1.0"), Status.ALERT, T0)
    ok = CheckResult("c", "rows", Status.OK, "no rows", check=check)
    [resolved] = incidents.step(check, open_state, ok, T0 + STEP, "r4", based_on="r3").notices
    for event in (NoticeEvent.ATTEMPT, NoticeEvent.FAILED, NoticeEvent.DELIVERED):
        assert not incidents.fold(open_state, journaled(resolved, event), based_on="r3").open
        assert incidents.fold(open_state, journaled(resolved, event), based_on="r0") == open_state


# ---------------------------------------------------------------- reconciling unconfirmed notices


class Finder(RecordingNotifier):
    def __init__(self, found: dict[str, tuple[str, str | None]], error: Exception | None = None) -> None:
        super().__init__()
        self.found, self.error, self.asked = found, error, []

    def find(self, notice_id: str, channel: str, thread_ts: str | None) -> tuple[str, str | None] | None:
        self.asked.append(notice_id)
        if self.error:
            raise self.error
        return self.found.get(notice_id)


def unconfirmed(kind: str, notice_id: str, event: NoticeEvent = NoticeEvent.ATTEMPT) -> NoticeRecord:
    return NoticeRecord(
        notice_id, "c", event, T0, "r1", kind, T0, "r0", "i1", T0, T0 + STEP, 2, "alert", "3 rows", "ok", "C1"
    )


def test_an_unconfirmed_notice_found_in_slack_is_delivered_and_one_not_found_is_due_again():
    finder = Finder({"n1": ("7.0", None)})
    ledger = delivery.reconcile(
        [unconfirmed("opened", "n1"), unconfirmed("reminder", "n2", NoticeEvent.UNKNOWN)], finder, "r5"
    )
    assert finder.asked == ["n1", "n2"]
    assert [(e.notice_id, e.event, e.slack_ts, e.run_id) for e in ledger.events] == [
        ("n1", NoticeEvent.DELIVERED, "7.0", "r5"),
        ("n2", NoticeEvent.FAILED, None, "r5"),
    ]
    assert ledger.owed == [] and ledger.waiting == []


def test_a_missed_incident_whose_opening_turns_up_is_resolved_in_its_thread_instead():
    finder = Finder({"n1": ("7.0", None)})
    missed = replace(unconfirmed("missed", "n3", NoticeEvent.FAILED), incident_id="i1")
    ledger = delivery.reconcile([unconfirmed("opened", "n1"), missed], finder, "r5")
    [owed] = ledger.owed
    assert (owed.kind, owed.thread_ts, owed.notice_id) == ("resolved", "7.0", "n3")
    assert delivery.notice_from(owed, {}).ref == MessageRef("C1", "7.0")


def test_when_slack_cannot_be_reached_unconfirmed_notices_wait_and_hold_back_their_incident():
    ledger = delivery.reconcile([unconfirmed("opened", "n1")], Finder({}, DeliveryError("down")), "r5")
    assert ledger.events == [] and [w.notice_id for w in ledger.waiting] == ["n1"]
    check = Check(name="c", sql="SELECT 1")
    base = Notice(
        kind=NoticeKind.REMINDER,
        check=check,
        result=CheckResult("c", "rows", Status.ALERT),
        ref=None,
        since=T0,
        failing_runs=3,
        problem="x",
        at=T0,
        incident_id="i1",
    )
    other = replace(base, kind=NoticeKind.OPENED, incident_id="i2")
    closing = replace(base, kind=NoticeKind.MISSED)
    go, wait = delivery.held_back([base, other, closing], ledger.waiting)
    assert go == [other], "a new incident is independent of the unconfirmed one"
    assert wait == [base, closing]


def test_when_slack_cannot_be_searched_the_notice_is_due_again_with_a_warning(caplog):
    ledger = delivery.reconcile([unconfirmed("opened", "n1")], Finder({}, LookupUnavailable("missing_scope")), "r5")
    [event] = ledger.events
    assert event.event is NoticeEvent.FAILED and "missing_scope" in (event.detail or "")
    assert ledger.repeat_warning == {"c"}
    assert "cannot be looked for in Slack (missing_scope)" in caplog.text


def test_unknown_outcomes_are_journaled_as_unknown_never_as_failed():
    class Flaky(RecordingNotifier):
        def send(self, notice: Notice) -> Sent:
            raise DeliveryUnknown("no answer")

    check = Check(name="c", sql="SELECT 1")
    notice = Notice(
        kind=NoticeKind.OPENED,
        check=check,
        result=CheckResult("c", "rows", Status.ALERT),
        ref=None,
        since=T0,
        failing_runs=1,
        problem="x",
        at=T0,
        id="n1",
    )

    class Journal:
        def __init__(self) -> None:
            self.events: list[NoticeRecord] = []

        def append_notices(self, events: list[NoticeRecord]) -> None:
            self.events += events

    store = Journal()
    outcomes = delivery.send([notice], Flaky(), store, "r1")  # type: ignore[arg-type]
    assert outcomes["n1"].event is NoticeEvent.UNKNOWN
    assert [e.event for e in store.events] == [NoticeEvent.ATTEMPT, NoticeEvent.UNKNOWN]


# ---------------------------------------------------------------- any sequence


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Status.OK, Status.ALERT, Status.ERROR]), st.booleans()), max_size=40))
def test_every_failing_period_gets_exactly_one_top_level_message_and_one_closing(runs):
    t = Timeline(renotify_hours=0)
    periods, failing = 0, False
    for status, slack_up in runs:
        t.notifier.down = not slack_up
        t.run(status)
        if status is not Status.OK and not failing:
            periods += 1
        failing = status is not Status.OK
    t.notifier.down = False
    t.run(Status.OK)
    t.run(Status.OK)  # Slack is back and the check is fine: everything owed goes out
    by_incident: dict[str, list[NoticeKind]] = {}
    for notice in t.notifier.sent:
        by_incident.setdefault(notice.incident_id, []).append(notice.kind)
    assert len(by_incident) == periods
    for kinds in by_incident.values():
        assert sum(k in TOP_LEVEL for k in kinds) == 1, kinds
        assert sum(k in CLOSING for k in kinds) == 1, kinds
        assert kinds[0] in TOP_LEVEL and kinds[-1] in CLOSING
    assert t.owed == [] and not t.state.open
