"""Slack actions as pure functions: when a snooze ends, what the clicks mark, and what the lifecycle does with it."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_monitor import delivery, incidents
from anomaly_monitor.actions import SNOOZES, Click, snooze_until
from anomaly_monitor.incidents import Lifecycle, Marks
from anomaly_monitor.models import Action, Check, CheckResult, IncidentEvent, NoticeEvent, Status
from anomaly_monitor.notices import TOP_LEVEL, MessageRef, Notice, NoticeKind, Sent

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=30)
ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})


# ---------------------------------------------------------------- snoozes


@pytest.mark.parametrize(("choice", "hours"), [("1h", 1), ("4h", 4), ("24h", 24)])
def test_a_snooze_for_hours_ends_that_many_hours_later(choice: str, hours: int) -> None:
    assert snooze_until(choice, "Europe/Berlin", T0) == T0 + dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    ("zone", "clicked", "until"),
    [
        ("UTC", "2026-11-23T09:00:00+00:00", "2026-11-24T09:00:00+00:00"),
        ("UTC", "2026-11-23T23:59:00+00:00", "2026-11-24T09:00:00+00:00"),
        ("UTC", "2026-11-24T00:01:00+00:00", "2026-11-25T09:00:00+00:00"),
        # 23:30 in Berlin on the night the clocks go forward: 09:00 CEST the next morning is 07:00 UTC
        ("Europe/Berlin", "2026-03-28T22:30:00+00:00", "2026-03-29T07:00:00+00:00"),
        # the night they go back: 09:00 CET is 08:00 UTC
        ("Europe/Berlin", "2026-10-24T21:00:00+00:00", "2026-10-25T08:00:00+00:00"),
        # already tomorrow in Auckland
        ("Pacific/Auckland", "2026-11-23T12:00:00+00:00", "2026-11-24T20:00:00+00:00"),
    ],
)
def test_until_nine_tomorrow_is_on_the_checks_wall_clock(zone: str, clicked: str, until: str) -> None:
    assert snooze_until("tomorrow", zone, dt.datetime.fromisoformat(clicked)) == dt.datetime.fromisoformat(until)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2999, 12, 30), timezones=st.just(dt.UTC)),
    st.sampled_from(ZONES),
    st.sampled_from(sorted(SNOOZES)),
)
def test_every_snooze_ends_later_and_tomorrows_at_nine_on_the_next_day(at: dt.datetime, zone: str, choice: str) -> None:
    until = snooze_until(choice, zone, at)
    assert until.tzinfo == dt.UTC and at < until <= at + dt.timedelta(hours=48)
    if choice == "tomorrow":
        local = until.astimezone(zoneinfo.ZoneInfo(zone))
        assert local.date() == at.astimezone(zoneinfo.ZoneInfo(zone)).date() + dt.timedelta(days=1)
        assert (local.hour, local.minute) in ((9, 0), (10, 0))  # 10:00 only where 09:00 did not exist that day


def test_a_click_has_one_id_however_often_it_is_delivered() -> None:
    click = Click("late", "C1", "1.000100", Action.SNOOZE, "U0ANA", "1700000001.000200", choice="4h")
    assert (
        click.event_id
        == Click("late", "C1", "1.000100", Action.SNOOZE, "U0ANA", "1700000001.000200", "x", "4h").event_id
    )
    others = [
        Click("late", "C1", "1.000100", Action.SNOOZE, "U0ANA", "1700000001.000300", choice="4h"),  # a second click
        Click("late", "C1", "1.000100", Action.SNOOZE, "U0BOB", "1700000001.000200", choice="4h"),
        Click("late", "C1", "1.000100", Action.SNOOZE, "U0ANA", "1700000001.000200", choice="1h"),
        Click("late", "C2", "1.000100", Action.SNOOZE, "U0ANA", "1700000001.000200", choice="4h"),
    ]
    assert len({click.event_id, *(o.event_id for o in others)}) == 5


# ---------------------------------------------------------------- marks


def event(action: Action, ts: str = "1.0", *, at: dt.datetime = T0, user: str = "U0ANA", **extra) -> IncidentEvent:
    values = dict(until=None, user_name=None, detail=None) | extra
    return IncidentEvent(f"{action}-{ts}-{user}-{at:%H%M}", "late", "C1", ts, action, user_id=user, at=at, **values)


def test_marks_are_those_of_the_open_incidents_message_and_the_checks_newest_snooze() -> None:
    ref = MessageRef("C1", "2.0")
    old_snooze = event(Action.SNOOZE, "1.0", until=T0 + dt.timedelta(hours=1))
    new_snooze = event(Action.SNOOZE, "1.0", at=T0 + STEP, until=T0 + dt.timedelta(hours=4))
    events = [
        event(Action.ACKNOWLEDGE, "1.0"),  # an earlier incident's message
        event(Action.MUTE, "1.0"),
        old_snooze,
        event(Action.ACKNOWLEDGE, "2.0"),
        event(Action.ACKNOWLEDGE, "2.0"),  # the same click, read twice
        event(Action.ACKNOWLEDGE, "2.0", user="U0BOB"),
        new_snooze,
    ]
    marks = incidents.marks(events, ref)
    assert [e.user_id for e in marks.acknowledged] == ["U0ANA", "U0BOB"]
    assert (marks.muted, marks.expected, marks.snooze) == (None, None, new_snooze)
    assert marks.snoozed(T0 + dt.timedelta(hours=3)) and not marks.snoozed(T0 + dt.timedelta(hours=4))
    assert incidents.marks(events, None) == Marks(snooze=new_snooze), "nothing open: only the snooze counts"


# ---------------------------------------------------------------- the lifecycle


class Slack:
    """Stands in for Slack at the boundary: remembers each notice."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []

    def send(self, notice: Notice) -> Sent:
        self.sent.append(notice)
        if notice.kind in TOP_LEVEL:
            ts = f"{len(self.sent)}.0"
            return Sent(ts, MessageRef("C1", ts))
        return Sent(f"{len(self.sent)}.0", notice.ref)


class Timeline:
    """One check through successive runs, with clicks on its current message between them."""

    def __init__(self, **check: object) -> None:
        self.check = Check(name="late", sql="SELECT 1", type="threshold", renotify_hours=1, **check)  # type: ignore[arg-type]
        self.state = Lifecycle()
        self.events: list[IncidentEvent] = []
        self.slack = Slack()
        self.now = T0
        self.runs = 0

    def click(self, action: Action, hours: float | None = None) -> None:
        assert self.state.ref is not None, "only a posted incident has buttons"
        until = self.now + dt.timedelta(hours=hours) if hours is not None else None
        self.events.append(event(action, self.state.ref.ts, at=self.now, until=until, user=f"U{len(self.events)}X"))

    def run(self, status: Status) -> list[NoticeKind]:
        run_id = f"r{self.runs}"
        result = CheckResult(self.check.name, "threshold", status, str(status), check=self.check)
        marks = incidents.marks([e for e in self.events if e.at <= self.now], self.state.ref)
        step = incidents.step(self.check, self.state, result, self.now, run_id, f"r{self.runs - 1}", marks)
        state = step.state
        for notice in step.notices:
            outcome = delivery.Outcome(NoticeEvent.DELIVERED, self.slack.send(notice))
            state = delivery.confirmed(state, notice, outcome, run_id)  # as the runner records a delivered notice
        self.state = state
        self.now += STEP
        self.runs += 1
        return [n.kind for n in step.notices]


def test_acknowledged_no_reminders_but_a_change_and_the_resolve_are_still_told() -> None:
    t = Timeline()
    assert t.run(Status.ALERT) == [NoticeKind.OPENED]
    t.click(Action.ACKNOWLEDGE)
    assert [t.run(Status.ALERT) for _ in range(4)] == [[], [], [], []], "past renotify_hours: still no reminder"
    assert t.run(Status.ERROR) == [NoticeKind.CHANGED]
    assert t.run(Status.OK) == [NoticeKind.RESOLVED]
    assert t.run(Status.ALERT) == [NoticeKind.OPENED], "a new incident is not acknowledged"
    assert [t.run(Status.ALERT) for _ in range(2)] == [[], [NoticeKind.REMINDER]]


def test_muted_nothing_until_it_resolves() -> None:
    t = Timeline()
    t.run(Status.ALERT)
    t.click(Action.MUTE)
    assert [t.run(s) for s in (Status.ALERT, Status.ALERT, Status.ERROR, Status.ALERT)] == [[], [], [], []]
    assert t.run(Status.OK) == [NoticeKind.RESOLVED]


def test_snoozed_no_reminders_and_no_new_incident_until_the_time() -> None:
    t = Timeline()
    t.run(Status.ALERT)
    t.click(Action.SNOOZE, hours=4)  # clicked at T0 + 30 min: until T0 + 4.5 h
    assert [t.run(Status.ALERT) for _ in range(3)] == [[], [], []]
    assert t.run(Status.OK) == [NoticeKind.RESOLVED], "the end of an incident is still told"
    assert [t.run(Status.ALERT) for _ in range(2)] == [[], []], "no new incident while snoozed"
    assert t.run(Status.OK) == [], "one that began and ended within the snooze is never told"
    assert t.run(Status.ALERT) == []  # at T0 + 4 h
    assert t.now == T0 + dt.timedelta(hours=4.5)
    assert t.run(Status.ALERT) == [NoticeKind.OPENED], "the snooze is over and it still fails"


def test_an_incident_held_by_a_snooze_that_outlasts_it_and_could_not_be_posted_is_told_when_it_ends() -> None:
    check = Check(name="late", sql="SELECT 1", type="threshold", renotify_hours=1)
    snooze = event(Action.SNOOZE, "1.0", until=T0 + dt.timedelta(hours=1))
    marks = incidents.marks([snooze], None)
    failing = Lifecycle(incident_id="i2", since=T0, failing_runs=3, status=Status.ALERT, last_run_at=T0 + STEP * 3)
    ok = CheckResult("late", "threshold", Status.OK, "ok", check=check)
    [missed] = incidents.step(check, failing, ok, T0 + STEP * 4, "r9", "r8", marks).notices
    assert missed.kind is NoticeKind.MISSED, "it was due after the snooze (Slack was down): never lost"
    within = Lifecycle(incident_id="i2", since=T0, failing_runs=2, status=Status.ALERT, last_run_at=T0 + STEP)
    assert incidents.step(check, within, ok, T0 + STEP * 4, "r9", "r8", marks).notices == ()


def test_expected_resolves_in_slack_then_stays_quiet_until_ok_and_a_later_failure_is_new() -> None:
    t = Timeline()
    t.run(Status.ALERT)
    t.click(Action.EXPECTED)
    [expected] = t.slack.sent[-1:] if t.run(Status.ALERT) == [NoticeKind.EXPECTED] else [None]
    assert expected is not None and expected.by == "U0X" and expected.ref == MessageRef("C1", "1.0")
    assert t.state.open and t.state.announced is Status.OK
    assert [t.run(s) for s in (Status.ALERT, Status.ERROR, Status.ALERT)] == [[], [], []], "quiet, even a change"
    assert t.run(Status.OK) == [], "already resolved in Slack"
    assert not t.state.open
    assert t.run(Status.ALERT) == [NoticeKind.OPENED]


def test_expected_after_a_mute_or_snooze_still_resolves() -> None:
    t = Timeline()
    t.run(Status.ALERT)
    t.click(Action.MUTE)
    t.click(Action.SNOOZE, hours=10)
    t.run(Status.ALERT)
    t.click(Action.EXPECTED)
    assert t.run(Status.ALERT) == [NoticeKind.EXPECTED]


def test_a_resolved_as_expected_state_round_trips_through_a_history_row() -> None:
    from anomaly_monitor.models import HistoryRecord

    state = Lifecycle("i1", T0, 3, Status.ALERT, "boom", MessageRef("C1", "5.0"), Status.OK, T0 + STEP)
    columns = incidents.columns(state)
    row = HistoryRecord(
        run_id="r1",
        check_name="late",
        checked_at=T0 + STEP,
        status=Status.ALERT,
        value=1.0,
        row_count=None,
        message="boom",
        duration_ms=1,
        bytes_processed=None,
        notified=False,
        slack_channel=columns.pop("slack_channel"),  # type: ignore[arg-type]
        slack_ts=columns.pop("slack_ts"),  # type: ignore[arg-type]
        **columns,  # type: ignore[arg-type]
    )
    assert incidents.from_record(row) == state


ACTIONS = st.sampled_from([None, Action.ACKNOWLEDGE, Action.MUTE, Action.EXPECTED, Action.SNOOZE])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Status.OK, Status.ALERT, Status.ERROR]), ACTIONS), max_size=40))
def test_whatever_is_clicked_the_marks_are_honoured(runs: list[tuple[Status, Action | None]]) -> None:
    t = Timeline()
    for status, action in runs:
        before = t.state
        marks = incidents.marks([e for e in t.events if e.at <= t.now], before.ref)
        now = t.now
        kinds = t.run(status)
        if NoticeKind.OPENED in kinds:
            assert not marks.snoozed(now), "no new incident while snoozed"
        if NoticeKind.REMINDER in kinds:
            assert not (marks.acknowledged or marks.muted or marks.snoozed(now)), "no reminder once acted on"
        if NoticeKind.CHANGED in kinds:
            assert not (marks.muted or marks.snoozed(now) or marks.expected)
        if before.announced is Status.OK:
            assert kinds == [], "marked expected: quiet until the check is ok"
        if status is Status.OK:
            assert not t.state.open
        if action is not None and t.state.open and t.state.ref is not None and t.state.announced is not Status.OK:
            t.click(action, hours=1.5 if action is Action.SNOOZE else None)
    resolved = [n for n in t.slack.sent if n.kind in (NoticeKind.RESOLVED, NoticeKind.EXPECTED)]
    assert len({n.incident_id for n in resolved}) == len(resolved), "an incident is resolved once"
