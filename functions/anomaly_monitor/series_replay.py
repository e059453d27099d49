"""A series anomaly check replayed over many ticks from a few queries: each tick sees the trailing window of rows
that its own query would have returned.

A series query (`ts, value`, one row per period) usually reads a window that trails the clock: "the 14 days up to
the current hour". Queried at a few anchor ticks whose windows overlap, it gives the series for the whole span
once; a tick in between then sees the rows from `lo` to `hi` periods before the period it falls in, `lo` and
`hi` measured at the anchors. The replay only answers when that rule reproduces every anchor's own answer exactly
and the anchors agree on every period they share (a value that depends on when it was asked, such as a partial
current period, makes them differ); otherwise the backtest queries every tick.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from anomaly_monitor.errors import QueryError
from anomaly_monitor.judge import ShapeError, parse_ts
from anomaly_monitor.models import Check, CheckType, QueryResult
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses import Warehouse

ANCHOR_OVERLAP = 0.25  # share of a window that consecutive anchors both read: where their answers are compared

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
        self.answers = [{**row, "ts": ts} for ts, row in rows]
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

    def session(self) -> AbstractContextManager[SeriesReplay]:
        return nullcontext(self)


def parsed(result: QueryResult) -> Rows | None:
    """The rows of a series result sorted by ts as the judgement sorts them (stable), or None if it is no series."""
    if not {"ts", "value"} <= set(result.columns) or not result.rows:
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
    check: Check, warehouse: Warehouse, settings: Settings, ticks: Sequence[dt.datetime], max_bytes: int | None
) -> SeriesReplay | None:
    """A replay of a series anomaly check over `ticks`, or None when its ticks must each be queried."""
    if check.type is not CheckType.ANOMALY or len(ticks) < 3:
        return None
    answers: dict[dt.datetime, Rows] = {}

    def ask(tick: dt.datetime) -> tuple[list[str], Rows] | None:
        try:
            result = warehouse.query(
                check.sql, check_name=check.name, limit=None, timeout_s=settings.query_timeout_s,
                max_bytes=max_bytes, now=tick,
            )  # fmt: skip
        except QueryError:
            return None
        rows = parsed(result)
        return None if rows is None else (result.columns, rows)

    last = ask(ticks[-1])
    if last is None or (regular := grid(last[1])) is None:
        return None
    columns, answers[ticks[-1]] = last
    step, phase = regular
    window = measured(step, phase, answers)
    span = (window.lo - window.hi) * step
    anchors = anchor_ticks(ticks, span)
    if len(anchors) * 2 > len(ticks):
        return None  # the windows are short against the ticks' spacing: querying each tick costs about as much
    for tick in anchors[1:]:
        answer = ask(tick)
        if answer is None or answer[0] != columns:
            return None
        answers[tick] = answer[1]
    window = measured(step, phase, answers)
    merged = merge(answers)
    if merged is None:
        return None
    replay = SeriesReplay(check.sql, columns, merged, window, len(anchors))
    if any(replay.select(tick) != rows for tick, rows in answers.items()):
        return None
    probes = late_probes(replay, ticks[-1])
    for moment in probes:
        answer = ask(moment)
        if answer is None or answer[0] != columns or replay.select(moment) != answer[1]:
            return None
    replay.queries += len(probes)
    return replay


def late_probes(replay: SeriesReplay, last_tick: dt.datetime) -> list[dt.datetime]:
    """Moments just before a period ends, when a first or current period cut at the clock would differ most from a
    whole one: a query that reads one would show it there, even if no anchor happened to. Periods are chosen
    whose window starts and ends on periods with rows."""
    window, present = replay.window, set(replay.times)
    ends = [
        ts + window.step - dt.timedelta(seconds=1)
        for ts in sorted(present)
        if ts - window.lo * window.step in present and ts + window.step - dt.timedelta(seconds=1) <= last_tick
    ]
    return sorted({ends[len(ends) // 2], ends[-1]}) if ends else []


def measured(step: dt.timedelta, phase: dt.datetime, answers: dict[dt.datetime, Rows]) -> Window:
    """The window that covers every answer: the oldest row any anchor reached back to, the newest it came up to."""
    probe = Window(step, phase, 0, 0)
    lo = max((probe.period(tick) - rows[0][0]) // step for tick, rows in answers.items())
    hi = min((probe.period(tick) - rows[-1][0]) // step for tick, rows in answers.items())
    return Window(step, phase, lo, hi)


def merge(answers: dict[dt.datetime, Rows]) -> Rows | None:
    """One series from the anchors' answers; None when two answers disagree about a period."""
    by_time: dict[dt.datetime, list[dict[str, Any]]] = {}
    for rows in answers.values():
        seen: dict[dt.datetime, list[dict[str, Any]]] = {}
        for ts, row in rows:
            seen.setdefault(ts, []).append(row)
        for ts, group in seen.items():
            if by_time.setdefault(ts, group) != group:
                return None
    return [(ts, row) for ts in sorted(by_time) for row in by_time[ts]]
