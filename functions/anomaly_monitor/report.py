"""What a person reads in the terminal: the summary table and each alert as Slack would show it."""

from __future__ import annotations

from anomaly_monitor.alerts import Alert, Measure, QueryFailure, Rows, for_result
from anomaly_monitor.display import count, number, text_table
from anomaly_monitor.models import CheckResult, CheckType, RunReport, Status

MARKS = {Status.OK: "ok", Status.ALERT: "ALERT", Status.ERROR: "ERROR", Status.INVALID: "INVALID"}


def measure(result: CheckResult) -> str:
    if result.type == CheckType.ROWS and result.row_count is not None:
        return count(result.row_count, "row")
    return number(result.value) if result.value is not None else ""


def summary_table(report: RunReport) -> str:
    rows = [
        {
            "check": r.name,
            "type": r.type,
            "status": MARKS.get(r.status, str(r.status)),
            "value": measure(r),
            "ms": r.duration_ms if r.status not in (Status.SKIPPED, Status.INVALID) else "",
            "message": r.message,
        }
        for r in report.results
    ]
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    if not rows:  # an empty registry, or --check/--tag selecting nothing
        return f"run {report.run_id}: no checks"
    return f"{text_table(rows, width=70)}\n\nrun {report.run_id}: {counts}"


def render_alert(alert: Alert) -> str:
    """One alert as a block of terminal text: what the Slack message says, without Slack."""
    title = f"[{' · '.join(alert.header.words).upper()}] {alert.header.subject}"
    lines = [title, "=" * len(title)]
    if alert.description:
        lines.append(alert.description)
    evidence = alert.evidence
    if isinstance(evidence, QueryFailure):
        lines += [f"{alert.reason}:", *("    " + line for line in evidence.error.splitlines())]
    else:
        lines.append(alert.reason)
    if isinstance(evidence, Measure):
        lines.append(f"value {evidence.value}, expected {evidence.expected}")
    if isinstance(evidence, Rows) and evidence.rows:
        lines += ["", text_table(evidence.rows)]
        if evidence.total > len(evidence.rows):
            lines.append(f"… and {count(evidence.total - len(evidence.rows), 'more row')}")
    if alert.members:
        lines.append("checks: " + ", ".join(alert.members))
    if alert.owners:
        lines.append("owners: " + ", ".join(alert.owners))
    lines += [f"{link.title.lower()}: {link.url}" for link in alert.links]
    if alert.context:
        lines.append(" · ".join(alert.context))
    return "\n".join(lines)


def render_report(report: RunReport) -> str:
    alerts = [
        for_result(r, r.check, report.started_at)
        for r in report.results
        if r.status in (Status.ALERT, Status.ERROR) and r.check is not None
    ]
    return "\n\n".join([summary_table(report), *(render_alert(a) for a in alerts)]) + "\n"
