"""Judges the newest point of a series against the points before it: robust, seasonal, level-adaptive."""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anomaly_monitor.display import number, value_range

MIN_COMPARABLE = 7  # comparable points needed before the check may alert (SPEC)
MAX_COMPARABLE = {"none": 30, "day_of_week": 12, "hour_of_day": 12}  # trailing comparable points used
LEVEL_WINDOW = {"none": 7, "day_of_week": 14, "hour_of_day": 48}  # two whole seasons: balanced, outage-proof
SHIFT_RUN = 3  # this many consecutive points far off on one side mean the level moved: re-base on them
RELATIVE_FLOOR = 0.005  # on the log scale: changes below ~0.5% per sd are never noise-distinguishable anomalies
SMALL_COUNT = 100  # below this typical count Poisson noise (sd sqrt(x), 10% at 100) dominates percent-level noise
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533
TAIL_QUANTILE, TAIL_GAUSSIAN_Z = 0.8, 1.2816  # P(|Z| < 1.2816) = 0.8 for a standard normal Z
MAD_LOG_VARIANCE = 1.36  # n * Var(MAD sd estimate) / sd^2 for Gaussian data: the MAD's sampling variance

Points = Sequence[tuple[dt.datetime, float | None]]


@dataclass(frozen=True)
class Judgement:
    anomalous: bool
    expected: tuple[float | None, float | None]  # the band [low, high] the value was expected in (None = unbounded)
    value: float | None
    message: str
    history_points: int  # comparable points used


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
        return _Scale(lambda x: 2 * math.sqrt(x + 0.375), lambda y: (max(y, 0.0) / 2) ** 2 - 0.375, 0.0, 0.0, True)
    if not counts and all(v <= 1 for v in values):
        # a rate: arcsine-sqrt is the variance-stabilising transform of a binomial proportion, and takes 0 and 1
        return _Scale(_arcsine_sqrt, _inverse_arcsine_sqrt, 0.0, 0.0, False)
    # log(x + c): multiplicative seasonality and percentage noise become additive; c keeps zeros finite.
    # Large counts use c = 1; amounts a small fraction of their typical size.
    c = 1.0 if counts or not typical else 0.01 * typical
    return _Scale(lambda x: math.log(x + c), lambda y: math.exp(y) - c, 0.0, c, counts)


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


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def _trailing_medians(xs: list[float], k: int, start: int) -> list[float]:
    """medians of xs[max(j - k, 0) : j] for j = start .. len(xs), with one sorted window slid along."""
    start = max(start, 1)
    window = sorted(xs[max(start - k, 0) : start])
    out = []
    for j in range(start, len(xs) + 1):
        n = len(window)
        out.append(window[n // 2] if n % 2 else (window[n // 2 - 1] + window[n // 2]) / 2)
        if j == len(xs):
            break
        bisect.insort(window, xs[j])
        if j - k >= 0:
            del window[bisect.bisect_left(window, xs[j - k])]
    return out


def _robust_sd(xs: list[float], center: float) -> float:
    """MAD-based sd; when more than half the points tie (MAD 0), the mean absolute deviation instead."""
    deviations = [abs(x - center) for x in xs]
    mad = _median(deviations)
    if mad > 0:
        return MAD_TO_SD * mad
    return MEAN_AD_TO_SD * sum(deviations) / len(deviations)


@dataclass(frozen=True)
class _Model:
    center: float  # expected value on the transformed scale
    sd: float  # robust noise sd on the transformed scale
    comparable: int
    rebased: bool = False  # the level was re-based on the latest points (a level shift)
    calendar_shift: float = 0.0  # month-end points have run this far from the center before: also expected
    prior_shift: float = 0.0  # after a re-base: the old level, relative to the center, is still credible


def _fit(times: list[dt.datetime], ys: list[float], groups: list[int], now: dt.datetime, now_group: int,
         seasonality: str, shift_z: float) -> _Model:  # fmt: skip
    """Expected value for a point after ys: local level + the seasonal offset of its group.

    The level is the median of the last two seasons of deseasonalised points, so a trend or a wandering level
    moves the expectation while same-group points still define the seasonal offset and the noise.
    """
    k = LEVEL_WINDOW.get(seasonality, 7)
    comp = [j for j in range(len(ys)) if groups[j] == now_group][-MAX_COMPARABLE.get(seasonality, 30) :]
    start = max((comp[0] if comp else 0) - k, 0) + 1
    if len(comp) < MIN_COMPARABLE or start >= len(ys):
        return _Model(0.0, 0.0, len(comp))
    # First pass: offsets of each group vs the raw trailing median (balanced: whole seasons).
    raw_level = dict(zip(range(start, len(ys)), _trailing_medians(ys, k, start), strict=False))
    season = {g: _median(d) for g, d in _by_group(groups, {j: ys[j] - lv for j, lv in raw_level.items()}).items()}
    deseason = [ys[j] - season.get(groups[j], 0.0) for j in range(len(ys))]
    # Second pass: the level from deseasonalised points is not dragged around by which groups it covers.
    levels = _trailing_medians(deseason, k, start)
    adjusted = {j: ys[j] - lv for j, lv in zip(range(start, len(ys)), levels, strict=False)}
    residuals = [adjusted[j] for j in comp if j in adjusted]
    if len(residuals) < MIN_COMPARABLE:
        return _Model(0.0, 0.0, len(residuals))
    offset = _median(residuals)
    group_center = {g: _median(es) for g, es in _by_group(groups, adjusted).items()}
    # A dozen points give a noisy sd; the sd over all groups is steadier. Take the larger: a group may be
    # noisier than the rest (night hours), but rarely believably quieter.
    spread = [e - group_center[groups[j]] for j, e in adjusted.items()]
    pooled = _robust_sd(spread, 0.0)
    group_sd = _robust_sd(residuals, offset)
    # The offset is itself a median of n noisy points: a new point's prediction error also carries its
    # sampling error (variance pi/2 * sd^2 / n), as in a prediction interval. Residuals with heavier than
    # Gaussian tails (noise whose size changes over time is a scale mixture) widen it further.
    sd = max(group_sd, pooled) * math.sqrt(1 + math.pi / 2 / len(residuals)) * _tail_factor(spread, pooled)
    # Some groups do not follow the level (a weekend that is always 0): when the plain comparable points are
    # much tighter than the level-adjusted ones, the level explains nothing there and is not applied.
    # Two MAD-based sds of n points each differ by chance: their log ratio has sd about sqrt(2 * 1.36 / n), so
    # only a ratio beyond 3 such sds says the group does not follow the level (a noisy 2x is chance).
    plain = [ys[j] for j in comp]
    plain_center = _median(plain)
    plain_sd = _robust_sd(plain, plain_center)
    if plain_sd < group_sd * math.exp(-3 * math.sqrt(2 * MAD_LOG_VARIANCE / len(plain))):
        return _Model(plain_center, plain_sd * math.sqrt(1 + math.pi / 2 / len(plain)), len(plain))
    level = levels[-1]
    recent = deseason[-SHIFT_RUN:]
    far = [(d - level) / pooled if pooled > 0 else 0.0 for d in recent]
    rebased = len(recent) == SHIFT_RUN and (all(f > shift_z for f in far) or all(f < -shift_z for f in far))
    prior = 0.0
    if rebased:
        # Three points cannot tell a lasting shift from a transient one (an outage or a double load that ends):
        # the new level is expected, and a return to the old one is too.
        prior = level - _median(recent)
        level = _median(recent)
    month_end = _month_end_effect(times, adjusted, group_center, groups, now, sd)
    return _Model(level + offset, sd, len(residuals), rebased, month_end, prior)


def _tail_factor(spread: list[float], sd: float) -> float:
    """How much wider than Gaussian the residuals' shoulders are: q80 of |residual| over its Gaussian value.

    A MAD-based sd fits the middle of the distribution; the band sits in its tail. Business noise is rarely
    Gaussian there: its size drifts and clusters over time (a scale mixture), and some metrics (latency) are
    heavy-tailed outright. The 80th percentile of |residual| is the furthest-out quantile a hundred points
    still estimate well and that a few outliers in the history cannot move; when it sits further out than a
    Gaussian with the MAD's sd would put it (1.2816 sd), the band widens in proportion. Light-tailed series
    get about 1.
    """
    if sd <= 0 or not spread:
        return 1.0
    deviations = sorted(abs(e) for e in spread)
    q = deviations[min(int(TAIL_QUANTILE * len(deviations)), len(deviations) - 1)]
    return max(1.0, q / (TAIL_GAUSSIAN_Z * sd))


def _by_group(groups: list[int], values: dict[int, float]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for j, v in values.items():
        out.setdefault(groups[j], []).append(v)
    return out


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


def _month_end_effect(times: list[dt.datetime], adjusted: dict[int, float], group_center: dict[int, float],
                      groups: list[int], now: dt.datetime, sd: float) -> float:  # fmt: skip
    """The typical departure of earlier points at the same turn of the month, when they departed consistently.

    The registry can only say day_of_week, yet month-ends often differ (payouts, settlements): when the history
    holds at least two such points and they all sat on one side, more than one sd off, the check expects it again.
    """
    turn = _month_turn(now.date())
    if turn is None or sd <= 0:
        return 0.0
    same = [adjusted[j] - group_center[groups[j]] for j in adjusted if _month_turn(times[j].date()) == turn]
    if len(same) < 2 or not (all(d > sd for d in same) or all(d < -sd for d in same)):
        return 0.0
    return _median(same)


def judge(
    points: Points,
    *,
    seasonality: str = "none",
    direction: str = "both",
    sensitivity: float = 3.0,
    low: float | None = None,
    high: float | None = None,
) -> Judgement:
    """The last point is judged against the ones before it (sorted by time).

    low/high are hard bounds: breaching them alerts regardless of history. A NULL newest value is not judged
    (a missing value is not a zero: a query that means zero should COALESCE); NULLs in the history are skipped.
    """
    if not points:
        return Judgement(False, (low, high), None, "no points: not judged", 0)
    ordered = sorted(points, key=lambda p: p[0])
    when, value = ordered[-1]
    history = [(t, float(v)) for t, v in ordered[:-1] if v is not None and math.isfinite(v)]
    group_of = _group_of(seasonality)
    if value is None or not math.isfinite(value):
        return Judgement(False, (low, high), None, "the newest value is NULL: not judged", 0)
    breach = _hard_breach(value, low, high)
    scale = _choose_scale([v for _, v in history] or [value])
    model = _fit([t for t, _ in history], [scale.forward(v) for _, v in history], [group_of(t) for t, _ in history],
                 when, group_of(when), seasonality, sensitivity)  # fmt: skip
    where = _where(when, seasonality)
    if model.comparable < MIN_COMPARABLE:
        n = model.comparable
        points = "point" if n == 1 else "points"
        note = f"only {n} comparable {points}{where} in the history ({MIN_COMPARABLE} needed): not judged"
        if breach:
            return Judgement(True, (low, high), value, f"{breach}; {note}", n)
        return Judgement(False, (low, high), value, note, n)
    return _verdict(value, model, scale, direction, sensitivity, low, high, breach, where)


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
    # a month-end effect seen before widens the band towards it (union of both bands: it may not recur)
    # so does a re-based level towards the level it left (a transient shift may end)
    shifts = (0.0, model.calendar_shift, model.prior_shift)
    low_center = model.center + min(shifts)
    high_center = model.center + max(shifts)
    z = (y - high_center) / sd if y > high_center else (y - low_center) / sd if y < low_center else 0.0
    band_low = scale.inverse(low_center - sensitivity * sd) if direction != "up" else None
    band_high = scale.inverse(high_center + sensitivity * sd) if direction != "down" else None
    # hard bounds narrow the band: a value inside the statistical band can still breach them
    if low is not None:
        band_low = low if band_low is None else max(band_low, low)
    if high is not None:
        band_high = high if band_high is None else min(band_high, high)
    expected = (band_low, band_high)
    median = number(scale.inverse(model.center))
    anomalous = (z > sensitivity and direction != "down") or (z < -sensitivity and direction != "up")
    side = "above" if z > 0 else "below"
    shifted = "; the level moved recently, re-based on the latest points" if model.rebased else ""
    if model.calendar_shift:
        shifted += "; allowing for the usual month-end departure"
    detail = f"({_fmt_z(z)} robust sd {side} the median {median}{shifted})"
    rng = value_range(band_low, band_high)  # the same words as the alert's expected range
    if breach:
        return Judgement(True, expected, value, f"{breach} {detail}", model.comparable)
    if anomalous:
        message = f"{number(value)} is {side} the expected range{where}: {rng} {detail}"
    else:
        message = f"{number(value)} is within the expected range{where}: {rng} {detail}"
    return Judgement(anomalous, expected, value, message, model.comparable)


def _where(when: dt.datetime, seasonality: str) -> str:
    if seasonality == "day_of_week":
        return f" for a {when.strftime('%A')}"
    if seasonality == "hour_of_day":
        return f" for {when.hour:02d}:00"
    return ""


def _fmt_z(z: float) -> str:
    return "more than 100" if not math.isfinite(z) or abs(z) > 100 else f"{abs(z):.1f}"
