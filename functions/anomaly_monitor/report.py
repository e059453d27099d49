"""What a person reads in the terminal: the summary table and each alert as Slack would show it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anomaly_monitor.judge import expected_range, fmt
from anomaly_monitor.models import CheckResult, RunReport, Status

MARKS = {Status.OK: "ok", Status.ALERT: "ALERT", Status.ERROR: "ERROR", Status.INVALID: "INVALID"}


def cell(value: Any, width: int = 40) -> str:
    text = fmt(value) if isinstance(value, float) else "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def numeric_column(values: Sequence[Any]) -> bool:
    """Numbers, perhaps with NULLs: right-aligned."""
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, width: int = 40) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned), each cell cut to `width`."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[cell(row.get(c), width) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [numeric_column([row.get(c) for row in rows]) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def measure(result: CheckResult) -> str:
    if result.type == "rows" and result.row_count is not None:
        return f"{result.row_count:,} row{'' if result.row_count == 1 else 's'}"
    return fmt(result.value) if result.value is not None else ""


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
    return f"{text_table(rows, width=70)}\n\nrun {report.run_id}: {counts}"


def render_alert(result: CheckResult) -> str:
    """One alert as a block of terminal text: what the Slack message says, without Slack."""
    check = result.check
    level = "QUERY ERROR" if result.status is Status.ERROR else str(check.severity).upper() if check else "WARNING"
    title = f"[{level}] {result.name}"
    lines = [title, "=" * len(title)]
    if check and check.description:
        lines.append(check.description)
    lines.append(result.message)
    if result.expected is not None:
        lines.append(f"value {fmt(result.value)}, expected {expected_range(result.expected)}")
    if result.rows:
        lines += ["", text_table(result.rows)]
        if result.row_count and result.row_count > len(result.rows):
            lines.append(f"… and {result.row_count - len(result.rows):,} more rows")
    if check and check.owners:
        lines.append("owners: " + ", ".join(check.owners))
    if check and check.runbook:
        lines.append("runbook: " + check.runbook)
    return "\n".join(lines)


def render_report(report: RunReport) -> str:
    alerts = [r for r in report.results if r.status in (Status.ALERT, Status.ERROR)]
    parts = [summary_table(report)]
    parts += [render_alert(r) for r in alerts]
    return "\n\n".join(parts) + "\n"
