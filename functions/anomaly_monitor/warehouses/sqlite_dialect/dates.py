"""Dates and times: BigQuery's date functions as native SQLite date functions over UTC text."""

from __future__ import annotations

import datetime
import functools
import re

from sqlglot import exp

from anomaly_monitor.errors import QueryError
from anomaly_monitor.warehouses.sqlite_dialect.rules import (
    DATE,
    JULIAN_FORMS,
    TIMESTAMP,
    TIMESTAMP_TEXT,
    rule,
    sql,
    type_of,
    typed,
    unsupported,
    wall_clock,
    zone_argument,
)
from anomaly_monitor.warehouses.sqlite_functions import parse_timestamp, timestamp_text

_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
_MS_PER_UNIT = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_WEEKDAYS = ["SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"]
_MS_DIFF = "CAST(round((julianday(:a) - julianday(:b)) * 86400000) AS INTEGER)"
_MONTH_INDEX = "(CAST(strftime('%Y', {x}) AS INTEGER) * 12 + CAST(strftime('%m', {x}) AS INTEGER) - 1)"


def timestamp_text_of(value: exp.Expr, mods: str = "", whole: bool = True, **extra: exp.Expr) -> exp.Expr:
    """The canonical text of `value` moved by SQLite date modifiers `mods` (", '+7 days'").

    strftime('%f') is several times slower than datetime(), which drops fractions: a column whose text has no
    fraction (no '.') takes datetime() when the modifiers move it by whole seconds. The node remembers its
    julianday() form, which comparisons use instead of parsing the text back."""
    exact = TIMESTAMP_TEXT.format(mods=mods)
    if whole and isinstance(value, exp.Column):
        exact = f"CASE WHEN instr(:x, '.') THEN {exact} ELSE datetime(:x{mods}) END"
    node = sql(exact, TIMESTAMP, x=value, **extra)
    # Kept beside the tree, not in its meta: meta is copied with every copy of the node, and would nest.
    JULIAN_FORMS.get()[id(node)] = (node, f"julianday(:x{mods})", {"x": value, **extra})
    return node


def julian(node: exp.Expr) -> exp.Expr:
    """julianday() of a date or timestamp (which stays where it is), from the form its rule remembered if any."""
    remembered = JULIAN_FORMS.get().get(id(node))
    if remembered is None or remembered[0] is not node:
        return sql("julianday(:x)", x=node.copy())
    return sql(remembered[1], **{name: value.copy() for name, value in remembered[2].items()})


def unit_of(node: exp.Expr) -> tuple[str, str]:
    """(unit, week start) of a date part argument such as DAY or WEEK(MONDAY)."""
    unit = node.args.get("unit") if not isinstance(node, exp.Var | exp.WeekStart) else node
    if isinstance(unit, exp.WeekStart):
        return "WEEK", unit.name.upper()
    name = unit.name.upper() if unit is not None else "DAY"
    if name == "ISOWEEK":
        return "WEEK", "MONDAY"
    return name, "SUNDAY"


def _week_start(weekday: str) -> str:
    return f"'-6 days', 'weekday {_WEEKDAYS.index(weekday)}'"


def date_argument(node: exp.Expr) -> exp.Expr:
    """x for DATE(x) feeding another date function: SQLite's date functions read timestamps themselves."""
    if isinstance(node, exp.Date) and type_of(node) == DATE and not node.expressions:
        return node.this
    return node


# --- Differences ------------------------------------------------------------------------------------------------


@rule(exp.TimestampDiff)
def _timestamp_diff(node: exp.Expr) -> exp.Expr:
    """TIMESTAMP_DIFF counts whole units between the instants, truncated toward zero (integer division)."""
    unit, _ = unit_of(node)
    a, b = node.this, node.expression
    if unit == "MICROSECOND":
        return sql(f"{_MS_DIFF} * 1000", a=a, b=b)
    if unit not in _MS_PER_UNIT:
        raise unsupported(node, f"TIMESTAMP_DIFF by {unit}")
    return sql(f"{_MS_DIFF} / {_MS_PER_UNIT[unit]}", a=a, b=b)


@rule(exp.DateDiff)
def _date_diff(node: exp.Expr) -> exp.Expr:
    """DATE_DIFF counts unit boundaries crossed, so both sides are truncated to the unit first."""
    unit, week_start = unit_of(node)
    a, b = date_argument(node.this), date_argument(node.expression)
    if unit == "DAY":
        return sql("CAST(julianday(:a, 'start of day') - julianday(:b, 'start of day') AS INTEGER)", a=a, b=b)
    if unit == "WEEK":
        start = _week_start(week_start)
        return sql(
            f"CAST(julianday(:a, 'start of day', {start}) - julianday(:b, 'start of day', {start}) AS INTEGER) / 7",
            a=a,
            b=b,
        )
    if unit == "MONTH":
        return sql(f"{_MONTH_INDEX.format(x=':a')} - {_MONTH_INDEX.format(x=':b')}", a=a, b=b)
    if unit == "QUARTER":
        return sql(f"{_MONTH_INDEX.format(x=':a')} / 3 - {_MONTH_INDEX.format(x=':b')} / 3", a=a, b=b)
    if unit == "YEAR":
        return sql("CAST(strftime('%Y', :a) AS INTEGER) - CAST(strftime('%Y', :b) AS INTEGER)", a=a, b=b)
    raise unsupported(node, f"DATE_DIFF by {unit}")


@rule(exp.DatetimeDiff)
def _datetime_diff(node: exp.Expr) -> exp.Expr:
    unit, _ = unit_of(node)
    # Below a day DATETIME_DIFF counts whole units like TIMESTAMP_DIFF; from DAY up it counts boundaries.
    if unit == "MICROSECOND" or (unit in _MS_PER_UNIT and unit != "DAY"):
        return _timestamp_diff(node)
    return _date_diff(node)


# --- Intervals --------------------------------------------------------------------------------------------------


def _interval_modifier(amount: exp.Expr, unit: str, sign: int) -> tuple[str, dict[str, exp.Expr]]:
    """A SQLite date modifier ('+7 days') for INTERVAL amount unit; a constant when the amount is a literal."""
    scale, sqlite_unit = {
        "MICROSECOND": (0.000001, "seconds"),
        "MILLISECOND": (0.001, "seconds"),
        "SECOND": (1, "seconds"),
        "MINUTE": (1, "minutes"),
        "HOUR": (1, "hours"),
        "DAY": (1, "days"),
        "WEEK": (7, "days"),
    }[unit]
    literal = amount.this if isinstance(amount, exp.Neg) else amount
    if isinstance(literal, exp.Literal):
        value = float(literal.name) * (-1 if isinstance(amount, exp.Neg) else 1) * scale * sign
        number = f"{int(value):+d}" if value == int(value) else f"{value:+.6f}"
        return f"'{number} {sqlite_unit}'", {}
    return f"(:n * {scale * sign}) || ' {sqlite_unit}'", {"n": amount}


def _month_shift(x: str, months: str) -> str:
    """Add months the BigQuery way: the day is clamped to the target month's last day (Jan 31 + 1 month = Feb 28)."""
    target = f"{x}, 'start of month', {months}"
    last_day = f"CAST(strftime('%d', {target}, '+1 month', '-1 day') AS INTEGER)"
    return f"date({target}, (min(CAST(strftime('%d', {x}) AS INTEGER), {last_day}) - 1) || ' days')"


def _add_interval(node: exp.Expr, sign: int, kind: str) -> exp.Expr:
    unit, _ = unit_of(node)
    amount = node.expression
    if isinstance(amount, exp.Interval):  # `x + INTERVAL n DAY` arrives as Interval(n, DAY)
        amount, unit = amount.this, unit_of(amount)[0]
    if isinstance(amount, exp.Literal) and amount.is_string:
        amount = exp.Literal.number(amount.name)
    if unit in {"MONTH", "QUARTER", "YEAR"}:
        factor = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
        date = _month_shift(":x", f"(:n * {factor * sign}) || ' months'")
        if kind == DATE:
            return sql(date, DATE, x=node.this, n=amount)
        return sql(f"{date} || strftime(' %H:%M:%S', :x)", TIMESTAMP, x=node.this, n=amount)
    if unit not in {"MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK"}:
        raise unsupported(node, f"INTERVAL of {unit}")
    modifier, extra = _interval_modifier(amount, unit, sign)
    if kind == DATE:
        return sql(f"date(:x, {modifier})", DATE, x=date_argument(node.this), **extra)
    whole = not extra and unit not in {"MICROSECOND", "MILLISECOND"}
    return timestamp_text_of(node.this, f", {modifier}", whole, **extra)


for _kinds, _sign, _result in [
    ((exp.TimestampAdd, exp.DatetimeAdd), 1, TIMESTAMP),
    ((exp.TimestampSub, exp.DatetimeSub), -1, TIMESTAMP),
    ((exp.DateAdd,), 1, DATE),
    ((exp.DateSub,), -1, DATE),
]:
    rule(*_kinds)(functools.partial(_add_interval, sign=_sign, kind=_result))


@rule(exp.Add, exp.Sub)
def _interval_arithmetic(node: exp.Add | exp.Sub) -> exp.Expr | None:
    """`ts + INTERVAL 1 HOUR`: BigQuery returns a DATETIME/TIMESTAMP, so the result is timestamp text."""
    if not isinstance(node.expression, exp.Interval):
        return None
    return _add_interval(node, 1 if isinstance(node, exp.Add) else -1, TIMESTAMP)


# --- Truncation and parts ---------------------------------------------------------------------------------------


@rule(exp.DateTrunc)
def _date_trunc(node: exp.Expr) -> exp.Expr:
    if type_of(node.this) == TIMESTAMP:  # BigQuery's DATE_TRUNC keeps a TIMESTAMP a TIMESTAMP
        return _truncated_timestamp(node, node.this)
    unit, week_start = unit_of(node)
    modifiers = _trunc_modifiers(unit, week_start)
    if modifiers is None:
        raise unsupported(node, f"DATE_TRUNC to {unit}")
    return sql(f"date(:x{modifiers})", DATE, x=date_argument(node.this))


@rule(exp.TimestampTrunc, exp.DatetimeTrunc)
def _timestamp_trunc(node: exp.Expr) -> exp.Expr:
    zone = zone_argument(node)
    truncated = _truncated_timestamp(node, wall_clock(node.this, zone))
    if zone is None:
        return truncated
    # Truncate on the local wall clock, then turn that local midnight (or hour...) back into a UTC instant.
    return sql("bq_from_local(:x, :z)", TIMESTAMP, x=truncated, z=zone)


def _truncated_timestamp(node: exp.Expr, value: exp.Expr) -> exp.Expr:
    unit, week_start = unit_of(node)
    if unit in {"MICROSECOND", "MILLISECOND"}:
        return timestamp_text_of(value)
    patterns = {"SECOND": "%Y-%m-%d %H:%M:%S", "MINUTE": "%Y-%m-%d %H:%M:00", "HOUR": "%Y-%m-%d %H:00:00"}
    if unit in patterns:
        return sql(f"strftime('{patterns[unit]}', :x)", TIMESTAMP, x=value)
    modifiers = _trunc_modifiers(unit, week_start)
    if modifiers is None:
        raise unsupported(node, f"TIMESTAMP_TRUNC to {unit}")
    return sql(f"datetime(:x{modifiers})", TIMESTAMP, x=value)


def _trunc_modifiers(unit: str, week_start: str) -> str | None:
    if unit == "QUARTER":
        return ", 'start of month', -((CAST(strftime('%m', :x) AS INTEGER) - 1) % 3) || ' months'"
    return {
        "DAY": ", 'start of day'",
        "WEEK": f", 'start of day', {_week_start(week_start)}",
        "MONTH": ", 'start of month'",
        "YEAR": ", 'start of year'",
    }.get(unit)


_ISO_THURSDAY = "strftime('{code}', :x, 'start of day', '-6 days', 'weekday 1', '+3 days')"
_PARTS = {
    "YEAR": "CAST(strftime('%Y', :x) AS INTEGER)",
    "MONTH": "CAST(strftime('%m', :x) AS INTEGER)",
    "DAY": "CAST(strftime('%d', :x) AS INTEGER)",
    "HOUR": "CAST(strftime('%H', :x) AS INTEGER)",
    "MINUTE": "CAST(strftime('%M', :x) AS INTEGER)",
    "SECOND": "CAST(strftime('%S', :x) AS INTEGER)",
    "MILLISECOND": "CAST(round(strftime('%f', :x) * 1000) AS INTEGER) % 1000",
    "MICROSECOND": "CAST(round(strftime('%f', :x) * 1000) AS INTEGER) % 1000 * 1000",
    "DAYOFWEEK": "CAST(strftime('%w', :x) AS INTEGER) + 1",  # BigQuery: 1 = Sunday
    "DAYOFYEAR": "CAST(strftime('%j', :x) AS INTEGER)",
    "QUARTER": "(CAST(strftime('%m', :x) AS INTEGER) + 2) / 3",
    # Weeks start on Sunday; days before the year's first Sunday are week 0.
    "WEEK": "(CAST(strftime('%j', :x) AS INTEGER) + 6 - CAST(strftime('%w', :x) AS INTEGER)) / 7",
    "ISOWEEK": f"(CAST({_ISO_THURSDAY.format(code='%j')} AS INTEGER) - 1) / 7 + 1",
    "ISOYEAR": f"CAST({_ISO_THURSDAY.format(code='%Y')} AS INTEGER)",
}


@rule(exp.Extract)
def _extract(node: exp.Extract) -> exp.Expr:
    part = node.name.upper()
    value = node.expression
    if isinstance(value, exp.AtTimeZone):
        value = wall_clock(value.this, zone_argument(value))
    value = date_argument(value)
    if part in _PARTS:
        return sql(_PARTS[part], x=value)
    if part == "DATE":
        return sql("date(:x)", DATE, x=value)
    if part == "DATETIME":
        return timestamp_text_of(value)
    if part == "TIME":
        return sql("strftime('%H:%M:%S', :x)", x=value)
    raise unsupported(node, f"EXTRACT({part})")


# --- Values: TIMESTAMP(), DATE(), literals, the clock ------------------------------------------------------------


def timestamp_value(value: exp.Expr, zone: exp.Expr | None = None) -> exp.Expr:
    """TIMESTAMP(value [, zone]): canonical UTC text; a zone says which wall clock `value` was read on."""
    if zone is not None:  # TIMESTAMP('2025-01-01 00:00:00', 'Europe/Berlin'): local wall clock to UTC
        return sql("bq_from_local(:x, :z)", TIMESTAMP, x=value, z=zone)
    if isinstance(value, exp.Literal) and value.is_string:
        moment = parse_timestamp(value.name)
        if moment is None:
            raise QueryError(f"invalid timestamp literal {value.sql('bigquery')}")
        return typed(exp.Literal.string(timestamp_text(moment)), TIMESTAMP)
    if type_of(value) == TIMESTAMP:
        return value
    return timestamp_text_of(value)


def date_value(value: exp.Expr, zone: exp.Expr | None = None) -> exp.Expr:
    """DATE(value [, zone]): `YYYY-MM-DD` text; with a zone, the date on that wall clock."""
    if zone is not None:
        return sql("date(:x)", DATE, x=wall_clock(value, zone))
    if type_of(value) == DATE:
        return value
    if isinstance(value, exp.Literal) and (text := canonical_literal(value, DATE)):
        return typed(exp.Literal.string(text), DATE)
    return sql("date(:x)", DATE, x=value)


@rule(exp.Timestamp, exp.TsOrDsToDatetime, exp.TsOrDsToTimestamp)
def _timestamp(node: exp.Expr) -> exp.Expr | None:
    if isinstance(node.parent, exp.TimeToStr):
        return None  # FORMAT_TIMESTAMP reads the value itself
    return timestamp_value(node.this, zone_argument(node))


@rule(exp.Date, exp.TsOrDsToDate)
def _date(node: exp.Expr) -> exp.Expr | None:
    if isinstance(node.parent, exp.TimeToStr):
        return None  # FORMAT_DATE reads the value itself
    return date_value(node.this, zone_argument(node))


@rule(exp.Datetime)
def _datetime_in_zone(node: exp.Datetime) -> exp.Expr:
    """DATETIME(ts, 'Europe/Berlin'): the wall clock in that zone; DATETIME(date, time) is not supported."""
    if not (isinstance(node.expression, exp.Literal) and node.expression.is_string):
        raise unsupported(node, "DATETIME(date, time)")
    return typed(wall_clock(timestamp_value(node.this), zone_argument(node, "expression")), TIMESTAMP)


@rule(exp.DateFromParts)
def _date_from_parts(node: exp.DateFromParts) -> exp.Expr:
    args = {key: node.args[key] for key in ("year", "month", "day")}
    return sql("date(printf('%04d-%02d-%02d', :year, :month, :day))", DATE, **args)


@rule(exp.UnixToTime)
def _unix_to_timestamp(node: exp.UnixToTime) -> exp.Expr:
    scale = node.args.get("scale")
    divisor = 10 ** int(scale.name) if isinstance(scale, exp.Literal) else 1
    amount = "(:x / 1.0)" if divisor == 1 else f"(:x / {divisor}.0)"
    return sql(TIMESTAMP_TEXT.format(mods=", 'unixepoch'").replace(":x,", f"{amount},", 1), TIMESTAMP, x=node.this)


rule(exp.UnixSeconds)(lambda n: sql("unixepoch(:x)", x=n.this))
rule(exp.UnixMillis)(lambda n: sql("CAST(round((julianday(:x) - 2440587.5) * 86400000) AS INTEGER)", x=n.this))
rule(exp.UnixDate)(lambda n: sql("CAST(julianday(:x, 'start of day') - 2440587.5 AS INTEGER)", x=n.this))
rule(exp.DateFromUnixDate)(lambda n: sql("date(2440587.5 + :x)", DATE, x=n.this))


@rule(exp.CurrentTimestamp, exp.CurrentDatetime)
def _current_timestamp(node: exp.Expr) -> exp.Expr:
    # CURRENT_DATETIME('Europe/Berlin') is the wall clock there; bq_now() is deterministic, so it runs once.
    return typed(wall_clock(sql("bq_now()"), zone_argument(node, "this")), TIMESTAMP)


@rule(exp.CurrentTime)
def _current_time(node: exp.Expr) -> exp.Expr:
    now = wall_clock(sql("bq_now()"), zone_argument(node, "this"))
    return sql("rtrim(rtrim(strftime('%H:%M:%f', :x), '0'), '.')", x=now)


@rule(exp.CurrentDate)
def _current_date(node: exp.Expr) -> exp.Expr:
    return sql("date(:x)", DATE, x=wall_clock(sql("bq_now()"), zone_argument(node, "this")))


# --- Comparisons ------------------------------------------------------------------------------------------------


def _is_temporal(node: exp.Expr) -> bool:
    if type_of(node) in {TIMESTAMP, DATE}:
        return True
    return isinstance(node, exp.Literal) and node.is_string and bool(_DATE_LIKE.match(node.name))


@rule(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)
def _compare(node: exp.Expr) -> exp.Expr | None:
    """Compare dates and timestamps as BigQuery does: as instants, not as whatever text happens to be stored.

    What the rules produce is canonical text of one type, so such sides compare as text once the literals are
    folded to the same form (`'2025-10-16'` is midnight). A raw column may hold `T`, `Z` or `+00:00` forms, so
    when one takes part every side goes through julianday(), which reads them all.
    """
    if isinstance(node, exp.Between):
        sides = [node.this, node.args["low"], node.args["high"]]
    else:
        sides = [node.this, node.expression]
    if not any(_is_temporal(side) for side in sides):
        return None
    types = {kind for side in sides if (kind := type_of(side)) is not None}
    literals = [side for side in sides if isinstance(side, exp.Literal) and type_of(side) is None]
    if len(literals) == len(sides):
        return None
    raw = [side for side in sides if type_of(side) is None and not isinstance(side, exp.Literal | exp.Null)]
    if not raw and len(types) == 1:
        kind = types.pop()
        canonical = [canonical_literal(literal, kind) for literal in literals]
        if None not in canonical:
            for literal, text in zip(literals, canonical, strict=True):
                literal.replace(exp.Literal.string(text))
            return node
    for side in sides:
        if not isinstance(side, exp.Null):
            side.replace(julian(side))
    return node


def canonical_literal(literal: exp.Literal, kind: str) -> str | None:
    """The literal in the text form the rules give values of `kind`, or None if it is not such a value."""
    if not literal.is_string:
        return None
    if kind == DATE:
        return literal.name if re.fullmatch(r"\d{4}-\d{2}-\d{2}", literal.name) and _valid_date(literal.name) else None
    moment = parse_timestamp(literal.name)
    return None if moment is None else timestamp_text(moment)


def _valid_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True
