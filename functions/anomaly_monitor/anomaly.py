"""Judges the newest point of a series: a robust seasonal forecast, and a band as wide as its own past errors."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from anomaly_monitor.display import number, value_range

if TYPE_CHECKING:
    import numpy as np

MIN_COMPARABLE = 7  # comparable points needed before the check may alert (SPEC)
HISTORY = {"none": 600, "day_of_week": 371, "hour_of_day": 1008}  # points used: a year of days, 6 weeks of hours
MAX_POINTS = 2 * max(HISTORY.values())  # what a caller need keep of a long series (room for empty periods)
LEVEL_WINDOW = {"none": 24, "day_of_week": 21, "hour_of_day": 72}  # three seasons; an outage must outlast half
OFFSET_SEASONS = 12  # the seasonal offset of a weekday/hour: median of its last 12 occurrences
WEEKLY_SEASONS = 12  # hourly data may also have a weekly cycle: hour-of-week offsets from the last 4 weeks
ERROR_WINDOW = 400  # recent one-step errors that size the band
MIN_ERRORS = 5
MIN_RUN = 3  # newest points that departed together before they count as a run
RUN_SD = 1.5  # a point this many sds off, on the side of the others, belongs to a departed run (the judged one too)
GROUP_PRIOR = 24  # against the range before a departure, the pooled noise counts as this many of a group's errors
CHART_POINTS = 96  # recent points whose forecast band a chart shows
SMALL_COUNT = 100  # below this typical count Poisson noise (sd sqrt(x), 10% at 100) dominates percent-level noise
RELATIVE_FLOOR = 0.005  # on the log scale: changes below ~0.5% per sd are never noise-distinguishable anomalies
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533
TAIL_QUANTILE, TAIL_GAUSSIAN_Z = 0.85, 1.4395  # P(|Z| < 1.4395) = 0.85 for a standard normal Z

Points = Sequence[tuple[dt.datetime, float | None]]


@dataclass(frozen=True)
class Judgement:
    anomalous: bool
    expected: tuple[float | None, float | None]  # the band [low, high] the value was expected in (None = unbounded)
    value: float | None
    message: str
    history_points: int  # comparable points used
    center: float | None = None  # the forecast: the middle of the band
    band: tuple[tuple[dt.datetime, float, float], ...] = ()  # the model's band over the recent points, for charts


@dataclass(frozen=True)
class _Scale:
    """A monotone transform under which the series' noise is closer to additive and constant."""

    forward: Callable[[float], float]
    inverse: Callable[[float], float]
    domain_low: float  # values below this cannot be transformed: they are below any band
    offset: float  # c of log(x + c); 0 for the identity
    counts: bool  # integer-valued: Poisson noise sets a floor on the scale

    def floor(self, center: float) -> float:
        """The smallest credible noise sd on the transformed scale around `center`."""
        if self.counts and not self.offset:
            return 1.0  # Anscombe scale: Poisson sd
        if not self.offset:
            return 1e-9 * max(abs(center), 1.0)
        floor = RELATIVE_FLOOR
        if self.counts:
            # Poisson: sd of a count is at least sqrt(its expectation); d log(x + 1) = dx / (x + 1)
            expected = max(self.inverse(center), 0.0)
            floor = max(floor, math.sqrt(max(expected, 0.5)) / (expected + self.offset))
        return floor


def _choose_scale(values: list[float]) -> _Scale:
    if any(v < 0 for v in values):
        return _Scale(lambda x: x, lambda y: y, -math.inf, 0.0, False)
    # a constant integer series is not a Poisson count: any change to it is news
    counts = all(v == int(v) for v in values) and len(set(values)) > 1
    positive = sorted(v for v in values if v > 0)
    typical = positive[len(positive) // 2] if positive else 0.0
    if counts and typical < SMALL_COUNT:
        # Anscombe's 2 sqrt(x + 3/8): Poisson noise becomes sd 1 whatever the rate, so 1 is the noise floor
        return _Scale(lambda x: 2 * math.sqrt(x + 0.375), _inverse_anscombe, 0.0, 0.0, True)
    if not counts and all(v <= 1 for v in values):
        # a rate: arcsine-sqrt is the variance-stabilising transform of a binomial proportion, and takes 0 and 1
        return _Scale(_arcsine_sqrt, _inverse_arcsine_sqrt, 0.0, 0.0, False)
    # log(x + c): multiplicative seasonality and percentage noise become additive; c keeps zeros finite.
    # Large counts use c = 1; amounts a small fraction of their typical size.
    c = 1.0 if counts or not typical else 0.01 * typical
    return _Scale(lambda x: math.log(x + c), lambda y: math.exp(y) - c, 0.0, c, counts)


def _inverse_anscombe(y: float) -> float:
    return max((max(y, 0.0) / 2) ** 2 - 0.375, 0.0)


def _arcsine_sqrt(x: float) -> float:
    return math.asin(math.sqrt(min(x, 1.0)))


def _inverse_arcsine_sqrt(y: float) -> float:
    return math.sin(max(0.0, min(y, math.pi / 2))) ** 2


def _group_of(seasonality: str) -> Callable[[dt.datetime], int]:
    if seasonality == "day_of_week":
        return lambda t: t.weekday()
    if seasonality == "hour_of_day":
        return lambda t: t.hour
    return lambda t: 0


def _trailing_median(x: np.ndarray, window: int, partial: bool = True) -> np.ndarray:
    """out[j] = median(x[j - window : j]) for j = 0 .. len(x); at the start shorter windows, or NaN if not partial."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    n = len(x)
    out = np.full(n + 1, np.nan)
    if partial and n:
        head = min(window, n + 1) - 1  # the first windows are shorter: one triangular matrix, one sort
        rows = np.tril(np.broadcast_to(x[:head], (head, head)))
        rows = np.where(np.tri(head, dtype=bool), rows, np.nan)
        out[1 : head + 1] = _row_medians(rows, np.arange(1, head + 1))
    if n >= window:
        out[window:] = np.median(sliding_window_view(x, window), axis=1)
    return out


def _row_medians(rows: np.ndarray, have: np.ndarray) -> np.ndarray:
    """The median of the first have[i] values of each row (the rest NaN); NaN where a row has none."""
    import numpy as np

    ordered = np.sort(rows, axis=1)  # NaN sorts last
    out = np.full(len(rows), np.nan)
    some = np.nonzero(have > 0)[0]
    out[some] = (ordered[some, (have[some] - 1) // 2] + ordered[some, have[some] // 2]) / 2
    return out


def _trailing_group_medians(
    x: np.ndarray, groups: np.ndarray, last: int, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the median of the `last` values of its group before it (NaN for a group's first point); and
    per group, the median of its newest `last` values (what the next point of that group is offset by)."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    n = len(x)
    order = np.argsort(groups, kind="stable")  # by group, in time order within each
    ranked = x[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(n) - starts[groups[order]]
    before = np.full(n, np.nan)
    if n >= last:
        full = np.median(sliding_window_view(ranked, last), axis=1)  # full[i] = median(ranked[i : i + last])
        deep = rank >= last
        before[deep] = full[np.nonzero(deep)[0] - last]
    # a group's first `last` points: the median of the (fewer) points of the group before each
    head = np.full((n_groups, last), np.nan)
    shallow = rank < last
    ranked_groups = groups[order]
    head[ranked_groups[shallow], rank[shallow]] = ranked[shallow]
    for r in range(1, last):
        at = shallow & (rank == r)
        before[at] = _row_medians(head[:, :r], np.minimum(counts, r))[ranked_groups[at]]
    out = np.empty(n)
    out[order] = before
    newest_rows = np.full((n_groups, last), np.nan)
    back = counts[ranked_groups] - 1 - rank  # 0 for a group's newest point
    recent = back < last
    newest_rows[ranked_groups[recent], back[recent]] = ranked[recent]
    newest = _row_medians(newest_rows, np.minimum(counts, last))
    return out, newest


def _mad_sd(x: np.ndarray) -> float:
    """The MAD-based robust sd of x (0 when more than half of it ties)."""
    import numpy as np

    return MAD_TO_SD * float(np.median(np.abs(x - np.median(x))))


@dataclass(frozen=True)
class _Forecast:
    center: float  # forecast of the judged point, transformed scale
    errors: np.ndarray  # one-step errors of the same forecaster over the recent history
    error_groups: np.ndarray
    all_errors: np.ndarray  # the error of every point of the history (NaN where none)
    spread: float  # robust sd of those errors (to compare candidate forecasters)


def _forecast(y: np.ndarray, residual: np.ndarray, groups: np.ndarray, now_group: int, n_groups: int,
              level_window: int, seasons: int, error_window: int) -> _Forecast | None:  # fmt: skip
    """Level (trailing median of deseasonalised points) + the seasonal offset of the point's group.

    Every point of the history is forecast from the points before it only, exactly as the judged point is, so the
    errors of the last `error_window` points say how far off this forecaster really is on this series.
    `residual`: each point less the trailing median of the whole seasons before it (balanced over the groups).
    """
    import numpy as np

    offsets, newest = _trailing_group_medians(residual, groups, seasons, n_groups)
    offsets = np.nan_to_num(offsets)
    deseasoned = y - offsets
    n = len(y)
    start = n - max(error_window, CHART_POINTS) - level_window  # only the recent forecasts are used
    if start > 0:
        level = np.full(n + 1, np.nan)
        level[start + level_window :] = _trailing_median(deseasoned[start:], level_window, partial=False)[level_window:]
    else:
        level = _trailing_median(deseasoned, level_window)
    forecasts = level[:-1] + offsets
    all_errors = y - forecasts
    errors = all_errors[-error_window:]
    groups_ = groups[-error_window:]
    valid = ~np.isnan(errors)
    errors, groups_ = errors[valid], groups_[valid]
    if len(errors) < MIN_ERRORS:
        return None
    spread = _mad_sd(errors)
    center = float(level[-1] + np.nan_to_num(newest[now_group]))
    return _Forecast(center, errors, groups_, all_errors, spread)


@dataclass(frozen=True)
class _Model:
    center: float  # expected value on the transformed scale
    sd: float  # robust noise sd on the transformed scale
    comparable: int
    recent: tuple[tuple[dt.datetime, float], ...] = ()  # forecasts of the recent points (transformed scale)
    calendar_shift: float = 0.0  # month-end points have run this far from the forecast before: also expected
    trailing: tuple[float, ...] = ()  # the newest half level window's errors, in sds


def _fit(
    times: list[dt.datetime], ys: list[float], when: dt.datetime, seasonality: str, departed: bool = False
) -> _Model:
    import numpy as np

    group_of = _group_of(seasonality)
    now_group = group_of(when)
    groups = np.array([group_of(t) for t in times], dtype=np.int64)
    comparable = int(np.count_nonzero(groups == now_group))
    if comparable < MIN_COMPARABLE:
        return _Model(0.0, 0.0, comparable)
    y = np.array(ys)
    n_groups = {"day_of_week": 7, "hour_of_day": 24}.get(seasonality, 1)
    window = LEVEL_WINDOW.get(seasonality, 24)
    residual = y - _trailing_median(y, window)[:-1]  # the same for every candidate season
    residual[0] = 0.0
    candidates = [_forecast(y, residual, groups, now_group, n_groups, window, OFFSET_SEASONS, ERROR_WINDOW)]
    if seasonality == "hour_of_day" and (times[-1] - times[0]).days >= 21:
        # Hourly data has a weekly cycle too (weekend mornings are not weekday mornings): the hour of the week
        # is tried as the season as well, and kept when it forecasts the recent points better.
        week_groups = np.array([t.weekday() * 24 + t.hour for t in times], dtype=np.int64)
        week_now = when.weekday() * 24 + when.hour
        candidates.append(_forecast(y, residual, week_groups, week_now, 168, window, WEEKLY_SEASONS, ERROR_WINDOW))
    usable = [c for c in candidates if c is not None]
    if not usable:
        return _Model(0.0, 0.0, min(comparable, MIN_COMPARABLE - 1))
    best = min(usable, key=lambda c: c.spread)
    errors = best.errors
    deviation = np.abs(errors - np.median(errors))
    pooled = MAD_TO_SD * float(np.median(deviation))
    if pooled <= 0:
        pooled = MEAN_AD_TO_SD * float(np.mean(deviation))
    mine = errors[(best.error_groups % n_groups) == now_group] if n_groups > 1 else errors
    # Errors are rarely Gaussian in the tail where the band sits: widen by how far out their 85th percentile is.
    tail = max(float(np.quantile(deviation, TAIL_QUANTILE)) / (TAIL_GAUSSIAN_Z * pooled) if pooled > 0 else 1.0, 1.0)
    if departed and n_groups > 1 and len(mine) >= MIN_ERRORS:
        sd = _group_noise(mine, y[groups == now_group], pooled) * tail
    else:
        # Noise differs by hour or weekday (nights are noisier): the group's own errors, never below the pooled ones.
        group_sd = _mad_sd(mine) if len(mine) >= MIN_ERRORS else 0.0
        sd = max(group_sd, pooled) * tail
    shift = _month_end_shift(times, best.all_errors, when, sd)
    forecasts = y - best.all_errors
    recent = tuple(
        (t, float(f)) for t, f in zip(times[-CHART_POINTS:], forecasts[-CHART_POINTS:], strict=True) if f == f
    )
    half = window // 2
    trailing = tuple(float(e) / sd for e in best.all_errors[-half:]) if sd > 0 else ()
    return _Model(best.center, sd, comparable, recent, shift, trailing)


def _group_noise(mine: np.ndarray, values: np.ndarray, pooled: float) -> float:
    """The noise of one hour or weekday (`mine`: its errors; `values`: its points), for judging a point of a
    departure against the range before it.

    A first alert keeps the conservative max(group, pooled). Once the newest points have departed together, the
    question is whether the level is still off, and the band should be this group's own noise, estimated well:
    the smaller of the MAD and the mean absolute deviation of its errors (on discrete values such as a proportion
    of a few trials, the MAD of a dozen errors jumps between the lattice's gaps and can double), shrunk in both
    directions towards the pooled sd as if that were GROUP_PRIOR more of the group's errors (a dozen errors do not
    prove an hour noisier or quieter than the rest). A quiet group, whose values mostly sit on one value (a night
    hour of a few trials: mostly no declines), has no spread of its own to measure: it keeps the pooled sd.
    """
    import numpy as np

    if not np.median(np.abs(values - np.median(values))) > 0:
        return pooled
    deviation = np.abs(mine - np.median(mine))
    own = min(MAD_TO_SD * float(np.median(deviation)), MEAN_AD_TO_SD * float(np.mean(deviation)))
    k = len(mine)
    return math.sqrt((k * own**2 + GROUP_PRIOR * pooled**2) / (k + GROUP_PRIOR))


@functools.lru_cache(maxsize=4096)
def _month_turn(day: dt.date) -> str | None:
    """Where a day sits at the turn of a month, where business-month patterns (payroll, settlement) recur."""
    next_day = day + dt.timedelta(days=1)
    if day.weekday() < 5:
        next_business = next_day + dt.timedelta(days=(7 - next_day.weekday()) % 7 if next_day.weekday() >= 5 else 0)
        if next_business.month != day.month:
            return "last_business_day"
    if next_day.month != day.month:
        return "last_day"
    return "first_day" if day.day == 1 else None


def _month_end_shift(times: list[dt.datetime], errors: np.ndarray, now: dt.datetime, sd: float) -> float:
    """The typical error of earlier points at the same turn of the month, when they all erred the same way.

    The registry can only say day_of_week, yet month-ends often differ (payouts, settlements): when the history
    holds at least two such points and they all sat on one side, more than one sd off, the check expects it again.
    """
    import numpy as np

    turn = _month_turn(now.date())
    if turn is None or sd <= 0:
        return 0.0
    month = (now.year, now.month)  # the evidence is earlier months' turns, never this one (an outage today)
    same = [
        float(e)
        for t, e in zip(times, errors, strict=True)
        if not np.isnan(e) and (t.year, t.month) != month and _month_turn(t.date()) == turn
    ]
    if len(same) < 2 or not (all(d > sd for d in same) or all(d < -sd for d in same)):
        return 0.0
    return float(np.median(same))


def judge(
    points: Points,
    *,
    seasonality: str = "none",
    direction: str = "both",
    sensitivity: float = 3.0,
    low: float | None = None,
    high: float | None = None,
    departed: bool = False,
) -> Judgement:
    """The last point is judged against the ones before it (sorted by time).

    low/high are hard bounds: breaching them alerts regardless of history. A NULL newest value is not judged
    (a missing value is not a zero: a query that means zero should COALESCE); NULLs in the history are skipped.
    `departed`: the points before the last are the history before a departure that is still open (an incident's
    pre-incident history), so the band is the judged hour's or weekday's own noise (see `_group_noise`).
    """
    if not points:
        return Judgement(False, (low, high), None, "no points: not judged", 0)
    ordered = sorted(points, key=_time)
    when, value = ordered[-1]
    if value is None or not math.isfinite(value):
        return Judgement(False, (low, high), None, "the newest value is NULL: not judged", 0)
    keep = HISTORY.get(seasonality, 600)
    recent = ordered[-2 * keep - 1 : -1]  # enough even when many are NULL; never the whole of a long series
    history = [(t, float(v)) for t, v in recent if v is not None and math.isfinite(v)][-keep:]
    breach = _hard_breach(value, low, high)
    scale = _choose_scale([v for _, v in history] or [value])
    model = _fit([t for t, _ in history], [scale.forward(v) for _, v in history], when, seasonality, departed)
    where = _where(when, seasonality)
    if model.comparable < MIN_COMPARABLE:
        n = model.comparable
        noun = "point" if n == 1 else "points"
        note = f"only {n} comparable {noun}{where} in the history ({MIN_COMPARABLE} needed): not judged"
        if breach:
            return Judgement(True, (low, high), value, f"{breach}; {note}", n)
        return Judgement(False, (low, high), value, note, n)
    y = scale.forward(value) if value >= scale.domain_low else -math.inf
    run = _departed_run(model, y, sensitivity)
    if run:
        # The newest points already departed the same way: an anomaly that started before this point and is
        # younger than half a level window has begun to drag the level. Without an open incident to say so, the
        # series does: judge against the range from before that run (as an open incident would).
        times, ys = [t for t, _ in history[:-run]], [scale.forward(v) for _, v in history[:-run]]
        earlier = _fit(times, ys, when, seasonality, departed=True)
        if earlier.comparable >= MIN_COMPARABLE and abs(_z(y, earlier, scale)) > sensitivity:
            judgement = _verdict(value, earlier, scale, direction, sensitivity, low, high, breach, where)
            noun = "point" if run == 1 else "points"
            note = f"; the {run} {noun} before it departed the same way: judged against the range before them"
            return replace(judgement, message=judgement.message + note)
    return _verdict(value, model, scale, direction, sensitivity, low, high, breach, where)


def _z(y: float, model: _Model, scale: _Scale) -> float:
    return (y - model.center) / max(model.sd, scale.floor(model.center))


def _departed_run(model: _Model, y: float, sensitivity: float) -> int:
    """How many of the newest points sat more than RUN_SD sds off on the side the judged value is, when at least
    MIN_RUN and fewer than half a level window did, and the judged value itself is as far off as they were but not
    already beyond the band."""
    if model.sd <= 0 or not math.isfinite(y):
        return 0
    z = (y - model.center) / model.sd
    if abs(z) > sensitivity or abs(z) < RUN_SD:
        return 0
    run = 0
    for e in reversed(model.trailing):
        if e * z <= 0 or abs(e) < RUN_SD:
            break
        run += 1
    return run if MIN_RUN <= run < len(model.trailing) else 0


def _time(point: tuple[dt.datetime, float | None]) -> dt.datetime:
    return point[0]


def _hard_breach(value: float, low: float | None, high: float | None) -> str | None:
    if low is not None and value < low:
        return f"{number(value)} is below the hard minimum {number(low)}"
    if high is not None and value > high:
        return f"{number(value)} is above the hard maximum {number(high)}"
    return None


def _verdict(
    value: float,
    model: _Model,
    scale: _Scale,
    direction: str,
    sensitivity: float,
    low: float | None,
    high: float | None,
    breach: str | None,
    where: str,
) -> Judgement:
    sd = max(model.sd, scale.floor(model.center))
    y = scale.forward(value) if value >= scale.domain_low else -math.inf
    # a month-end departure seen before widens the band towards it (the union of both bands: it may not recur)
    low_center = model.center + min(0.0, model.calendar_shift)
    high_center = model.center + max(0.0, model.calendar_shift)
    z = (y - high_center) / sd if y > high_center else (y - low_center) / sd if y < low_center else 0.0
    history_low = scale.inverse(low_center - sensitivity * sd) if direction != "up" else None
    history_high = scale.inverse(high_center + sensitivity * sd) if direction != "down" else None
    # hard bounds narrow the band: a value inside the statistical band can still breach them
    band_low = history_low if low is None else low if history_low is None else max(history_low, low)
    band_high = history_high if high is None else high if history_high is None else min(history_high, high)
    expected = (band_low, band_high)
    center = scale.inverse(model.center)
    band = tuple(
        (t, scale.inverse(c - sensitivity * sd) if direction != "up" else math.nan,
         scale.inverse(c + sensitivity * sd) if direction != "down" else math.nan)
        for t, c in model.recent
    )  # fmt: skip
    anomalous = (z > sensitivity and direction != "down") or (z < -sensitivity and direction != "up")
    side = "above" if z > 0 else "below"
    usual = "; allowing for the usual month-end departure" if model.calendar_shift else ""
    detail = f"({_fmt_z(z)} robust sd {side} the forecast {number(center)}{usual})"
    rng = value_range(history_low, history_high)  # the history's own range: hard bounds are named on their own
    if anomalous:
        message = f"{number(value)} is {side} the expected range{where}: {rng} {detail}"
        message += f"; also {breach.split(' is ', 1)[1]}" if breach else ""
        return Judgement(True, expected, value, message, model.comparable, center, band)
    if breach:
        message = f"{breach}; its history alone expects{where}: {rng} {detail}"
        return Judgement(True, expected, value, message, model.comparable, center, band)
    message = f"{number(value)} is within the expected range{where}: {rng} {detail}"
    return Judgement(False, expected, value, message, model.comparable, center, band)


def _where(when: dt.datetime, seasonality: str) -> str:
    if seasonality == "day_of_week":
        return f" for a {when.strftime('%A')}"
    if seasonality == "hour_of_day":
        return f" for {when.hour:02d}:00"
    return ""


def _fmt_z(z: float) -> str:
    return "more than 100" if not math.isfinite(z) or abs(z) > 100 else f"{abs(z):.1f}"
