"""Translate BigQuery Standard SQL checks into SQLite SQL that returns BigQuery's answers."""

from __future__ import annotations

import datetime
import functools
import re
import sqlite3
import zoneinfo
from collections import Counter
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from anomaly_monitor.errors import QueryError
from anomaly_monitor.readonly import UnsafeSql, parse_select
from anomaly_monitor.warehouses.clock import zone_info
from anomaly_monitor.warehouses.sqlite_functions import UTC_NAMES, parse_timestamp, timestamp_text

# SQLite stores TIMESTAMP as UTC text; every timestamp we produce uses this form (milliseconds kept only when
# non-zero), so it compares correctly with stored `YYYY-MM-DD HH:MM:SS` text.
TIMESTAMP_TEXT = "rtrim(rtrim(strftime('%Y-%m-%d %H:%M:%f', :x{mods}), '0'), '.')"
_TYPE = "bq_type"  # key in Expression.meta: the BigQuery type of a rewritten expression
_NODES = "bq_nodes"  # key in Expression.meta: the size of an expression _sql built
MAX_NODES = 20_000  # the largest expression a translation may build (checks need a few hundred)
_TIMESTAMP, _DATE = "TIMESTAMP", "DATE"
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
_MS_PER_UNIT = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_WEEKDAYS = ["SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"]
_MS_DIFF = "CAST(round((julianday(:a) - julianday(:b)) * 86400000) AS INTEGER)"


# ---------------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def to_sqlite(sql: str) -> str:
    """Translate one BigQuery SELECT into SQLite SQL; raises QueryError for what cannot be translated."""
    try:
        tree = parse_select(sql)
    except UnsafeSql as err:
        raise QueryError(str(err)) from None
    try:
        tree = _rewrite(tree)
        result = tree
        while isinstance(result, exp.SetOperation):
            result = result.this  # a UNION's column names are its first SELECT's
        if isinstance(result, exp.Select):
            _name_anonymous_columns(result)
        # RAISE turns sqlglot's "not supported in SQLite" warnings into a clear error instead of broken SQL.
        return tree.sql(dialect="sqlite", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as err:
        raise QueryError(f"cannot translate to SQLite: {_first_line(err)}") from err
    except RecursionError:
        raise QueryError("SQL is nested too deeply to translate for SQLite: simplify it") from None


# ---------------------------------------------------------------------------------------------------------------
# The rewrite walk
# ---------------------------------------------------------------------------------------------------------------


def _rewrite(tree: exp.Expression) -> exp.Expression:
    """Apply the rules bottom-up, so each rule sees arguments that are already SQLite and typed in `meta`."""
    for node in reversed(list(tree.walk())):
        rule = _RULES.get(type(node))
        if rule is None:
            continue
        new = rule(node)
        if new is None or new is node:
            continue
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree


def _first_line(err: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    return text.splitlines()[0] if text else type(err).__name__


@functools.cache
def _parsed_template(template: str) -> tuple[exp.Expression, int, Counter[str]]:
    """The template parsed, its own size, and how often each placeholder occurs in it."""
    node = sqlglot.parse_one(f"SELECT {template}", read="sqlite").selects[0]
    uses = Counter(placeholder.name for placeholder in node.find_all(exp.Placeholder))
    return node, sum(1 for _ in node.walk()) - uses.total(), uses


def _sql(template: str, type_: str | None = None, **args: exp.Expression) -> exp.Expression:
    """Build a SQLite expression from a template whose `:name` placeholders take the given expressions.

    A template may use an argument several times (SQLite has no LET), so nested calls multiply the size of the
    translation; past MAX_NODES it is refused rather than built."""
    parsed, size, uses = _parsed_template(template)
    size += sum(count * _size(args[name]) for name, count in uses.items())
    if size > MAX_NODES:
        raise QueryError(
            "the SQLite translation of this query would be too large (nested date, cast or format functions "
            "repeat their argument): compute the inner value once, in a WITH clause"
        )
    # The arguments are copied (they stay where they are), and replace_placeholders puts the same object in each
    # place an argument is used: copying the result then gives each place its own.
    node = exp.replace_placeholders(parsed, **{name: value.copy() for name, value in args.items()})
    if any(count > 1 for count in uses.values()):
        node = node.copy()
    node.meta[_NODES] = size
    if type_:
        node.meta[_TYPE] = type_
    return node


def _size(node: exp.Expression) -> int:
    """Nodes in an expression, counting what _sql built by the size it recorded."""
    return sum(n.meta.get(_NODES, 1) for n in node.walk(prune=lambda n: _NODES in n.meta))


def _typed(node: exp.Expression, type_: str) -> exp.Expression:
    node.meta[_TYPE] = type_
    return node


def _unit(node: exp.Expression) -> tuple[str, str]:
    """(unit, week start) of a date part argument such as DAY or WEEK(MONDAY)."""
    unit = node.args.get("unit") if not isinstance(node, exp.Var | exp.WeekStart) else node
    if isinstance(unit, exp.WeekStart):
        return "WEEK", unit.name.upper()
    name = unit.name.upper() if unit is not None else "DAY"
    if name == "ISOWEEK":
        return "WEEK", "MONDAY"
    return name, "SUNDAY"


def _zone(node: exp.Expression, key: str = "zone") -> exp.Expression | None:
    """The time zone argument, or None when it is absent or UTC (then native SQLite does everything)."""
    zone = node.args.get(key)
    if zone is None or (isinstance(zone, exp.Literal) and zone.name.upper() in UTC_NAMES):
        return None
    if isinstance(zone, exp.Literal) and zone.is_string:
        try:
            zone_info(zone.name)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as err:
            raise QueryError(f"unknown time zone {zone.sql('bigquery')}: {node.sql('bigquery')}") from err
    return zone


def _local(value: exp.Expression, zone: exp.Expression | None) -> exp.Expression:
    """A UTC timestamp as wall-clock text in `zone` (a Python call per row: SQLite knows no time zones)."""
    return value if zone is None else _sql("bq_to_local(:x, :z)", x=value, z=zone)


def _unsupported(node: exp.Expression, what: str) -> QueryError:
    return QueryError(f"{what} is not supported on SQLite: {node.sql('bigquery')}")


# ---------------------------------------------------------------------------------------------------------------
# Date and time: native SQLite date functions over UTC text
# ---------------------------------------------------------------------------------------------------------------


def _week_start(weekday: str) -> str:
    return f"'-6 days', 'weekday {_WEEKDAYS.index(weekday)}'"


def _timestamp_diff(node: exp.Expression) -> exp.Expression:
    """TIMESTAMP_DIFF counts whole units between the instants, truncated toward zero (integer division)."""
    unit, _ = _unit(node)
    a, b = node.this, node.expression
    if unit == "MICROSECOND":
        return _sql(f"{_MS_DIFF} * 1000", a=a, b=b)
    if unit not in _MS_PER_UNIT:
        raise _unsupported(node, f"TIMESTAMP_DIFF by {unit}")
    return _sql(f"{_MS_DIFF} / {_MS_PER_UNIT[unit]}", a=a, b=b)


def _date_diff(node: exp.Expression) -> exp.Expression:
    """DATE_DIFF counts unit boundaries crossed, so both sides are truncated to the unit first."""
    unit, week_start = _unit(node)
    a, b = _date_argument(node.this), _date_argument(node.expression)
    if unit == "DAY":
        return _sql("CAST(julianday(:a, 'start of day') - julianday(:b, 'start of day') AS INTEGER)", a=a, b=b)
    if unit == "WEEK":
        start = _week_start(week_start)
        return _sql(
            f"CAST(julianday(:a, 'start of day', {start}) - julianday(:b, 'start of day', {start}) AS INTEGER) / 7",
            a=a,
            b=b,
        )
    month_index = "(CAST(strftime('%Y', {x}) AS INTEGER) * 12 + CAST(strftime('%m', {x}) AS INTEGER) - 1)"
    if unit == "MONTH":
        return _sql(f"{month_index.format(x=':a')} - {month_index.format(x=':b')}", a=a, b=b)
    if unit == "QUARTER":
        return _sql(f"{month_index.format(x=':a')} / 3 - {month_index.format(x=':b')} / 3", a=a, b=b)
    if unit == "YEAR":
        return _sql("CAST(strftime('%Y', :a) AS INTEGER) - CAST(strftime('%Y', :b) AS INTEGER)", a=a, b=b)
    raise _unsupported(node, f"DATE_DIFF by {unit}")


def _datetime_diff(node: exp.Expression) -> exp.Expression:
    unit, _ = _unit(node)
    # Below a day DATETIME_DIFF counts whole units like TIMESTAMP_DIFF; from DAY up it counts boundaries.
    if unit == "MICROSECOND" or (unit in _MS_PER_UNIT and unit != "DAY"):
        return _timestamp_diff(node)
    return _date_diff(node)


def _interval_modifier(amount: exp.Expression, unit: str, sign: int) -> tuple[str, dict[str, exp.Expression]]:
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


def _add_interval(node: exp.Expression, sign: int, kind: str) -> exp.Expression:
    unit, _ = _unit(node)
    amount = node.expression
    if isinstance(amount, exp.Interval):  # `x + INTERVAL n DAY` arrives as Interval(n, DAY)
        amount, unit = amount.this, _unit(amount)[0]
    if isinstance(amount, exp.Literal) and amount.is_string:
        amount = exp.Literal.number(amount.name)
    if unit in {"MONTH", "QUARTER", "YEAR"}:
        factor = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
        date = _month_shift(":x", f"(:n * {factor * sign}) || ' months'")
        if kind == _DATE:
            return _sql(date, _DATE, x=node.this, n=amount)
        return _sql(f"{date} || strftime(' %H:%M:%S', :x)", _TIMESTAMP, x=node.this, n=amount)
    if unit not in {"MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK"}:
        raise _unsupported(node, f"INTERVAL of {unit}")
    modifier, extra = _interval_modifier(amount, unit, sign)
    if kind == _DATE:
        return _sql(f"date(:x, {modifier})", _DATE, x=_date_argument(node.this), **extra)
    return _sql(TIMESTAMP_TEXT.format(mods=f", {modifier}"), _TIMESTAMP, x=node.this, **extra)


def _date_trunc(node: exp.Expression) -> exp.Expression:
    if node.this.meta.get(_TYPE) == _TIMESTAMP:  # BigQuery's DATE_TRUNC keeps a TIMESTAMP a TIMESTAMP
        return _truncated_timestamp(node, node.this)
    unit, week_start = _unit(node)
    modifiers = _trunc_modifiers(node, unit, week_start)
    if modifiers is None:
        raise _unsupported(node, f"DATE_TRUNC to {unit}")
    return _sql(f"date(:x{modifiers})", _DATE, x=_date_argument(node.this))


def _timestamp_trunc(node: exp.Expression) -> exp.Expression:
    zone = _zone(node)
    truncated = _truncated_timestamp(node, _local(node.this, zone))
    if zone is None:
        return truncated
    # Truncate on the local wall clock, then turn that local midnight (or hour...) back into a UTC instant.
    return _sql("bq_from_local(:x, :z)", _TIMESTAMP, x=truncated, z=zone)


def _truncated_timestamp(node: exp.Expression, value: exp.Expression) -> exp.Expression:
    unit, week_start = _unit(node)
    if unit in {"MICROSECOND", "MILLISECOND"}:
        return _sql(TIMESTAMP_TEXT.format(mods=""), _TIMESTAMP, x=value)
    patterns = {"SECOND": "%Y-%m-%d %H:%M:%S", "MINUTE": "%Y-%m-%d %H:%M:00", "HOUR": "%Y-%m-%d %H:00:00"}
    if unit in patterns:
        return _sql(f"strftime('{patterns[unit]}', :x)", _TIMESTAMP, x=value)
    modifiers = _trunc_modifiers(node, unit, week_start)
    if modifiers is None:
        raise _unsupported(node, f"TIMESTAMP_TRUNC to {unit}")
    return _sql(f"datetime(:x{modifiers})", _TIMESTAMP, x=value)


def _trunc_modifiers(node: exp.Expression, unit: str, week_start: str) -> str | None:
    if unit == "QUARTER":
        return ", 'start of month', -((CAST(strftime('%m', :x) AS INTEGER) - 1) % 3) || ' months'"
    return {
        "DAY": ", 'start of day'",
        "WEEK": f", 'start of day', {_week_start(week_start)}",
        "MONTH": ", 'start of month'",
        "YEAR": ", 'start of year'",
    }.get(unit)


def _extract(node: exp.Extract) -> exp.Expression:
    part = node.name.upper()
    value = node.expression
    if isinstance(value, exp.AtTimeZone):
        value = _local(value.this, _zone(value))
    value = _date_argument(value)
    iso_thursday = "strftime('{code}', :x, 'start of day', '-6 days', 'weekday 1', '+3 days')"
    templates = {
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
        "ISOWEEK": f"(CAST({iso_thursday.format(code='%j')} AS INTEGER) - 1) / 7 + 1",
        "ISOYEAR": f"CAST({iso_thursday.format(code='%Y')} AS INTEGER)",
    }
    if part in templates:
        return _sql(templates[part], x=value)
    if part == "DATE":
        return _sql("date(:x)", _DATE, x=value)
    if part == "DATETIME":
        return _sql(TIMESTAMP_TEXT.format(mods=""), _TIMESTAMP, x=value)
    if part == "TIME":
        return _sql("strftime('%H:%M:%S', :x)", x=value)
    raise _unsupported(node, f"EXTRACT({part})")


# strftime codes SQLite 3.37+ understands, and BigQuery codes (as sqlglot normalises them) spelled with them.
_NATIVE_CODES = set("dHjmMSwWY")
_CODE_EXPRESSIONS = {
    "%f": "substr(strftime('%f', :x), 4) || '000'",
    "%y": "substr(strftime('%Y', :x), 3)",
    "%C": "substr(strftime('%Y', :x), 1, 2)",
    "%-d": "printf('%2d', CAST(strftime('%d', :x) AS INTEGER))",
    "%k": "printf('%2d', CAST(strftime('%H', :x) AS INTEGER))",
    "%I": "printf('%02d', (CAST(strftime('%H', :x) AS INTEGER) + 11) % 12 + 1)",
    "%l": "printf('%2d', (CAST(strftime('%H', :x) AS INTEGER) + 11) % 12 + 1)",
    "%p": "CASE WHEN CAST(strftime('%H', :x) AS INTEGER) < 12 THEN 'AM' ELSE 'PM' END",
    "%u": "(CAST(strftime('%w', :x) AS INTEGER) + 6) % 7 + 1",
    "%U": "printf('%02d', (CAST(strftime('%j', :x) AS INTEGER) + 6 - CAST(strftime('%w', :x) AS INTEGER)) / 7)",
    "%Q": "(CAST(strftime('%m', :x) AS INTEGER) + 2) / 3",
    "%s": "CAST(unixepoch(:x) AS TEXT)",
    "%A": "CASE CAST(strftime('%w', :x) AS INTEGER) {days} END",
    "%a": "CASE CAST(strftime('%w', :x) AS INTEGER) {short_days} END",
    "%B": "CASE CAST(strftime('%m', :x) AS INTEGER) {months} END",
    "%b": "CASE CAST(strftime('%m', :x) AS INTEGER) {short_months} END",
    "%Z": "'UTC'",
    "%z": "'+0000'",
}
_CODE_EXPRESSIONS["%h"] = _CODE_EXPRESSIONS["%b"]
_DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTH_NAMES = [datetime.date(2000, m, 1).strftime("%B") for m in range(1, 13)]
_NAMES = {
    "days": " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(_DAY_NAMES)),
    "short_days": " ".join(f"WHEN {i} THEN '{n[:3]}'" for i, n in enumerate(_DAY_NAMES)),
    "months": " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(_MONTH_NAMES, 1)),
    "short_months": " ".join(f"WHEN {i} THEN '{n[:3]}'" for i, n in enumerate(_MONTH_NAMES, 1)),
}
_FORMAT_CODE = re.compile(r"%(E\d?S|E\*S|-?[A-Za-z%])")


def _format_template(fmt: str) -> str:
    """Compile a FORMAT_TIMESTAMP format into one SQLite expression: strftime for what it knows, SQL for the rest."""
    parts: list[str] = []
    native = ""  # the strftime format being accumulated
    position = 0
    for match in _FORMAT_CODE.finditer(fmt):
        native += fmt[position : match.start()].replace("'", "''")
        position = match.end()
        code = match.group(0)
        if code == "%%":
            native += "%%"
        elif len(code) == 2 and code[1] in _NATIVE_CODES:
            native += code
        elif code in {"%E3S", "%E*S"}:
            native += "%f"
        elif code in _CODE_EXPRESSIONS:
            if native:
                parts.append(f"strftime('{native}', :x)")
                native = ""
            parts.append(f"({_CODE_EXPRESSIONS[code].format(**_NAMES)})")
        else:
            raise QueryError(f"format element {code} is not supported on SQLite")
    native += fmt[position:].replace("'", "''")
    if native or not parts:
        parts.append(f"strftime('{native}', :x)")
    return " || ".join(parts)


def _format_timestamp(node: exp.TimeToStr) -> exp.Expression:
    zone = _zone(node)
    value = node.this
    if isinstance(value, exp.TsOrDsToTimestamp | exp.TsOrDsToDate | exp.TsOrDsToDatetime):
        value = value.this
    fmt = node.args.get("format")
    if zone is not None and (not isinstance(fmt, exp.Literal) or re.search(r"%[Zz]", fmt.name)):
        raise _unsupported(node, "FORMAT_TIMESTAMP with a time zone and %Z/%z or a computed format")
    value = _local(value, zone)
    if isinstance(fmt, exp.Literal):
        return _sql(_format_template(fmt.name), x=value)
    return _sql("bq_format(:f, :x)", f=fmt, x=value)


def _timestamp(node: exp.Expression) -> exp.Expression | None:
    if isinstance(node.parent, exp.TimeToStr):
        return None  # FORMAT_TIMESTAMP reads the value itself
    value = node.this
    zone = _zone(node)
    if zone is not None:  # TIMESTAMP('2025-01-01 00:00:00', 'Europe/Berlin'): local wall clock to UTC
        return _sql("bq_from_local(:x, :z)", _TIMESTAMP, x=value, z=zone)
    if isinstance(value, exp.Literal) and value.is_string:
        moment = parse_timestamp(value.name)
        if moment is None:
            raise QueryError(f"invalid timestamp literal {value.sql('bigquery')}")
        return _typed(exp.Literal.string(timestamp_text(moment)), _TIMESTAMP)
    if value.meta.get(_TYPE) == _TIMESTAMP:
        return value
    return _sql(TIMESTAMP_TEXT.format(mods=""), _TIMESTAMP, x=value)


def _date(node: exp.Expression) -> exp.Expression | None:
    if isinstance(node.parent, exp.TimeToStr):
        return None  # FORMAT_DATE reads the value itself
    value = node.this
    zone = _zone(node)
    if zone is not None:
        return _sql("date(:x)", _DATE, x=_local(value, zone))
    if value.meta.get(_TYPE) == _DATE:
        return value
    if isinstance(value, exp.Literal) and (text := _canonical_literal(value, _DATE)):
        return _typed(exp.Literal.string(text), _DATE)
    return _sql("date(:x)", _DATE, x=value)


def _valid_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def _date_from_parts(node: exp.DateFromParts) -> exp.Expression:
    args = {key: node.args[key] for key in ("year", "month", "day")}
    return _sql("date(printf('%04d-%02d-%02d', :year, :month, :day))", _DATE, **args)


def _unix_to_timestamp(node: exp.UnixToTime) -> exp.Expression:
    scale = node.args.get("scale")
    divisor = 10 ** int(scale.name) if isinstance(scale, exp.Literal) else 1
    amount = "(:x / 1.0)" if divisor == 1 else f"(:x / {divisor}.0)"
    return _sql(TIMESTAMP_TEXT.format(mods=", 'unixepoch'").replace(":x,", f"{amount},", 1), _TIMESTAMP, x=node.this)


def _parse_datetime(node: exp.StrToDate | exp.StrToTime) -> exp.Expression:
    """PARSE_DATE/PARSE_TIMESTAMP: ISO formats natively, anything else through Python's strptime."""
    kind = _DATE if isinstance(node, exp.StrToDate) else _TIMESTAMP
    fmt = node.args.get("format")
    iso = {"%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"}
    if isinstance(fmt, exp.Literal) and fmt.name in iso:
        return _sql("date(:x)" if kind == _DATE else TIMESTAMP_TEXT.format(mods=""), kind, x=node.this)
    function = "bq_parse_date" if kind == _DATE else "bq_parse_timestamp"
    return _sql(f"{function}(:f, :x)", kind, f=fmt, x=node.this)


def _current_timestamp(node: exp.Expression) -> exp.Expression:
    # CURRENT_DATETIME('Europe/Berlin') is the wall clock there; the function is deterministic, so it runs once.
    zone = _zone(node, "this")
    return _typed(_local(_sql("bq_now()"), zone), _TIMESTAMP)


def _current_time(node: exp.Expression) -> exp.Expression:
    wall_clock = _local(_sql("bq_now()"), _zone(node, "this"))
    return _sql("rtrim(rtrim(strftime('%H:%M:%f', :x), '0'), '.')", x=wall_clock)


def _current_date(node: exp.Expression) -> exp.Expression:
    return _sql("date(:x)", _DATE, x=_local(_sql("bq_now()"), _zone(node, "this")))


def _datetime_in_zone(node: exp.Datetime) -> exp.Expression:
    """DATETIME(ts, 'Europe/Berlin'): the wall clock in that zone; DATETIME(date, time) is not supported."""
    zone = node.expression
    if not (isinstance(zone, exp.Literal) and zone.is_string):
        raise _unsupported(node, "DATETIME(date, time)")
    wrapper = exp.Datetime(this=node.this.copy(), zone=zone.copy())
    return _typed(_local(_timestamp(exp.Timestamp(this=node.this.copy())), _zone(wrapper)), _TIMESTAMP)


# ---------------------------------------------------------------------------------------------------------------
# Casts, comparisons, aggregates, UNNEST, QUALIFY, table names
# ---------------------------------------------------------------------------------------------------------------


def _cast(node: exp.Cast) -> exp.Expression | None:
    target = node.to.this
    safe = isinstance(node, exp.TryCast)
    value = node.this
    if target in {exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.DATETIME}:
        return _timestamp(exp.Timestamp(this=value))
    if target == exp.DataType.Type.DATE:
        return _date(exp.Date(this=value))
    if target == exp.DataType.Type.BIGINT:
        # BigQuery rounds floats half away from zero when casting to INT64; SQLite truncates.
        text = "bq_safe_int64(:x)" if safe else "CAST(:x AS INTEGER)"
        return _sql(
            f"CASE typeof(:x) WHEN 'real' THEN CAST(round(:x) AS INTEGER) WHEN 'text' THEN {text} ELSE :x END", x=value
        )
    if target in {exp.DataType.Type.DOUBLE, exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL} and safe:
        return _sql("CASE typeof(:x) WHEN 'text' THEN bq_safe_float64(:x) ELSE CAST(:x AS REAL) END", x=value)
    if target == exp.DataType.Type.BOOLEAN:
        return _sql(
            "CASE WHEN typeof(:x) = 'text' THEN (CASE lower(trim(:x)) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END) "
            "ELSE :x <> 0 END",
            x=value,
        )
    if target in {exp.DataType.Type.ARRAY, exp.DataType.Type.STRUCT, exp.DataType.Type.JSON}:
        raise _unsupported(node, f"CAST to {target.value}")
    return None


def _is_temporal(node: exp.Expression) -> bool:
    if node.meta.get(_TYPE) in {_TIMESTAMP, _DATE}:
        return True
    return isinstance(node, exp.Literal) and node.is_string and bool(_DATE_LIKE.match(node.name))


def _compare(node: exp.Expression) -> exp.Expression | None:
    """Compare dates and timestamps as BigQuery does: as instants, not as whatever text happens to be stored.

    What this module produces is canonical text of one type, so such sides compare as text once the literals are
    folded to the same form (`'2025-10-16'` is midnight). A raw column may hold `T`, `Z` or `+00:00` forms, so
    when one takes part every side goes through julianday(), which reads them all.
    """
    if isinstance(node, exp.Between):
        sides = [node.this, node.args["low"], node.args["high"]]
    else:
        sides = [node.this, node.expression]
    if not any(_is_temporal(side) for side in sides):
        return None
    types = {side.meta[_TYPE] for side in sides if _TYPE in side.meta}
    literals = [side for side in sides if isinstance(side, exp.Literal) and _TYPE not in side.meta]
    if len(literals) == len(sides):
        return None
    raw = [side for side in sides if _TYPE not in side.meta and not isinstance(side, exp.Literal | exp.Null)]
    if not raw and len(types) == 1:
        kind = types.pop()
        canonical = [_canonical_literal(literal, kind) for literal in literals]
        if None not in canonical:
            for literal, text in zip(literals, canonical, strict=True):
                literal.replace(exp.Literal.string(text))
            return node
    for side in sides:
        if not isinstance(side, exp.Null):
            side.replace(_sql("julianday(:x)", x=side))
    return node


def _canonical_literal(literal: exp.Literal, kind: str) -> str | None:
    """The literal in the text form this module gives values of `kind`, or None if it is not such a value."""
    if not literal.is_string:
        return None
    if kind == _DATE:
        return literal.name if re.fullmatch(r"\d{4}-\d{2}-\d{2}", literal.name) and _valid_date(literal.name) else None
    moment = parse_timestamp(literal.name)
    return None if moment is None else timestamp_text(moment)


def _date_argument(node: exp.Expression) -> exp.Expression:
    """x for DATE(x) feeding another date function: SQLite's date functions read timestamps themselves."""
    if isinstance(node, exp.Date) and node.meta.get(_TYPE) == _DATE and not node.expressions:
        return node.this
    return node


def _interval_arithmetic(node: exp.Add | exp.Sub) -> exp.Expression | None:
    """`ts + INTERVAL 1 HOUR`: BigQuery returns a DATETIME/TIMESTAMP, so the result is timestamp text."""
    if not isinstance(node.expression, exp.Interval):
        return None
    return _add_interval(node, 1 if isinstance(node, exp.Add) else -1, _TIMESTAMP)


def _count_if(node: exp.CountIf) -> exp.Expression:
    # SUM(IIF(...)), sqlglot's choice, gives NULL on no rows where BigQuery's COUNTIF gives 0.
    return _sql("COUNT(CASE WHEN :x THEN 1 END)", x=node.this)


def _regexp_function(name: str, *keys: str) -> Callable[[exp.Expression], exp.Expression]:
    """REGEXP_EXTRACT and friends as Python functions over RE2 (patterns were checked when the SQL was parsed)."""

    def rule(node: exp.Expression) -> exp.Expression:
        values = [node.this, node.expression, *(node.args[k] for k in keys if node.args.get(k) is not None)]
        names = ", ".join(f":a{index}" for index in range(len(values)))
        return _sql(f"{name}({names})", **{f"a{index}": value for index, value in enumerate(values)})

    return rule


def _literal_array(node: exp.Unnest) -> list[exp.Expression]:
    arrays = node.expressions
    if len(arrays) != 1 or not isinstance(arrays[0], exp.Array):
        raise _unsupported(node, "UNNEST of anything but a literal array")
    return arrays[0].expressions


def _in_unnest(node: exp.In) -> exp.Expression | None:
    unnest = node.args.get("unnest")
    if unnest is None:
        return None
    return exp.In(this=node.this, expressions=[e.copy() for e in _literal_array(unnest)])


def _unnest_table(node: exp.Unnest) -> exp.Expression | None:
    """`FROM UNNEST([1, 2]) AS n` becomes a UNION ALL subquery with column n (and the offset column if asked)."""
    if isinstance(node.parent, exp.In):
        return None
    alias = node.args.get("alias")
    names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
    column = names[0] if names else (alias.name if alias is not None and alias.name else "f0_")
    offset = node.args.get("offset")
    offset_name = offset.name if isinstance(offset, exp.Identifier) else ("offset" if offset else None)
    rows = []
    for index, element in enumerate(_literal_array(node)):
        projections = [exp.alias_(element.copy(), column, quoted=True)]
        if offset_name:
            projections.append(exp.alias_(exp.Literal.number(index), offset_name, quoted=True))
        rows.append(exp.select(*projections))
    if not rows:
        rows = [exp.select(exp.alias_(exp.null(), column, quoted=True)).where(exp.false())]
    union = functools.reduce(lambda left, right: exp.union(left, right, distinct=False), rows)
    return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(column, quoted=True)))


def _table(node: exp.Table) -> exp.Expression | None:
    # Local mode is one SQLite file: `project.dataset.table` and `dataset.table` both mean `table`.
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        node.set("db", None)
        node.set("catalog", None)
    return None


def _column(node: exp.Column) -> exp.Expression | None:
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        node.set("db", None)
        node.set("catalog", None)
    return None


def _group_concat(node: exp.GroupConcat) -> exp.Expression | None:
    if isinstance(node.this, exp.Order) and sqlite3.sqlite_version_info < (3, 44):
        raise _unsupported(node, f"STRING_AGG with ORDER BY (needs SQLite 3.44, this is {sqlite3.sqlite_version})")
    return None


def _qualify(node: exp.Select) -> exp.Expression | None:
    """QUALIFY becomes a filter on a subquery that computes the condition as a hidden column.

    sqlglot's own rewrite keeps ORDER BY/LIMIT inside the subquery (so LIMIT applies before QUALIFY) and leaks
    its helper column through SELECT *; this one does neither.
    """
    qualify = node.args.get("qualify")
    if qualify is None:
        return None
    condition = qualify.this.copy()
    aliases = {s.alias_or_name: s for s in node.selects if isinstance(s, exp.Alias)}
    for column in list(condition.find_all(exp.Column)):
        if not column.table and column.name in aliases:
            column.replace(exp.Paren(this=aliases[column.name].this.copy()))
    inner = node.copy()
    # BigQuery applies QUALIFY before DISTINCT, ORDER BY and LIMIT, so those move to the outer query.
    for key in ("qualify", "distinct", "order", "limit", "offset"):
        inner.set(key, None)
    _name_anonymous_columns(inner)  # the outer query needs a name to select each column by
    inner.select(exp.alias_(condition, "_bq_qualify"), copy=False)
    outer_order = node.args.get("order")
    if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star) for s in node.selects):
        return _qualify_star(node, inner)
    names = [s.alias_or_name for s in inner.selects[:-1]]
    outer = exp.select(*[exp.column(n, quoted=True) for n in names]).from_(inner.subquery("_bq_q"))
    outer = outer.where(exp.column("_bq_qualify"))
    if outer_order is not None:
        for column in outer_order.find_all(exp.Column):
            column.set("table", None)
        outer.set("order", outer_order)
    for key in ("distinct", "limit", "offset"):
        outer.set(key, node.args.get(key))
    return outer


def _qualify_star(node: exp.Select, inner: exp.Select) -> exp.Expression:
    """SELECT * ... QUALIFY on a single table: keep the rows whose rowid passes, so no helper column shows."""
    source = node.args.get("from_") or node.args.get("from")
    table = source.this if source is not None else None
    if node.args.get("joins") or not isinstance(table, exp.Table) or _names_cte(node, table.name):
        raise _unsupported(node, "SELECT * with QUALIFY over a join, subquery or CTE (list the columns instead)")
    name = table.alias_or_name
    inner.set("expressions", [exp.alias_(exp.column("rowid", table=name), "_bq_rowid"), *inner.selects[-1:]])
    keep = exp.select("_bq_rowid").from_(inner.subquery("_bq_q")).where(exp.column("_bq_qualify"))
    result = node.copy()
    result.set("qualify", None)
    return result.where(exp.column("rowid", table=name).isin(query=keep))


def _names_cte(node: exp.Expression, name: str) -> bool:
    return any(cte.alias_or_name == name for with_ in _ancestors_with(node) for cte in with_.expressions)


def _ancestors_with(node: exp.Expression) -> list[exp.With]:
    found = []
    while node is not None:
        if node.args.get("with_") is not None or node.args.get("with") is not None:
            found.append(node.args.get("with_") or node.args.get("with"))
        node = node.parent
    return found


def _star(node: exp.Star) -> exp.Expression | None:
    if any(node.args.get(key) for key in ("except_", "replace", "rename")):
        raise _unsupported(node, "SELECT * EXCEPT/REPLACE (list the columns instead)")
    return None


def _name_anonymous_columns(select: exp.Select) -> None:
    """Name unnamed result columns f0_, f1_, ... as BigQuery does (SQLite would name them by their text)."""
    counter = 0
    for projection in select.selects:
        if isinstance(projection, exp.Alias | exp.Column | exp.Star):
            continue
        projection.replace(exp.alias_(projection.copy(), f"f{counter}_"))
        counter += 1


def _array(node: exp.Array) -> exp.Expression | None:
    if not isinstance(node.parent, exp.Unnest):  # literal arrays are fine as UNNEST's argument
        raise _unsupported(node, "ARRAY values")
    return None


def _group(node: exp.Group) -> exp.Expression | None:
    if node.args.get("all"):
        raise _unsupported(node, "GROUP BY ALL (list the grouping columns)")
    return None


def _refuse(what: str) -> Callable[[exp.Expression], exp.Expression]:
    def rule(node: exp.Expression) -> exp.Expression:
        raise _unsupported(node, what)

    return rule


_RULES: dict[type, Callable[[exp.Expression], exp.Expression | None]] = {
    exp.Table: _table,
    exp.Column: _column,
    exp.TimestampDiff: _timestamp_diff,
    exp.DatetimeDiff: _datetime_diff,
    exp.DateDiff: _date_diff,
    exp.TimestampAdd: lambda n: _add_interval(n, 1, _TIMESTAMP),
    exp.TimestampSub: lambda n: _add_interval(n, -1, _TIMESTAMP),
    exp.DatetimeAdd: lambda n: _add_interval(n, 1, _TIMESTAMP),
    exp.DatetimeSub: lambda n: _add_interval(n, -1, _TIMESTAMP),
    exp.DateAdd: lambda n: _add_interval(n, 1, _DATE),
    exp.DateSub: lambda n: _add_interval(n, -1, _DATE),
    exp.DateTrunc: _date_trunc,
    exp.TimestampTrunc: _timestamp_trunc,
    exp.DatetimeTrunc: _timestamp_trunc,
    exp.Extract: _extract,
    exp.TimeToStr: _format_timestamp,
    exp.Timestamp: _timestamp,
    exp.TsOrDsToDatetime: _timestamp,
    exp.Datetime: _datetime_in_zone,
    exp.TsOrDsToTimestamp: _timestamp,
    exp.Date: _date,
    exp.TsOrDsToDate: _date,
    exp.DateFromParts: _date_from_parts,
    exp.UnixToTime: _unix_to_timestamp,
    exp.UnixSeconds: lambda n: _sql("unixepoch(:x)", x=n.this),
    exp.UnixMillis: lambda n: _sql("CAST(round((julianday(:x) - 2440587.5) * 86400000) AS INTEGER)", x=n.this),
    exp.UnixDate: lambda n: _sql("CAST(julianday(:x, 'start of day') - 2440587.5 AS INTEGER)", x=n.this),
    exp.DateFromUnixDate: lambda n: _sql("date(2440587.5 + :x)", _DATE, x=n.this),
    exp.StrToDate: _parse_datetime,
    exp.StrToTime: _parse_datetime,
    exp.CurrentTimestamp: _current_timestamp,
    exp.CurrentDatetime: _current_timestamp,
    exp.CurrentDate: _current_date,
    exp.CurrentTime: _current_time,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.EQ: _compare,
    exp.NEQ: _compare,
    exp.GT: _compare,
    exp.GTE: _compare,
    exp.LT: _compare,
    exp.LTE: _compare,
    exp.Between: _compare,
    exp.Add: _interval_arithmetic,
    exp.Sub: _interval_arithmetic,
    exp.CountIf: _count_if,
    exp.Stddev: lambda n: _sql("bq_stddev_samp(:x)", x=n.this),
    exp.StddevSamp: lambda n: _sql("bq_stddev_samp(:x)", x=n.this),
    exp.StddevPop: lambda n: _sql("bq_stddev_pop(:x)", x=n.this),
    exp.Variance: lambda n: _sql("bq_var_samp(:x)", x=n.this),
    exp.VariancePop: lambda n: _sql("bq_var_pop(:x)", x=n.this),
    exp.ApproxDistinct: lambda n: _sql("COUNT(DISTINCT :x)", x=n.this),
    exp.Repeat: lambda n: _sql("bq_repeat(:x, :n)", x=n.this, n=n.args["times"]),
    exp.StartsWith: lambda n: _sql("substr(:x, 1, length(:p)) = :p", x=n.this, p=n.expression),
    exp.EndsWith: lambda n: _sql("(length(:p) = 0 OR substr(:x, -length(:p)) = :p)", x=n.this, p=n.expression),
    exp.Contains: lambda n: _sql("instr(:x, :p) > 0", x=n.this, p=n.expression),
    exp.Star: _star,
    exp.RegexpExtract: _regexp_function("bq_regexp_extract", "position", "occurrence"),
    exp.RegexpExtractAll: _regexp_function("bq_regexp_extract_all"),
    exp.RegexpInstr: _regexp_function("bq_regexp_instr", "position", "occurrence", "option"),
    exp.RegexpReplace: _regexp_function("bq_regexp_replace", "replacement"),
    exp.In: _in_unnest,
    exp.Unnest: _unnest_table,
    exp.GroupConcat: _group_concat,
    exp.Select: _qualify,
    exp.Explode: _refuse("UNNEST/EXPLODE"),
    exp.Array: _array,
    exp.ArrayAgg: _refuse("ARRAY_AGG"),
    exp.Struct: _refuse("STRUCT values"),
    exp.Bracket: _refuse("Array subscripts"),
    exp.Group: _group,
}
