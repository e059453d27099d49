"""Which period of a series is judged: the newest complete one as of the run, and whether rows are missing.

A `GROUP BY` period query returns no row for a period in which nothing happened, so the newest row is not
always the newest period. The series' step is inferred from its timestamps (`ts` labels a period by its start,
as TIMESTAMP_TRUNC and DATE do); the newest complete period is the last one that ended by the run's time, or
by the query's own upper bound on `ts` when it has one (`WHERE ts <= '2025-10-16'`: later periods were not
asked for, so they are not missing). Then:

- dense series (a row for nearly every period): missing newest periods are an alert, "no data since ...";
- sparse counts (empty periods common, non-negative integers): an empty period is a zero, and is judged;
- gappy measurements (empty periods common, not counts): a gap alerts only when longer than any in the history.

A newest row whose period is still in progress is not judged (the previous, complete period is).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

DENSE = 0.9  # share of periods with a row above which a series is dense: an empty period is news
STEP_SAMPLE = 200  # the step is the most common gap between the newest timestamps
_DATE_LITERAL = re.compile(r"'\d{4}-\d{2}-\d{2}")
_SIMPLE_BOUND = re.compile(r"\bWHERE\b[^;]*?\bts\s*(<=|<)\s*'([^']+)'(?![^;]*\b(?:OR|GROUP|HAVING|UNION)\b)", re.I)

Points = Sequence[tuple[dt.datetime, float | None]]


@dataclass(frozen=True)
class Periods:
    """The series to judge and what is missing at its end."""

    points: list[tuple[dt.datetime, float | None]]  # in-progress period dropped; sparse counts zero-filled
    missing: int = 0  # complete periods without a row after the newest row (0 when judged as zero)
    step: dt.timedelta | None = None
    last_row: dt.datetime | None = None
    expected_last: dt.datetime | None = None  # the newest complete period that was asked for


def infer_step(times: Sequence[dt.datetime]) -> dt.timedelta | None:
    """The most common positive gap between consecutive timestamps; None for fewer than three, or months."""
    recent = times[-STEP_SAMPLE:]
    gaps = Counter(b - a for a, b in itertools.pairwise(recent) if b > a)
    if len(recent) < 3 or not gaps:
        return None
    step = gaps.most_common(1)[0][0]
    if step >= dt.timedelta(days=28):  # months and quarters are not a fixed step
        return None
    return step


def complete_periods(points: Points, now: dt.datetime, bound: tuple[dt.datetime, bool] | None = None) -> Periods:
    """The series (sorted by time) up to its newest complete period as of `now` (and the query's bound on ts)."""
    ordered = list(points)
    step = infer_step([t for t, _ in ordered])
    if step is None:
        return Periods(ordered)
    done = [p for p in ordered if p[0] + step <= now]  # a period still in progress is not judged
    if not done:
        return Periods(ordered[:0], step=step)
    last = done[-1][0]
    missing = 0
    while _asked_and_complete(last + (missing + 1) * step, step, now, bound):
        missing += 1
    if not missing:
        return Periods(done, 0, step, last, last)
    expected_last = last + missing * step
    history = [t for t, _ in done]
    slots = (history[-1] - history[0]) // step + 1
    if len(history) >= DENSE * slots:
        return Periods(done, missing, step, last, expected_last)
    values = [v for _, v in done if v is not None]
    if values and all(v >= 0 and v == int(v) for v in values):
        return Periods(_zero_filled(done, step, expected_last), 0, step, last, expected_last)
    longest = max(((b - a) // step - 1 for a, b in itertools.pairwise(history)), default=0)
    return Periods(done, missing if missing > longest else 0, step, last, expected_last)


def _asked_and_complete(start: dt.datetime, step: dt.timedelta, now: dt.datetime,
                        bound: tuple[dt.datetime, bool] | None) -> bool:  # fmt: skip
    if start + step > now:
        return False
    if bound is None:
        return True
    limit, inclusive = bound
    return start <= limit if inclusive else start < limit


def _zero_filled(points: list[tuple[dt.datetime, float | None]], step: dt.timedelta,
                 until: dt.datetime) -> list[tuple[dt.datetime, float | None]]:  # fmt: skip
    """A count series with a zero for every empty period (on the grid of its newest row), up to `until`."""
    filled: dict[dt.datetime, float | None] = {}
    last = points[-1][0]
    for t, v in points:
        filled[t] = v
    keep = len(points) * 2  # enough for any history a judgement uses; never an unbounded grid
    first = max(points[0][0], last - keep * step)
    t = last
    while t - step >= first:
        t -= step
        filled.setdefault(t, 0.0)
    t = last
    while t + step <= until:
        t += step
        filled[t] = 0.0
    return sorted(filled.items())


def upper_bound(sql: str) -> tuple[dt.datetime, bool] | None:
    """When the query bounds `ts` (or the column `ts` is computed from) from above by a literal: that time, and
    whether it is inclusive (`<=`). Periods after it are outside what was asked, not missing."""
    if not _DATE_LITERAL.search(sql):
        return None
    simple = _SIMPLE_BOUND.search(sql)  # the common form, `ts <= '2025-10-16'`, without a parser
    if simple and len(_DATE_LITERAL.findall(sql)) == 1:
        moment = iso_time(simple.group(2))
        if moment is not None:
            return moment, simple.group(1) == "<="
    return _upper_bound(sql)


@functools.lru_cache(maxsize=1024)
def _upper_bound(sql: str) -> tuple[dt.datetime, bool] | None:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        statement = sqlglot.parse_one(sql, read="bigquery")
    except SqlglotError:
        return None
    finally:
        logger.setLevel(previous)
    if not isinstance(statement, exp.Select) or not statement.args.get("where"):
        return None
    ts = next((e for e in statement.expressions if e.alias_or_name.lower() == "ts"), None)
    if ts is None:
        return None
    columns = {c.name.lower() for c in ts.find_all(exp.Column)} | {"ts"}
    bounds = []
    for condition in statement.args["where"].this.flatten() if isinstance(statement.args["where"].this, exp.And) \
            else [statement.args["where"].this]:  # fmt: skip
        bounds += _bounds_in(condition, columns)
    return min(bounds, key=lambda b: (b[0], b[1])) if bounds else None


def _bounds_in(condition: object, columns: set[str]) -> list[tuple[dt.datetime, bool]]:
    from sqlglot import exp

    def column(node: object) -> bool:
        return isinstance(node, exp.Column) and node.name.lower() in columns

    pairs = []
    if isinstance(condition, exp.LT | exp.LTE) and column(condition.this):
        pairs.append((condition.expression, isinstance(condition, exp.LTE)))
    elif isinstance(condition, exp.GT | exp.GTE) and column(condition.expression):
        pairs.append((condition.this, isinstance(condition, exp.GTE)))
    elif isinstance(condition, exp.Between) and column(condition.this):
        pairs.append((condition.args.get("high"), True))
    out = []
    for literal, inclusive in pairs:
        moment = _literal_time(literal)
        if moment is not None:
            out.append((moment, inclusive))
    return out


def _literal_time(node: object) -> dt.datetime | None:
    from sqlglot import exp

    while isinstance(node, exp.Cast | exp.TsOrDsToDate | exp.Anonymous) and node.this is not None:
        node = node.this
    if not isinstance(node, exp.Literal) or not node.is_string:
        return None
    return iso_time(node.this)


@functools.lru_cache(maxsize=65536)  # checks over one table share their timestamps: each is parsed once
def iso_time(text: str) -> dt.datetime | None:
    """ISO-8601 text (`Z` too) as an aware time, UTC when it names no offset; None when it is not one."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
