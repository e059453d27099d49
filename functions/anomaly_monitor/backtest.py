"""Backtest: what a check would have said. One check replayed over past ticks, each judged as a dry run at that
tick would judge it, with the alert lifecycle simulated across them to count what the channel would have seen.
Nothing is posted or recorded; the state store is only read, to seed single-value anomaly checks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from anomaly_monitor import delivery, incidents, series_replay
from anomaly_monitor.delivery import Outcome
from anomaly_monitor.errors import ConfigError, QueryError
from anomaly_monitor.exclusions import Window
from anomaly_monitor.judge import NO_BASELINE
from anomaly_monitor.lookahead import lookahead_note
from anomaly_monitor.models import GB, Check, CheckResult, CheckType, HistoryRecord, NoticeEvent, QueryResult, Status
from anomaly_monitor.notices import Notice, NoticeKind, Sent
from anomaly_monitor.runner import baseline_for, evaluate, record
from anomaly_monitor.schedule import ticks as cron_ticks
from anomaly_monitor.settings import Settings
from anomaly_monitor.state import NO_ROW, POINTS_LIMIT, StateStore
from anomaly_monitor.warehouses import Session, Warehouse

log = logging.getLogger(__name__)

DEFAULT_EVERY = "0 * * * *"  # a check without a schedule runs at every invocation: replayed hourly
DEFAULT_DAYS = 30
MAX_TICKS = 10_000
EARLIEST_YEAR = 1970  # as for --now
JUDGED = (Status.OK, Status.ALERT)  # the results whose values a run reads back as a check's earlier values


@dataclass(frozen=True)
class BacktestOptions:
    check: str
    start: dt.datetime
    end: dt.datetime
    every: str | None = None  # cron of the ticks; None: the check's schedule, else hourly
    sensitivities: tuple[float, ...] = ()  # anomaly checks: one replay per value; none: the check's own


@dataclass
class Point:
    """One tick's verdict."""

    at: dt.datetime
    status: Status
    value: float | None
    expected: tuple[float | None, float | None] | None
    message: str

    def to_json(self) -> dict[str, Any]:
        expected = list(self.expected) if self.expected is not None else None
        return {"at": self.at.isoformat(), "status": str(self.status), "value": self.value, "expected": expected,
                "message": self.message}  # fmt: skip

    @property
    def excess(self) -> float:
        """How far the value lies outside its expected range (a rows check: its row count)."""
        if self.value is None:
            return -1.0
        if self.expected is None:
            return self.value
        low, high = self.expected
        return max(low - self.value if low is not None else 0.0, self.value - high if high is not None else 0.0)


@dataclass
class ReplayedIncident:
    """An incident as the channel would have seen it: from its opening message to its resolved note."""

    opened_at: dt.datetime
    message: str  # why it opened
    failing: list[Point]  # its failing runs, those before the opening message included
    notices: int = 0
    resolved_at: dt.datetime | None = None

    @property
    def peak(self) -> Point | None:
        judged = [p for p in self.failing if p.value is not None]
        return max(judged, key=lambda p: p.excess) if judged else None

    def to_json(self) -> dict[str, Any]:
        peak = self.peak
        return {
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "failing_runs": len(self.failing),
            "notices": self.notices,
            "peak_value": peak.value if peak else None,
            "message": self.message,
        }


@dataclass
class Replay:
    """The whole span replayed at one sensitivity (None: rows and threshold checks)."""

    sensitivity: float | None
    points: list[Point] = field(default_factory=list)
    incidents: list[ReplayedIncident] = field(default_factory=list)
    notices: int = 0

    def summary(self) -> dict[str, int]:
        counts = {str(s): sum(p.status is s for p in self.points) for s in (Status.OK, Status.ALERT, Status.ERROR)}
        return {**counts, "incidents": len(self.incidents), "notices": self.notices}

    def to_json(self) -> dict[str, Any]:
        return {
            "sensitivity": self.sensitivity,
            "points": [p.to_json() for p in self.points],
            "incidents": [i.to_json() for i in self.incidents],
            "summary": self.summary(),
        }


@dataclass
class Backtest:
    name: str
    type: str | None
    start: dt.datetime
    end: dt.datetime
    ticks: list[dt.datetime]
    every: str
    runs: list[Replay] = field(default_factory=list)
    queries: int = 0  # sent to the warehouse
    message: str | None = None  # why the check could not be replayed

    def to_json(self) -> dict[str, Any]:
        document = {"check": self.name, "type": self.type, "from": self.start.isoformat(), "to": self.end.isoformat(),
                    "ticks": len(self.ticks), "runs": [r.to_json() for r in self.runs]}  # fmt: skip
        return document | ({"message": self.message} if self.message else {})

    def exit_code(self) -> int:
        """0 when the replay ran; 2 when the check is invalid or its query failed at every tick."""
        points = [p for run in self.runs for p in run.points]
        return 2 if self.message or not points or all(p.status is Status.ERROR for p in points) else 0


# A notice as a notifier without message ids (the terminal) confirms it: the replay assumes every one got out.
DELIVERED = Outcome(NoticeEvent.DELIVERED, Sent(None, None))


class Channel:
    """The product's own lifecycle over the replayed ticks, with every notice delivered: what the check's Slack
    channel would have received. Each result goes through the step a run takes (incidents.step, then each
    notice confirmed as the runner confirms a delivered one, then the history row the run records) and the
    next tick starts from what a run would read back from that row. The backtest's one seam with the
    lifecycle, so the replay follows it whenever it changes."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.row: HistoryRecord | None = None  # the newest row a run would have recorded

    def feed(self, result: CheckResult, at: dt.datetime) -> tuple[Notice, ...]:
        """The notices this result calls for; the state it leaves is carried to the next tick."""
        run_id = f"backtest-{at.isoformat()}"
        based_on = self.row.run_id if self.row else NO_ROW
        step = incidents.step(self.check, incidents.from_record(self.row), result, at, run_id, based_on)
        state = step.state
        for notice in step.notices:
            state = delivery.confirmed(state, notice, DELIVERED, run_id)
        self.row = record(run_id, at, result, state, notified=bool(step.notices))
        return step.notices


class Replayer:
    """One sensitivity's replay: its own judged values (after those seeded from the state store) and its own
    channel."""

    def __init__(self, check: Check, sensitivity: float | None, seed: list[tuple[dt.datetime, float]]) -> None:
        self.check = check if sensitivity is None else replace(check, sensitivity=sensitivity)
        self.replay = Replay(sensitivity)
        self.values = deque(seed, maxlen=POINTS_LIMIT)  # as many as a run reads back (StateStore.points)
        self.channel = Channel(self.check)
        self.open: ReplayedIncident | None = None

    def past(self) -> list[tuple[dt.datetime, float]]:
        """What a run at the next tick would read back as the check's earlier values."""
        return list(self.values)

    def step(self, result: CheckResult, at: dt.datetime) -> None:
        point = Point(at, result.status, result.value, result.expected, result.message)
        points = self.replay.points
        points.append(point)
        notices = self.channel.feed(result, at)
        if result.status in JUDGED and result.value is not None:
            self.values.append((at, result.value))
        if self.open and result.status in incidents.FAILING:
            self.open.failing.append(point)
        for notice in notices:
            self.replay.notices += 1
            if notice.kind is NoticeKind.OPENED:
                failing = [p for p in points if p.at >= notice.since and p.status in incidents.FAILING]
                self.open = ReplayedIncident(at, notice.problem, failing)
                self.replay.incidents.append(self.open)
            if self.open:
                self.open.notices += 1
                if notice.kind in incidents.CLOSING:
                    self.open.resolved_at, self.open = at, None


class OneTickAnswers:
    """Each sensitivity replays a tick from the same answer: the query is asked once per tick, not once per value."""

    def __init__(self, warehouse: Session) -> None:
        self.warehouse = warehouse
        self.asked: tuple[str, dt.datetime] | None = None
        self.answer: QueryResult | QueryError | None = None
        self.queries = 0

    def query(self, sql: str, *, now: dt.datetime, **options: Any) -> QueryResult:
        if self.asked != (sql, now):
            self.queries += 1
            try:
                self.answer = self.warehouse.query(sql, now=now, **options)
            except QueryError as exc:
                self.answer = exc
            self.asked = (sql, now)
        if isinstance(self.answer, QueryError):
            raise self.answer
        assert self.answer is not None
        return self.answer

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        return self.warehouse.dry_run(sql, check_name=check_name, now=now)


def resolve_span(
    start: dt.datetime | None, end: dt.datetime | None, days: int | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """--from, --to and --days as a span: by default the 30 days up to now; --days counts back from --to (or on
    from --from). ConfigError (a bad option) when they contradict each other."""
    if days is not None and start is not None and end is not None:
        raise ConfigError("--days cannot be combined with both --from and --to: give two of the three")
    length = dt.timedelta(days=days if days is not None else DEFAULT_DAYS)
    until = "--to" if end is not None else "now (the default --to)"
    if end is None:
        end = start + length if start is not None and days is not None else now
    if start is None:
        start = end - length
    if start >= end:
        raise ConfigError(f"--from {start.isoformat()} is not before {until} {end.isoformat()}")
    if start.year < EARLIEST_YEAR:
        raise ConfigError(f"the span would start on {start.date()}, before {EARLIEST_YEAR}: give fewer --days")
    return start, end


def plan_ticks(check: Check, options: BacktestOptions) -> tuple[str, list[dt.datetime]]:
    """The cron of the ticks and the ticks themselves; ConfigError (a bad option) when there are none or too many."""
    every = options.every or check.schedule or DEFAULT_EVERY
    timezone = check.timezone
    ticks = cron_ticks(every, timezone, options.start, options.end, MAX_TICKS)
    span = f"from {options.start.isoformat()} to {options.end.isoformat()}"
    if not ticks:
        raise ConfigError(f"no tick of {every!r} ({timezone}) {span}: widen the span or choose ticks with --every")
    if len(ticks) > MAX_TICKS:
        raise ConfigError(
            f"more than {MAX_TICKS:,} ticks of {every!r} {span}: thin them with --every or shorten the span"
        )
    return every, ticks


def check_budget(check: Check, warehouse: Session, settings: Settings, ticks: list[dt.datetime]) -> None:
    """Estimates the bytes the ticks' queries would scan (dry runs of the first, middle and last tick, as if every
    tick were queried) and refuses the backtest above max_gb_billed × ticks. Warehouses that cannot estimate
    (SQLite) pass."""
    samples = sorted({ticks[0], ticks[len(ticks) // 2], ticks[-1]})
    scanned = [warehouse.dry_run(check.sql, check_name=check.name, now=tick) for tick in samples]
    known = [b for b in scanned if b is not None]
    if not known:
        return
    cap_gb = check.byte_cap_gb(settings.max_gb_billed)
    estimate, budget = max(known) * len(ticks), cap_gb * GB * len(ticks)
    if estimate > budget:
        raise ConfigError(
            f"check {check.name}: its {len(ticks):,} ticks would scan about {estimate / GB:,.1f} GB, above "
            f"max_gb_billed × ticks = {budget / GB:,.1f} GB: thin the ticks with --every (e.g. --every "
            f"'0 7 * * *' for one a day) or raise the check's max_gb_billed"
        )


def seed_points(check: Check, state: StateStore, first_tick: dt.datetime) -> list[tuple[dt.datetime, float]]:
    """A single-value anomaly check's judged values as they stood before the first tick (the store is only read)."""
    before = first_tick - dt.timedelta(microseconds=1)  # the replay's own ticks take over from the first one
    return state.points([check.name], before).get(check.name, [])


def run_backtest(
    check: Check,
    warehouse: Warehouse,
    state: StateStore,
    settings: Settings,
    options: BacktestOptions,
    windows: tuple[Window, ...] = (),
) -> Backtest:
    """Replays `check` over the ticks of the options, once per sensitivity (its exclusion windows honoured as a
    run honours them). Raises ConfigError for a bad option."""
    if options.sensitivities and check.type is not CheckType.ANOMALY:
        raise ConfigError(f"--sensitivity applies to anomaly checks; {check.name} is a {check.type} check")
    every, ticks = plan_ticks(check, options)
    backtest = Backtest(check.name, str(check.type), options.start, options.end, ticks, every)
    note = lookahead_note(check.sql)
    if note:
        log.warning("backtest of %s: %s", check.name, note, extra={"check": check.name})
    with warehouse.session() as session:
        try:
            check_budget(check, session, settings, ticks)
        except QueryError as exc:
            backtest.message = f"its query fails: {exc}"
            return backtest
        cap = int(check.byte_cap_gb(settings.max_gb_billed) * GB)
        series = series_replay.build(check, session, settings, ticks, cap)
        seed = seed_points(check, state, ticks[0]) if check.type is CheckType.ANOMALY and not series else []
        answers = OneTickAnswers(series or session)
        # an anomaly check without --sensitivity is replayed, and reported, at its own
        own = (check.sensitivity,) if check.type is CheckType.ANOMALY else (None,)
        replayers = [Replayer(check, s, seed) for s in options.sensitivities or own]
        for tick in ticks:
            for replayer in replayers:
                # an open incident is judged against its pre-incident range, as in a run
                lifecycle = incidents.from_record(replayer.channel.row)
                anomaly = check.type is CheckType.ANOMALY
                baseline = baseline_for(replayer.check, lifecycle, windows, []) if anomaly else None
                result = evaluate(replayer.check, answers, settings, tick, replayer.past(), baseline or NO_BASELINE)
                replayer.step(result, tick)
    backtest.runs = [r.replay for r in replayers]
    backtest.queries = series.queries if series else answers.queries
    how = f"the series fetched in {series.queries} queries" if series else f"{answers.queries} queries"
    log.info("backtest of %s: %d ticks of %r, %s", check.name, len(ticks), every, how, extra={"check": check.name})
    return backtest
