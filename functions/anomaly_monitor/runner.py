"""One run: read the registry, run the due checks concurrently, judge them, notify, record, publish."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from anomaly_monitor import causes, delivery, incidents
from anomaly_monitor.actions import marked_run
from anomaly_monitor.deadline import run_all
from anomaly_monitor.errors import MonitorError, QueryError, RegistryError, UnknownCheckError
from anomaly_monitor.exclusions import Window, parse_exclusions
from anomaly_monitor.incidents import REGISTRY, Lifecycle
from anomaly_monitor.judge import NO_BASELINE, Baseline, ShapeError, judge, row_limit
from anomaly_monitor.models import (
    GB,
    SAMPLE_ROWS,
    Action,
    Check,
    CheckResult,
    CheckType,
    HistoryRecord,
    IncidentEvent,
    InvalidCheck,
    OpenIncident,
    RunReport,
    Severity,
    Status,
)
from anomaly_monitor.notifiers import Notifier
from anomaly_monitor.readonly import take_parsed
from anomaly_monitor.redact import quote, redact
from anomaly_monitor.registry import Registry, parse_registry
from anomaly_monitor.schedule import is_due, next_tick
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources import CheckSource, StatusPublisher
from anomaly_monitor.state import NO_ROW, StateStore
from anomaly_monitor.warehouses import RunWarehouse, Session

log = logging.getLogger(__name__)

MESSAGE_CHARS = 2000  # of a result's message kept in the history, the JSON and Slack
REGISTRY_CHECK = Check(
    name=REGISTRY,
    sql="",
    severity=Severity.CRITICAL,
    description="The check registry could not be read, so no check ran until it can be read again.",
)


@dataclass(frozen=True)
class RunOptions:
    checks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    force: bool = False
    dry_run: bool = False
    now: dt.datetime | None = None


@dataclass
class Backends:
    """The outside world of a run; built from settings by the doors, or given directly by tests."""

    source: CheckSource
    warehouse: RunWarehouse
    state: StateStore
    notifier: Notifier
    settings: Settings = field(default_factory=Settings)
    publisher: StatusPublisher | None = None  # where statuses are written back (a sheet), if anywhere


def select(registry: Registry, options: RunOptions) -> tuple[list[Check], list[InvalidCheck]]:
    """The checks and invalid rows this run is about (by --check name and --tag)."""
    known = {c.name for c in registry.checks} | {i.name for i in registry.invalid}
    unknown = [name for name in options.checks if name not in known]
    if unknown:
        raise UnknownCheckError(f"no check named {', '.join(repr(n) for n in unknown)} in the registry")
    invalid = [i for i in registry.invalid if i.name in options.checks] if options.checks else registry.invalid
    return [c for c in registry.checks if selected(c, options)], invalid


def selected(check: Check, options: RunOptions) -> bool:
    """Whether --check and --tag select this check."""
    if options.checks and check.name not in options.checks:
        return False
    wanted = {tag.strip().lower() for tag in options.tags}  # registry tags are stored lower-case
    return not wanted or bool(wanted & set(check.tags))


def preparing(warehouse: RunWarehouse, options: RunOptions) -> Callable[[Check], None]:
    """What the registry does with each check as it reads it: the query of a check this run may run is
    readied (translated) at once; the parsed tree of any other is let go."""

    def prepare(check: Check) -> None:
        if check.enabled and selected(check, options):
            warehouse.prepare(check.sql)
        else:
            take_parsed(check.sql)

    return prepare


def evaluate(
    check: Check,
    warehouse: Session,
    settings: Settings,
    now: dt.datetime,
    past_values: list[tuple[dt.datetime, float]] | None = None,
    baseline: Baseline = NO_BASELINE,
) -> CheckResult:
    """Runs and judges one check; whatever goes wrong becomes this check's `error`, never the run's."""
    started = time.monotonic()
    result = CheckResult(check.name, check.type, Status.ERROR, check=check)
    try:
        data = warehouse.query(
            check.sql,
            check_name=check.name,
            limit=row_limit(check),
            timeout_s=settings.query_timeout_s,
            max_bytes=int(check.byte_cap_gb(settings.max_gb_billed) * GB),
            now=now,
        )
        result.bytes_processed = data.bytes_processed
        result.row_count = data.row_count
        result.rows = data.first_rows(SAMPLE_ROWS)  # the document shows the first rows of every check's result
        if check.type is CheckType.ROWS:
            result.export_rows = data.rows if check.export_sheet else []
        verdict = judge(check, data, now, past_values or [], baseline)
        result.status, result.message, result.value = verdict.status, verdict.message, verdict.value
        result.expected, result.band = verdict.expected, verdict.band
        result.series = verdict.series or result.series
    except QueryError as exc:
        result.message, result.cause = str(exc), exc.cause
    except ShapeError as exc:
        result.message = str(exc)
    except Exception as exc:  # one broken check must not stop the others
        log.exception("check %s failed unexpectedly", check.name)
        result.message = f"unexpected {type(exc).__name__}: {exc}"
    result.duration_ms = round((time.monotonic() - started) * 1000)
    return scrubbed(result)


def scrubbed(result: CheckResult) -> CheckResult:
    """No secret leaves in a result, even one the data or a server echoed; messages are capped."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return replace(
        result,
        message=quote(result.message, MESSAGE_CHARS),
        rows=[clean(row) for row in result.rows] if result.rows else result.rows,
        export_rows=[clean(row) for row in result.export_rows] if result.export_rows else result.export_rows,
    )


def evaluate_all(
    backends: Backends,
    due: list[Check],
    now: dt.datetime,
    points: dict[str, list[tuple[dt.datetime, float]]],
    baselines: dict[str, Baseline],
) -> dict[str, CheckResult]:
    """Every due check run and judged, MAX_WORKERS at once (as many as the warehouse can use), each within its
    QUERY_TIMEOUT_S."""
    settings = backends.settings
    tasks = {
        c.name: partial(
            evaluate, c, backends.warehouse, settings, now, points.get(c.name), baselines.get(c.name, NO_BASELINE)
        )
        for c in due
    }
    workers = backends.warehouse.workers(settings.max_workers)
    finished = run_all(tasks, max_workers=workers, timeout_s=settings.query_timeout_s)
    return {c.name: finished[c.name] or timed_out(c, settings.query_timeout_s) for c in due}


def timed_out(check: Check, timeout_s: float) -> CheckResult:
    """A check the run stopped waiting for: its query, fetch and judgement took longer than QUERY_TIMEOUT_S."""
    message = f"timed out after {timeout_s:g} s (QUERY_TIMEOUT_S covers the query, fetching its rows and judging them)"
    return CheckResult(check.name, check.type, Status.ERROR, message, duration_ms=round(timeout_s * 1000), check=check)


def baseline_for(
    check: Check, state: Lifecycle | None, windows: tuple[Window, ...], events: list[IncidentEvent]
) -> Baseline:
    """What an anomaly check's baseline leaves out: the open incident (its range stays the one from before it
    began, until someone marks it Expected), exclusion windows, and values marked Expected."""
    marked = [e for e in events if e.action is Action.EXPECTED]
    open_since = state.since if state is not None and state.open else None
    accepted = state is not None and state.announced is Status.OK  # resolved in Slack as expected
    if open_since is not None and (accepted or any(e.at >= open_since for e in marked)):
        open_since = None  # a person accepted what this incident showed
    spans = tuple((*w.span(check.timezone), w.describe()) for w in windows)
    return Baseline(open_since, spans, tuple(marked_run(e) for e in marked))


def skipped(check: Check, reason: str) -> CheckResult:
    return CheckResult(check.name, check.type, Status.SKIPPED, reason, check=check)


def invalid_result(row: InvalidCheck) -> CheckResult:
    return CheckResult(row.name, row.type, Status.INVALID, row.message)


def record(run_id: str, at: dt.datetime, result: CheckResult, state: Lifecycle, notified: bool) -> HistoryRecord:
    """The history row of a result, carrying the check's alert state forward (an invalid row carries none)."""
    carried = incidents.columns(state) if result.status is not Status.INVALID else {}
    return HistoryRecord.from_result(run_id, at, result, notified=notified, **carried)


def plan(
    checks: list[Check], last_runs: dict[str, dt.datetime], options: RunOptions, now: dt.datetime
) -> tuple[list[Check], dict[str, CheckResult]]:
    """Splits checks into those due now and the skipped ones (disabled, or not due by their schedule)."""
    due: list[Check] = []
    skips: dict[str, CheckResult] = {}
    for check in checks:
        if not check.enabled:
            skips[check.name] = skipped(check, "disabled in the registry")
        elif options.force or is_due(check, last_runs.get(check.name), now):
            due.append(check)
        else:
            when = next_tick(check, now).isoformat(timespec="minutes")
            skips[check.name] = skipped(check, f"not due: next run {when} ({check.schedule}, {check.timezone})")
    return due, skips


# ---------------------------------------------------------------- alert state and delivery


@dataclass
class AlertState:
    """A run's view of the alert state: each check's newest history row, with the delivery journal folded in, and
    what people did from Slack."""

    latest: dict[str, HistoryRecord]
    states: dict[str, Lifecycle]
    ledger: delivery.Ledger
    rows_read: int
    events: dict[str, list[IncidentEvent]] = field(default_factory=dict)

    def based_on(self, name: str) -> str:
        return self.latest[name].run_id if name in self.latest else NO_ROW

    def marks(self, name: str) -> incidents.Marks:
        state = self.states.get(name, Lifecycle())
        return incidents.marks(self.events.get(name, []), state.ref)


def read_alert_state(
    backends: Backends, names: list[str], journal_names: list[str], now: dt.datetime, run_id: str, *, settle: bool
) -> AlertState:
    """The newest row of each check (and of the monitor's own incidents); with `settle`, the journal's pending
    notices too, looked for in Slack when unconfirmed (what was found is journaled at once)."""
    latest = backends.state.latest(names, now)
    committed = {name: row.run_id for name, row in latest.items()}
    pending = []
    if settle:
        pending = backends.state.pending_notices(sorted({*journal_names, *latest}), now, committed)
    ledger = delivery.reconcile(pending, backends.notifier, run_id)
    backends.state.append_notices(ledger.events)
    states: dict[str, Lifecycle] = {}
    for name in {*latest, *ledger.fold}:
        state = incidents.from_record(latest.get(name))
        for event in ledger.fold.get(name, []):
            state = incidents.fold(state, event, committed.get(name, NO_ROW))
        states[name] = state
    events: dict[str, list[IncidentEvent]] = {}
    for action in backends.state.incident_events(sorted({*names, *latest}), now):
        events.setdefault(action.check_name, []).append(action)
    rows_read = len(latest) + len(pending) + sum(map(len, events.values()))
    return AlertState(latest, states, ledger, rows_read, events)


@dataclass
class Announced:
    rows: list[HistoryRecord]
    notified: set[str]  # checks whose news reached Slack in this run (directly or through their group)
    failures: int  # notices not delivered (retried or looked for on a later run)
    open: dict[str, OpenIncident]  # checks with an incident open after the run (their own, or their group's)


def open_incident(state: Lifecycle, marks: incidents.Marks, now: dt.datetime) -> OpenIncident | None:
    """The incident as the status sheet shows it, with who acknowledged, snoozed or muted it; None when there is
    none, or when it was marked expected (Slack shows it resolved)."""
    if not state.open or state.since is None or state.announced is Status.OK:
        return None

    def who(*events: IncidentEvent | None) -> str | None:
        names = [e.user_name or e.user_id for e in events if e is not None]
        return ", ".join(dict.fromkeys(n for n in names if n)) or None

    snooze = marks.snooze if marks.snoozed(now) else None
    return OpenIncident(
        since=state.since,
        acknowledged_by=who(*marks.acknowledged),
        snoozed_by=who(snooze),
        snoozed_until=snooze.until if snooze else None,
        muted_by=who(marks.muted),
    )


def announce(
    backends: Backends,
    alert: AlertState,
    results: list[CheckResult],
    checks: dict[str, Check],
    run_id: str,
    now: dt.datetime,
) -> Announced:
    """Steps every result's incident (grouping shared causes), sends what is due, and returns the history rows."""
    ledger = alert.ledger
    groups, covered = causes.shared_causes(results, alert.states, backends.settings.shared_cause_min_checks)
    members = {g.check.name: g.members for g in groups}
    items = [(r.check, r) for r in results if r.check is not None and r.name not in covered]
    items += [(g.check, g.result) for g in groups]
    steps: dict[str, incidents.Step] = {}
    notices = [delivery.notice_from(r, checks, r.check_name in ledger.repeat_warning) for r in ledger.owed]
    for check, result in items:
        state = alert.states.get(check.name, Lifecycle())
        based_on = alert.based_on(check.name)
        steps[check.name] = incidents.step(check, state, result, now, run_id, based_on, alert.marks(check.name))
        notices += [
            replace(n, members=members.get(check.name, ()), unconfirmed_before=check.name in ledger.repeat_warning)
            for n in steps[check.name].notices
        ]
    go, wait = delivery.held_back(notices, ledger.waiting)
    deferred = [n for n in wait if n.kind in incidents.CLOSING]
    outcomes = delivery.send(go, backends.notifier, backends.state, run_id, deferred)
    delivered = [n for n in go if outcomes[n.id].delivered]
    notified = {n.check.name for n in delivered}
    notified |= {name for name, group in covered.items() if group in notified}

    rows = []
    still_open: dict[str, OpenIncident] = {}
    for check, result in items:
        state = steps[check.name].state
        for notice in delivered:
            if notice.check.name == check.name:
                state = delivery.confirmed(state, notice, outcomes[notice.id], run_id)
        rows.append(record(run_id, now, result, state, check.name in notified))
        shown = open_incident(state, incidents.marks(alert.events.get(check.name, []), state.ref), now)
        if shown is not None:
            still_open[check.name] = shown
    for result in results:
        if result.name in covered:  # its state is carried; its cause says which group told Slack
            state = replace(alert.states.get(result.name, Lifecycle()), cause=result.cause)
            rows.append(record(run_id, now, result, state, result.name in notified))
            if covered[result.name] in still_open:
                still_open[result.name] = still_open[covered[result.name]]
        elif result.check is None and result.status is Status.INVALID:
            rows.append(record(run_id, now, result, Lifecycle(), False))
    failures = len(wait) + sum(not o.delivered for o in outcomes.values())
    return Announced(rows, notified, failures, still_open)


def report_registry_failure(backends: Backends, error: RegistryError, run_id: str, now: dt.datetime) -> None:
    """The `_registry` incident: the registry cannot be read, so the monitor tells Slack itself (once)."""
    try:
        alert = read_alert_state(backends, [], [REGISTRY], now, run_id, settle=True)
        result = CheckResult(REGISTRY, None, Status.ERROR, quote(error, MESSAGE_CHARS), check=REGISTRY_CHECK)
        announced = announce(backends, alert, [result], {}, run_id, now)
        backends.state.append(announced.rows)
    except MonitorError as exc:
        log.error("the registry failure could not be reported in Slack: %s", exc, extra={"run_id": run_id})


# ---------------------------------------------------------------- the run


def run(backends: Backends, options: RunOptions) -> RunReport:
    """The whole run; raises MonitorError only when the run itself cannot happen.

    A run holds the state store's run lock from reading the history to recording its results, so an
    overlapping or retried invocation waits, then sees what the other one ran and notified: no check runs
    twice for one schedule tick and no notice goes out twice. A dry run records nothing and takes no lock."""
    run_id = uuid.uuid4().hex[:12]
    with (
        nullcontext() if options.dry_run else backends.state.run_lock(run_id),
        backends.warehouse.session() as warehouse,  # connections reused from check to check
    ):
        return _run(replace(backends, warehouse=warehouse), options, run_id)


def _run(backends: Backends, options: RunOptions, run_id: str) -> RunReport:
    settings = backends.settings
    now = options.now or dt.datetime.now(dt.UTC)  # taken once the lock is held
    clock = time.monotonic()
    try:
        prepare = preparing(backends.warehouse, options)
        registry = parse_registry(backends.source.read_rows(), settings.worksheets, prepare)
    except RegistryError as exc:
        if not options.dry_run:
            if backends.publisher is not None:
                backends.publisher.publish_problem(str(exc), now)  # where the sheet's readers look
            report_registry_failure(backends, exc, run_id, now)
        raise
    checks, invalid = select(registry, options)
    enabled = [c.name for c in checks if c.enabled]
    alert = read_alert_state(backends, enabled, [c.name for c in checks], now, run_id, settle=not options.dry_run)
    # the state as of `now`: a run recorded later (an earlier --now in the future) does not silence the check
    last_runs = {name: row.checked_at for name, row in alert.latest.items()}
    due, skips = plan(checks, last_runs, options, now)
    single_values = [c.name for c in due if c.type is CheckType.ANOMALY]
    points = backends.state.points(single_values, now) if single_values else {}
    state_rows_read = alert.rows_read + sum(len(p) for p in points.values())
    # exclusion windows only change anomaly judgements: no request for them when no anomaly check is due
    exclusions = parse_exclusions(backends.source.read_exclusions() if single_values else [])
    baselines = {
        name: baseline_for(check, alert.states.get(name), exclusions.for_check(name), alert.events.get(name, []))
        for check in due
        if (name := check.name) in single_values
    }
    log.info(
        "run %s: %d checks due, %d skipped, %d invalid",
        run_id,
        len(due),
        len(skips),
        len(invalid),
        extra={"run_id": run_id},
    )

    evaluated = evaluate_all(backends, due, now, points, baselines)
    rows = [(c.row_number, evaluated.get(c.name) or skips[c.name]) for c in checks]
    rows += [(i.row_number, invalid_result(i)) for i in invalid]
    results = [result for _, result in sorted(rows, key=lambda pair: pair[0])]
    del rows, evaluated
    results += exclusions.invalid_results()  # a bad exclusion row is reported like a bad registry row
    for r in results:
        fields = {"run_id": run_id, "check": r.name, "status": str(r.status), "duration_ms": r.duration_ms}
        log.info("check %s: %s (%s)", r.name, r.status, r.message, extra=fields)

    failures = 0
    if not options.dry_run:
        recorded = [r for r in results if r.status is not Status.SKIPPED]
        if alert.states.get(REGISTRY, Lifecycle()).open:  # the registry reads again: its incident resolves
            recorded.append(CheckResult(REGISTRY, None, Status.OK, "the registry reads again", check=REGISTRY_CHECK))
        announced = announce(backends, alert, recorded, {c.name: c for c in checks}, run_id, now)
        backends.state.append(announced.rows)
        failures = announced.failures
        for r in results:  # in place: a run of thousands of checks holds one result each
            if r.status is not Status.INVALID:  # an invalid row is never told (even one repeating a valid name)
                r.notified, r.incident = r.name in announced.notified, announced.open.get(r.name)
        del announced
    finished_at = now + dt.timedelta(seconds=time.monotonic() - clock)
    report = RunReport(run_id, now, finished_at, results, failures)
    if backends.publisher is not None and not options.dry_run:
        backends.publisher.publish(report)
    summary = report.summary()
    duration_ms = round((time.monotonic() - clock) * 1000)
    counts = ", ".join(f"{n} {status}" for status, n in summary.items() if n)
    log.info(
        "run %s finished in %d ms: %s",
        run_id,
        duration_ms,
        counts or "no checks",
        extra={
            "event": "run_finished",
            "run_id": run_id,
            "summary": summary,
            "duration_ms": duration_ms,
            "delivery_failures": failures,
            "state_rows_read": state_rows_read,
        },
    )
    return report
