"""How numbers, ranges, times and tables read wherever a person sees them: verdicts, alerts, the terminal.

One place, so a check's message, its Slack fields and the terminal say the same thing the same way.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any


def number(value: float) -> str:
    """A value for people: whole numbers without decimals ("12", "1,234"), others with two ("371.16"), small
    ones to four significant digits ("0.01234"); never "12.0", and an exponent only beyond 10^15."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if abs(value) >= 1e15:
        return f"{value:.4g}"  # beyond any count: "1.235e+20"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"


def value_range(low: float | None, high: float | None) -> str:
    """A band in words: "5 to 10", "at most 10", "at least 5", or "any value" when neither side is bounded."""
    if low is not None and high is not None:
        return f"{number(low)} to {number(high)}"
    if low is not None:
        return f"at least {number(low)}"
    if high is not None:
        return f"at most {number(high)}"
    return "any value"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count(n: int, noun: str) -> str:
    """ "1 row", "1,024 rows"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def moment(at: dt.datetime) -> str:
    """A time as alerts show it: UTC, to the minute."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(start: dt.datetime, end: dt.datetime, *, compact: bool = False) -> str:
    """ "45 min", "3 h 5 min", "2 d 1 h"; compact, for a table's column: "45m", "3h 5m", "2d 1h"."""
    minutes = max(0, round((end - start).total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    d, h, m = ("d", "h", "m") if compact else (" d", " h", " min")
    if days:
        return f"{days}{d} {hours}{h}" if hours else f"{days}{d}"
    if hours:
        return f"{hours}{h} {minutes}{m}" if minutes else f"{hours}{h}"
    return f"{minutes}{m}"


# ---------------------------------------------------------------- tables


def cell(value: Any, width: int = 40) -> str:
    """One table cell on one line: floats as `number`, NULL for None, cut to `width`."""
    text = number(value) if isinstance(value, float) else "NULL" if value is None else str(value)
    return clip(" ".join(text.split()), width)


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
