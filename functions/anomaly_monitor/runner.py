"""One run: read the registry, run the due checks concurrently, judge them, notify, record, publish."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

from anomaly_monitor import incidents
from anomaly_monitor.errors import QueryError, RegistryError, UnknownCheckError
from anomaly_monitor.exclusions import Window, parse_exclusions
from anomaly_monitor.judge import NO_BASELINE, Baseline, ShapeError, judge, row_limit
from anomaly_monitor.models import (
    GB,
    SAMPLE_ROWS,
    Check,
    CheckResult,
    CheckType,
    HistoryRecord,
    IncidentEvent,
    InvalidCheck,
    RunReport,
    Status,
)
from anomaly_monitor.notifiers import Notifier
from anomaly_monitor.registry import Registry, parse_registry
from anomaly_monitor.schedule import is_due, next_tick
from anomaly_monitor.settings import Settings
from anomaly_monitor.sources import CheckSource
from anomaly_monitor.state import StateStore
from anomaly_monitor.warehouses import Warehouse

log = logging.getLogger(__name__)

JUDGED = (Status.OK, Status.ALERT)  # results whose value is a measurement (single-value anomaly history)
HISTORY_LIMIT = 1000  # records per check read back: incidents, schedules and single-value anomaly history


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
    warehouse: Warehouse
    state: StateStore
    notifier: Notifier
    settings: Settings = field(default_factory=Settings)


def select(registry: Registry, options: RunOptions) -> tuple[list[Check], list[InvalidCheck]]:
    """The checks and invalid rows this run is about (by --check name and --tag)."""
    known = {c.name for c in registry.checks} | {i.name for i in registry.invalid}
    unknown = [name for name in options.checks if name not in known]
    if unknown:
        raise UnknownCheckError(f"no check named {', '.join(repr(n) for n in unknown)} in the registry")
    checks, invalid = registry.checks, registry.invalid
    if options.checks:
        checks = [c for c in checks if c.name in options.checks]
        invalid = [i for i in invalid if i.name in options.checks]
    if options.tags:
        wanted = {tag.strip().lower() for tag in options.tags}  # registry tags are stored lower-case
        checks = [c for c in checks if wanted & set(c.tags)]
    return checks, invalid


def evaluate(
    check: Check,
    warehouse: Warehouse,
    settings: Settings,
    now: dt.datetime,
    past: list[HistoryRecord],
    baseline: Baseline = NO_BASELINE,
) -> CheckResult:
    """Runs and judges one check; whatever goes wrong becomes this check's `error`, never the run's."""
    started = time.monotonic()
    result = CheckResult(check.name, str(check.type), Status.ERROR, check=check)
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
        if check.type is CheckType.ROWS:
            result.rows = data.rows[:SAMPLE_ROWS]
            result.export_rows = data.rows if check.export_sheet else []
        past_values = [(r.checked_at, r.value) for r in past if r.value is not None and r.status in JUDGED]
        verdict = judge(check, data, now, past_values, baseline)
        result.status, result.message, result.value = verdict.status, verdict.message, verdict.value
        result.expected, result.series, result.band = verdict.expected, verdict.series or [], verdict.band
    except (QueryError, ShapeError) as exc:
        result.message = str(exc)
    except Exception as exc:  # one broken check must not stop the others
        log.exception("check %s failed unexpectedly", check.name)
        result.message = f"unexpected {type(exc).__name__}: {exc}"
    result.duration_ms = round((time.monotonic() - started) * 1000)
    return result


def baseline_for(
    check: Check, past: list[HistoryRecord], windows: tuple[Window, ...], events: list[IncidentEvent]
) -> Baseline:
    """What an anomaly check's baseline leaves out: the open incident (its range stays the one from before it
    began, until someone marks it Expected), exclusion windows, and values marked Expected."""
    expected = tuple(e.at for e in events if e.action == "expected")
    incident = incidents.current_incident(past)
    failing = incident.failing
    open_since = failing[0].checked_at if failing and incident.records[-1].status in incidents.FAILING else None
    if open_since is not None and any(at >= open_since for at in expected):
        open_since = None  # a person accepted what this incident showed
    spans = tuple((*w.span(check.timezone), w.describe()) for w in windows)
    return Baseline(open_since, spans, expected)


def skipped(check: Check, reason: str) -> CheckResult:
    return CheckResult(check.name, str(check.type), Status.SKIPPED, reason, check=check)


def invalid_result(row: InvalidCheck) -> CheckResult:
    return CheckResult(row.name, "rows", Status.INVALID, row.message)


def record(run_id: str, at: dt.datetime, result: CheckResult) -> HistoryRecord:
    return HistoryRecord(
        run_id=run_id,
        check_name=result.name,
        checked_at=at,
        status=result.status,
        value=result.value,
        row_count=result.row_count,
        message=result.message,
        duration_ms=result.duration_ms,
        bytes_processed=result.bytes_processed,
        notified=result.notified,
        slack_channel=result.slack_channel,
        slack_ts=result.slack_ts,
    )


def plan(
    checks: list[Check], history: dict[str, list[HistoryRecord]], options: RunOptions, now: dt.datetime
) -> tuple[list[Check], dict[str, CheckResult]]:
    """Splits checks into those due now and the skipped ones (disabled, or not due by their schedule)."""
    due: list[Check] = []
    skips: dict[str, CheckResult] = {}
    for check in checks:
        # a run recorded after `now` (an earlier --now in the future) does not silence the check until then
        last_run = max((r.checked_at for r in history.get(check.name, []) if r.checked_at <= now), default=None)
        if not check.enabled:
            skips[check.name] = skipped(check, "disabled in the registry")
        elif options.force or is_due(check, last_run, now):
            due.append(check)
        else:
            when = next_tick(check, now).isoformat(timespec="minutes")
            skips[check.name] = skipped(check, f"not due: next run {when} ({check.schedule}, {check.timezone})")
    return due, skips


def run(backends: Backends, options: RunOptions) -> RunReport:
    """The whole run; raises MonitorError only when the run itself cannot happen.

    A run holds the state store's run lock from reading the history to recording its results, so an
    overlapping or retried invocation waits, then sees what the other one ran and notified: no check runs
    twice for one schedule tick and no notice goes out twice. A dry run records nothing and takes no lock."""
    run_id = uuid.uuid4().hex[:12]
    with nullcontext() if options.dry_run else backends.state.run_lock(run_id):
        return _run(backends, options, run_id)


def _run(backends: Backends, options: RunOptions, run_id: str) -> RunReport:
    settings = backends.settings
    now = options.now or dt.datetime.now(dt.UTC)  # taken once the lock is held
    clock = time.monotonic()
    try:
        rows = backends.source.read_rows()
    except RegistryError as exc:
        if not options.dry_run:
            backends.source.publish_problem(str(exc), now)  # where the sheet's readers look
        raise
    checks, invalid = select(parse_registry(rows), options)
    names = [c.name for c in checks] + [i.name for i in invalid]
    history = backends.state.history(names, limit=HISTORY_LIMIT)
    due, skips = plan(checks, history, options, now)
    exclusions = parse_exclusions(backends.source.read_exclusions())
    anomaly_checks = [c.name for c in due if c.type is CheckType.ANOMALY]
    events = backends.state.events(anomaly_checks) if anomaly_checks else {}
    baselines = {
        c.name: baseline_for(c, history.get(c.name, []), exclusions.for_check(c.name), events.get(c.name, []))
        for c in due
        if c.type is CheckType.ANOMALY
    }
    log.info(
        "run %s: %d checks due, %d skipped, %d invalid",
        run_id,
        len(due),
        len(skips),
        len(invalid),
        extra={"run_id": run_id},
    )

    with ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="check") as pool:
        futures = {
            c.name: pool.submit(
                evaluate,
                c,
                backends.warehouse,
                settings,
                now,
                history.get(c.name, []),
                baselines.get(c.name, NO_BASELINE),
            )
            for c in due
        }
        evaluated = {name: f.result() for name, f in futures.items()}
    rows = [(c.row_number, evaluated.get(c.name) or skips[c.name]) for c in checks]
    rows += [(i.row_number, invalid_result(i)) for i in invalid]
    results = [result for _, result in sorted(rows, key=lambda pair: pair[0])]
    results += exclusions.invalid_results()  # a bad exclusion row is reported like a bad registry row
    for r in results:
        fields = {"run_id": run_id, "check": r.name, "status": str(r.status), "duration_ms": r.duration_ms}
        log.info("check %s: %s (%s)", r.name, r.status, r.message, extra=fields)

    failures = 0
    if not options.dry_run:
        failures = incidents.deliver(results, history, backends.notifier, now)
        backends.state.append([record(run_id, now, r) for r in results if r.status is not Status.SKIPPED])
    finished_at = now + dt.timedelta(seconds=time.monotonic() - clock)
    report = RunReport(run_id, now, finished_at, results, failures)
    if not options.dry_run:
        backends.source.publish(report)
    summary = report.summary()
    duration_ms = round((time.monotonic() - clock) * 1000)
    counts = ", ".join(f"{n} {status}" for status, n in summary.items() if n)
    log.info(
        "run %s finished in %d ms: %s",
        run_id,
        duration_ms,
        counts or "no checks",
        extra={"run_id": run_id, "summary": summary, "duration_ms": duration_ms, "delivery_failures": failures},
    )
    return report
