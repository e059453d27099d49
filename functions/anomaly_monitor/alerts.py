"""The alert body: what a notice says, built once, neutral of any transport.

Block Kit (notifiers/blocks.py) and the terminal (report.py) are two pure renderers of an `Alert`; every word
and number a person reads is chosen here, with the formatting of `display`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from anomaly_monitor.display import clip, count, duration, moment, number, value_range
from anomaly_monitor.models import Check, CheckResult, CheckType, Severity, Status
from anomaly_monitor.notices import REGISTRY, Notice, NoticeKind

MARKERS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
ERROR_MARKER = "⚠️"
REMINDER_MARKER = "⏰"
RESOLVED_MARKER = "✅"
QUOTE_CHARS = 500  # a failing message quoted in a lead line


@dataclass(frozen=True)
class Header:
    """The alert's title: a marker, then its severity or state in words, then what it is about."""

    marker: str
    words: tuple[str, ...]  # ("Critical",), ("Warning", "Query error"), ("Resolved",)
    subject: str  # the check's name, "3 checks could not run", "The check registry cannot be read"

    @property
    def text(self) -> str:
        return f"{self.marker} {' · '.join(self.words)} · {self.subject}"


@dataclass(frozen=True)
class Lead:
    """What a thread reply is about, before its evidence: "⏰ Still failing since …"."""

    marker: str
    headline: str
    detail: str
    by: str | None = None  # the Slack user whose click it tells of (marked expected)


@dataclass(frozen=True)
class Measure:
    """The judged value beside the range it was expected in, both already formatted."""

    value: str
    expected: str


@dataclass(frozen=True)
class Rows:
    """The first rows a rows check found, and how many there were in all."""

    rows: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class QueryFailure:
    """The query did not give a result: the error, shown as it came."""

    error: str


Evidence = Measure | Rows | QueryFailure


@dataclass(frozen=True)
class Link:
    title: str  # what it is: "Runbook"
    url: str
    text: str  # what a reader clicks: "open the runbook"


@dataclass(frozen=True)
class Actions:
    """What a person can do about an open incident from its message (SPEC "Slack actions"): acknowledge, snooze
    (until a time in the check's time zone), mute until resolved and, where a value is judged, mark it expected."""

    check_name: str
    timezone: str
    expected: bool  # threshold and anomaly checks: "this value is normal"


@dataclass(frozen=True, kw_only=True)
class Alert:
    kind: NoticeKind
    status: Status  # of this run's result; a closing notice's: the failing status of the incident it closes
    header: Header
    summary: str  # one plain line: notification previews, screen readers, logs
    reason: str  # why it alerts (for RESOLVED: what it was)
    lead: Lead | None = None  # thread replies: what changed in the incident
    description: str | None = None
    evidence: Evidence | None = None
    owners: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    context: tuple[str, ...] = ()  # small facts: when it ran, since when it fails, what kind of check
    members: tuple[str, ...] = ()  # a grouped incident: the checks that failed for its one cause
    since: dt.datetime | None = None  # the incident's first failing run
    actions: Actions | None = None  # offered on the incident's message while it is open


def header(check: Check, status: Status, members: tuple[str, ...] = ()) -> Header:
    severity = str(check.severity).capitalize()
    if check.name == REGISTRY:
        return Header(ERROR_MARKER, (severity,), "The check registry cannot be read")
    if members:  # a grouped incident: one shared cause
        return Header(ERROR_MARKER, (severity,), f"{count(len(members), 'check')} could not run")
    if status is Status.ERROR:
        return Header(ERROR_MARKER, (severity, "Query error"), check.name)
    return Header(MARKERS[check.severity], (severity,), check.name)


def finding(result: CheckResult, members: tuple[str, ...] = ()) -> tuple[str, Evidence | None]:
    """The reason and the evidence for it: the value and its range, or the first rows, or the error."""
    if result.status is Status.ERROR:
        if result.name == REGISTRY:
            return "The registry could not be read, so no check ran", QueryFailure(result.message)
        if members:
            return "Their queries did not give a result, so their data was not checked", QueryFailure(result.message)
        return "The query did not give a result, so the data was not checked", QueryFailure(result.message)
    if result.rows and result.type == CheckType.ROWS:
        return result.message, Rows(list(result.rows), max(result.row_count or 0, len(result.rows)))
    if result.expected is not None:
        value = number(result.value) if result.value is not None else "no value"
        return result.message, Measure(value, value_range(*result.expected))
    return result.message, None


def facts(check: Check, result: CheckResult) -> list[str]:
    parts = []
    if check.type is CheckType.ROWS and result.row_count is not None and result.status is Status.ALERT:
        parts.append(count(result.row_count, "row"))
    if check.sql:  # the monitor's own incidents (registry, grouped causes) are no check of a type
        parts.append(f"{check.type} check")
    return [*parts, f"severity {check.severity}"]


def runs(n: int) -> str:
    return count(n, "run")


def actions_for(check: Check) -> Actions:
    return Actions(check.name, check.timezone, check.type in (CheckType.THRESHOLD, CheckType.ANOMALY))


def for_result(result: CheckResult, check: Check, at: dt.datetime) -> Alert:
    """A failing result on its own, as a new incident would show it (the terminal's report)."""
    reason, evidence = finding(result)
    top = header(check, result.status)
    return Alert(
        kind=NoticeKind.OPENED,
        status=result.status,
        header=top,
        summary=f"{top.text}: {result.message}",
        reason=reason,
        description=check.description,
        evidence=evidence,
        owners=check.owners,
        links=(Link("Runbook", check.runbook, "open the runbook"),) if check.runbook else (),
        context=(f"Run {moment(at)}", *facts(check, result)),
        actions=actions_for(check),
    )


def for_notice(notice: Notice) -> Alert:
    """The alert a notice carries; each transport renders the parts its kind calls for."""
    check, result, at, since = notice.check, notice.result, notice.at, notice.since
    alert = for_result(result, check, at)
    top = header(check, result.status, notice.members)
    reason, evidence = finding(result, notice.members)
    alert = dataclasses.replace(
        alert,
        header=top,
        summary=f"{top.text}: {result.message}",
        reason=reason,
        evidence=evidence,
        members=notice.members,
        since=since,
    )
    failing = runs(notice.failing_runs)
    run_context = (f"Run {moment(at)}", f"failing since {moment(since)} ({failing})", *facts(check, result))
    if notice.kind is NoticeKind.OPENED:
        return dataclasses.replace(alert, context=run_context)
    if notice.kind is NoticeKind.REMINDER:
        return dataclasses.replace(
            alert,
            kind=notice.kind,
            lead=Lead(
                REMINDER_MARKER, "Still failing", f"since {moment(since)}: {failing}, {duration(since, at)} so far."
            ),
            summary=f"{check.name} still failing since {moment(since)} ({failing}): {result.message}",
            context=(),
        )
    if notice.kind is NoticeKind.CHANGED:
        if result.status is Status.ERROR:
            lead = Lead(ERROR_MARKER, "Now failing to run", "(until now it was a data alert).")
            summary = f"{check.name} now fails to run: {result.message}"
        else:
            headline = "Runs again, and the data still fails the check"
            lead = Lead(MARKERS[check.severity], headline, "(it was a query error).")
            summary = f"{check.name} runs again and still alerts: {result.message}"
        return dataclasses.replace(alert, kind=notice.kind, lead=lead, summary=summary, context=run_context)
    if notice.kind is NoticeKind.MISSED:
        until = notice.until or at
        span = f"{moment(since)} to {moment(until)}"
        return dataclasses.replace(
            alert,
            kind=notice.kind,
            status=notice.status,
            header=Header(RESOLVED_MARKER, ("Resolved",), check.name),
            lead=Lead(
                "",
                f"Failed from {span}",
                f"({failing}, {duration(since, until)}) while Slack was unreachable; it is ok again.",
            ),
            summary=f"{RESOLVED_MARKER} {check.name} failed from {span} while Slack was unreachable: {notice.problem}",
            reason=notice.problem,
            evidence=None,
            context=(),
        )
    lasted = f"{failing} ({duration(since, at)})"
    if notice.kind is NoticeKind.EXPECTED or (notice.kind is NoticeKind.RESOLVED and notice.by):
        said = [f"resolved after {lasted}."]
        if notice.kind is NoticeKind.EXPECTED:  # still failing: quiet until ok (RESOLVED: it is ok already)
            said.append("The check stays quiet until it is ok again.")
        if check.type is CheckType.ANOMALY:
            said.append("Its value is left out of the check's baseline from now on.")
        return dataclasses.replace(
            alert,
            kind=notice.kind,
            status=notice.status,
            header=Header(RESOLVED_MARKER, ("Resolved",), check.name),
            lead=Lead(RESOLVED_MARKER, "Marked expected", " ".join(said), by=notice.by),
            summary=f"{check.name} marked expected: resolved after {failing}",
            reason=notice.problem,
            evidence=None,
            context=(f"Failing since {moment(since)}", f"marked expected {moment(at)}", f"after {lasted}"),
        )
    return dataclasses.replace(
        alert,
        kind=notice.kind,
        status=notice.status,
        header=Header(RESOLVED_MARKER, ("Resolved",), check.name),
        lead=Lead(RESOLVED_MARKER, "Resolved", f"after {lasted}: {clip(result.message, QUOTE_CHARS)}"),
        summary=f"{check.name} resolved after {lasted}",
        reason=notice.problem,
        evidence=None,
        context=(f"Failing since {moment(since)}", f"cleared {moment(at)}", f"after {lasted}"),
    )
