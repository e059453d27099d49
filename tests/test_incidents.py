"""The alert lifecycle derived from history: open once, stay quiet, remind, note changes, resolve, retry."""

from __future__ import annotations

import datetime as dt

from anomaly_monitor.errors import DeliveryError
from anomaly_monitor.incidents import deliver
from anomaly_monitor.models import Check, CheckResult, HistoryRecord, Status
from anomaly_monitor.notices import MessageRef, Notice, NoticeKind

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)


class RecordingNotifier:
    """Stands in for Slack at the boundary: remembers each notice, can be switched off."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []
        self.down = False

    def send(self, notice: Notice) -> MessageRef | None:
        if self.down:
            raise DeliveryError("Slack is unreachable")
        self.sent.append(notice)
        return notice.ref or MessageRef("C1", f"{len(self.sent)}.000")


class Timeline:
    """Runs one check through successive statuses, keeping the history as the runner would."""

    def __init__(self, **check: object) -> None:
        self.check = Check(name="late_settle", sql="SELECT 1", **check)
        self.history: list[HistoryRecord] = []
        self.notifier = RecordingNotifier()
        self.now = T0

    def run(self, status: Status, message: str = "") -> CheckResult:
        result = CheckResult(self.check.name, "rows", status, message or str(status), check=self.check)
        failures = deliver([result], {self.check.name: list(self.history)}, self.notifier, self.now)
        assert failures == 0 or self.notifier.down
        self.history.append(HistoryRecord.from_result("r", self.now, result))
        self.now += STEP
        return result

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.notifier.sent]


def test_first_failing_run_opens_one_incident_then_stays_quiet():
    t = Timeline()
    t.run(Status.OK)
    first = t.run(Status.ALERT)
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert first.notified and (first.slack_channel, first.slack_ts) == ("C1", "1.000")
    assert all(r.slack_ts == "1.000" for r in t.history[1:]), "every record of the incident points at its message"


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
    assert resolved.failing_runs == 2
    assert resolved.since == T0


def test_alert_after_waits_for_consecutive_failures():
    t = Timeline(alert_after=3)
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    t.run(Status.OK)  # the streak is broken: nothing was ever announced, nothing to resolve
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
    assert not missed.notified
    t.notifier.down = False
    t.run(Status.ALERT)
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert t.notifier.sent[0].failing_runs == 2


def test_undelivered_resolution_is_retried():
    t = Timeline()
    t.run(Status.ALERT)
    t.notifier.down = True
    t.run(Status.OK)
    t.notifier.down = False
    t.run(Status.OK)
    t.run(Status.OK)
    assert t.kinds() == [NoticeKind.OPENED, NoticeKind.RESOLVED]


def test_failing_again_before_the_resolution_was_delivered_continues_the_incident():
    t = Timeline()
    t.run(Status.ALERT)
    t.notifier.down = True
    t.run(Status.OK)
    t.notifier.down = False
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
    assert t.history[-1].slack_ts == "1.000"


def test_a_second_run_reading_the_same_history_does_not_open_twice():
    t = Timeline()
    t.run(Status.ALERT)
    # an overlapping run that decides after the first one recorded its delivery
    late = CheckResult(t.check.name, "rows", Status.ALERT, "again", check=t.check)
    deliver([late], {t.check.name: list(t.history)}, t.notifier, t.now)
    assert t.kinds() == [NoticeKind.OPENED]
    assert not late.notified and late.slack_ts == "1.000"


def test_invalid_rows_neither_open_nor_resolve():
    t = Timeline()
    t.run(Status.ALERT)
    t.history.append(
        HistoryRecord.from_result("r", t.now, CheckResult(t.check.name, "rows", Status.INVALID, "bad row"))
    )
    t.run(Status.ALERT)
    assert t.kinds() == [NoticeKind.OPENED]
