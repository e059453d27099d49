"""A series anomaly check replayed over many ticks from a few queries: each tick sees the trailing window of rows
that its own query would have returned.

A series query (`ts, value`, one row per period) usually reads a window that trails the clock: "the 14 days up to
the current hour". Queried at a few anchor ticks whose windows overlap, it gives the series for the whole span
once; a tick in between then sees the rows from `lo` to `hi` periods before the period it falls in, `lo` and
`hi` measured from the rows the answers hold. Rows cannot tell an empty first or last period from one outside the
window, nor a window cut at the clock from one cut at a period's start, so a few probes are asked where either
would show (see `probes`), again with the window they imply, until they add nothing. The replay only answers when
that rule reproduces every answer exactly and the answers agree on every period they share (a value that depends
on when it was asked, such as a partial current period, makes them differ); otherwise the backtest queries every
tick.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anomaly_monitor.errors import QueryError
from anomaly_monitor.judge import ShapeError, parse_ts
from anomaly_monitor.models import Check, CheckType, QueryResult
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses import Session

ANCHOR_OVERLAP = 0.25  # share of a window that consecutive anchors both read: where their answers are compared
PROBE_ROUNDS = 4  # rounds of probes, each after the window the previous answers imply, before querying every tick

Rows = list[tuple[dt.datetime, dict[str, Any]]]  # (parsed ts, row), sorted by ts


@dataclass(frozen=True)
class Window:
    """The periods a tick sees: from `lo` to `hi` steps before the start of the period the tick falls in."""

    step: dt.timedelta
    phase: dt.datetime  # the start of some period: periods start at phase + k * step
    lo: int
    hi: int

    def period(self, moment: dt.datetime) -> dt.datetime:
        return self.phase + self.step * ((moment - self.phase) // self.step)

    def bounds(self, tick: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        start = self.period(tick)
        return start - self.lo * self.step, start - self.hi * self.step


class SeriesReplay:
    """Answers the check's query at any tick of the span from the rows its anchors returned (see module doc)."""

    def __init__(self, sql: str, columns: list[str], rows: Rows, window: Window, queries: int) -> None:
        self.sql = sql
        self.columns = columns
        self.rows = rows
        self.times = [ts for ts, _ in rows]
        # ts already parsed (parse_ts returns a parsed time as it is): the same judgement, without parsing each
        # row again at every tick
        self.answers = [tuple(ts if c == "ts" else row[c] for c in columns) for ts, row in rows]
        self.window = window
        self.queries = queries  # it took

    def indexes(self, tick: dt.datetime) -> slice:
        first, last = self.window.bounds(tick)
        return slice(bisect.bisect_left(self.times, first), bisect.bisect_right(self.times, last))

    def select(self, tick: dt.datetime) -> Rows:
        return self.rows[self.indexes(tick)]

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None = None,
        now: dt.datetime,
    ) -> QueryResult:
        if sql != self.sql:
            raise ValueError(f"this replay answers the query of check {check_name} only")
        rows = self.answers[self.indexes(now)]
        return QueryResult(self.columns, rows if limit is None else rows[:limit], len(rows))

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        return 0


def parsed(result: QueryResult) -> Rows | None:
    """The rows of a series result sorted by ts as the judgement sorts them (stable), or None if it is no series."""
    if not {"ts", "value"} <= set(result.columns):
        return None
    try:
        rows = [(parse_ts(row["ts"]), row) for row in result.rows]
    except ShapeError:
        return None
    return sorted(rows, key=lambda pair: pair[0])


def grid(rows: Rows) -> tuple[dt.timedelta, dt.datetime] | None:
    """The step and phase of a series whose timestamps all lie on one regular grid (hours, days, weeks...)."""
    times = sorted({ts for ts, _ in rows})
    steps = [b - a for a, b in itertools.pairwise(times)]
    if not steps:
        return None
    step = min(steps)
    if any((ts - times[0]) % step for ts in times):
        return None
    return step, times[0]


def anchor_ticks(ticks: Sequence[dt.datetime], span: dt.timedelta) -> list[dt.datetime]:
    """From the last tick back to the first, ticks whose windows (`span` long) overlap by ANCHOR_OVERLAP or more."""
    spacing = span * (1 - ANCHOR_OVERLAP)
    indexes = [len(ticks) - 1]
    while indexes[-1] > 0:
        newest = indexes[-1]
        earliest_overlapping = bisect.bisect_left(ticks, ticks[newest] - spacing, hi=newest)
        indexes.append(min(earliest_overlapping, newest - 1))
    return [ticks[i] for i in indexes]


def build(
    check: Check, warehouse: Session, settings: Settings, ticks: Sequence[dt.datetime], max_bytes: int | None
) -> SeriesReplay | None:
    """A replay of a series anomaly check over `ticks`, or None when its ticks must each be queried."""
    if check.type is not CheckType.ANOMALY or len(ticks) < 3:
        return None

    def ask(moment: dt.datetime) -> tuple[list[str], Rows] | None:
        try:
            result = warehouse.query(
                check.sql, check_name=check.name, limit=None, timeout_s=settings.query_timeout_s,
                max_bytes=max_bytes, now=moment,
            )  # fmt: skip
        except QueryError:
            return None
        rows = parsed(result)
        return None if rows is None else (result.columns, rows)

    last = ask(ticks[-1])
    if last is None:
        return None
    columns, rows = last
    answers = {ticks[-1]: rows}
    replay = assemble(check.sql, columns, answers)
    if replay is None:
        return None
    anchors = anchor_ticks(ticks, (replay.window.lo - replay.window.hi) * replay.window.step)
    if len(anchors) * 2 > len(ticks):
        return None  # the windows are short against the ticks' spacing: querying each tick costs about as much
    moments = anchors[1:]
    for _ in range(1 + PROBE_ROUNDS):
        for moment in moments:
            answer = ask(moment)
            if answer is None or answer[0] != columns:
                return None
            answers[moment] = answer[1]
        replay = assemble(check.sql, columns, answers)
        if replay is None:
            return None
        moments = [moment for moment in probes(replay, ticks[0], ticks[-1]) if moment not in answers]
        if not moments:
            return replay
    return None  # each round of probes found the window wider still: a window this unsteady is not worth chasing


def assemble(sql: str, columns: list[str], answers: dict[dt.datetime, Rows]) -> SeriesReplay | None:
    """The replay the answers so far imply: one series on one grid, with the window that covers every answer; None
    when they disagree about a period or the rule does not give some answer back exactly."""
    merged = merge(answers)
    regular = grid(merged) if merged else None
    if regular is None:
        return None
    replay = SeriesReplay(sql, columns, merged, measured(*regular, answers), len(answers))
    return None if any(replay.select(moment) != rows for moment, rows in answers.items()) else replay


def probes(replay: SeriesReplay, first_tick: dt.datetime, last_tick: dt.datetime) -> list[dt.datetime]:
    """Moments of the span whose answers show whether the window rule holds, two at each end of the window.

    The answers so far cannot tell an empty first (last) period from one outside the window: at the start (end) of
    a period, a window one period longer reaches back (on) to a row, so the query there shows it. And a window cut
    at the clock rather than at a period's start cuts its first (last) period most at the end (start) of a period:
    the query there misses most of a period with rows that the rule reads whole.
    """
    times, step, second = replay.times, replay.window.step, dt.timedelta(seconds=1)
    lo, hi = replay.window.lo * step, replay.window.hi * step

    def latest_row(until: dt.datetime) -> dt.datetime | None:
        i = bisect.bisect_right(times, until)
        return times[i - 1] if i else None

    def earliest_row(since: dt.datetime) -> dt.datetime | None:
        i = bisect.bisect_left(times, since)
        return times[i] if i < len(times) else None

    wanted = [
        (latest_row(last_tick - lo - step), lo + step),  # one period before the window: read at a period's start
        (earliest_row(first_tick + second - hi), hi - second),  # one period after it: read at a period's end
        (latest_row(last_tick + second - lo - step), lo + step - second),  # its first period, at a period's end
        (latest_row(last_tick - hi), hi),  # its last period, at a period's start
    ]
    moments = {row + offset for row, offset in wanted if row is not None}
    return sorted(moment for moment in moments if first_tick <= moment <= last_tick)


def measured(step: dt.timedelta, phase: dt.datetime, answers: dict[dt.datetime, Rows]) -> Window:
    """The window that covers every answer: the oldest row any answer reached back to, the newest it came up to."""
    probe = Window(step, phase, 0, 0)
    lo = max((probe.period(moment) - rows[0][0]) // step for moment, rows in answers.items() if rows)
    hi = min((probe.period(moment) - rows[-1][0]) // step for moment, rows in answers.items() if rows)
    return Window(step, phase, lo, hi)


def merge(answers: dict[dt.datetime, Rows]) -> Rows:
    """One series from the answers; empty when two of them disagree about a period."""
    by_time: dict[dt.datetime, list[dict[str, Any]]] = {}
    for rows in answers.values():
        seen: dict[dt.datetime, list[dict[str, Any]]] = {}
        for ts, row in rows:
            seen.setdefault(ts, []).append(row)
        for ts, group in seen.items():
            if by_time.setdefault(ts, group) != group:
                return []
    return [(ts, row) for ts in sorted(by_time) for row in by_time[ts]]
