"""Formats and conversions: FORMAT_TIMESTAMP and PARSE_* with SQLite's strftime, and BigQuery's casts."""

from __future__ import annotations

import datetime
import re

from sqlglot import exp

from anomaly_monitor.errors import QueryError
from anomaly_monitor.warehouses.sqlite_dialect.dates import date_value, timestamp_text_of, timestamp_value
from anomaly_monitor.warehouses.sqlite_dialect.rules import (
    DATE,
    TIMESTAMP,
    rule,
    sql,
    unsupported,
    wall_clock,
    zone_argument,
)

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


@rule(exp.TimeToStr)
def _format_timestamp(node: exp.TimeToStr) -> exp.Expr:
    zone = zone_argument(node)
    value = node.this
    if isinstance(value, exp.TsOrDsToTimestamp | exp.TsOrDsToDate | exp.TsOrDsToDatetime):
        value = value.this
    fmt = node.args.get("format")
    if fmt is None:
        raise unsupported(node, "FORMAT_TIMESTAMP without a format")
    if zone is not None and (not isinstance(fmt, exp.Literal) or re.search(r"%[Zz]", fmt.name)):
        raise unsupported(node, "FORMAT_TIMESTAMP with a time zone and %Z/%z or a computed format")
    value = wall_clock(value, zone)
    if isinstance(fmt, exp.Literal):
        return sql(_format_template(fmt.name), x=value)
    return sql("bq_format(:f, :x)", f=fmt, x=value)


@rule(exp.StrToDate, exp.StrToTime)
def _parse_datetime(node: exp.StrToDate | exp.StrToTime) -> exp.Expr:
    """PARSE_DATE/PARSE_TIMESTAMP: ISO formats natively, anything else through Python's strptime."""
    kind = DATE if isinstance(node, exp.StrToDate) else TIMESTAMP
    fmt = node.args.get("format") or exp.Literal.string("%Y-%m-%d %H:%M:%S")
    iso = {"%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"}
    if isinstance(fmt, exp.Literal) and fmt.name in iso:
        return sql("date(:x)", DATE, x=node.this) if kind == DATE else timestamp_text_of(node.this)
    function = "bq_parse_date" if kind == DATE else "bq_parse_timestamp"
    return sql(f"{function}(:f, :x)", kind, f=fmt, x=node.this)


_Type = exp.DataType.Type


@rule(exp.Cast, exp.TryCast)
def _cast(node: exp.Cast) -> exp.Expr | None:
    target = node.to.this
    safe = isinstance(node, exp.TryCast)
    value = node.this
    if target in {_Type.TIMESTAMP, _Type.TIMESTAMPTZ, _Type.DATETIME}:
        return timestamp_value(value)
    if target == _Type.DATE:
        return date_value(value)
    if target == _Type.BIGINT:
        # BigQuery rounds floats half away from zero when casting to INT64; SQLite truncates.
        text = "bq_safe_int64(:x)" if safe else "CAST(:x AS INTEGER)"
        return sql(
            f"CASE typeof(:x) WHEN 'real' THEN CAST(round(:x) AS INTEGER) WHEN 'text' THEN {text} ELSE :x END", x=value
        )
    if target in {_Type.DOUBLE, _Type.DECIMAL, _Type.BIGDECIMAL} and safe:
        return sql("CASE typeof(:x) WHEN 'text' THEN bq_safe_float64(:x) ELSE CAST(:x AS REAL) END", x=value)
    if target == _Type.BOOLEAN:
        return sql(
            "CASE WHEN typeof(:x) = 'text' THEN (CASE lower(trim(:x)) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END) "
            "ELSE :x <> 0 END",
            x=value,
        )
    if target in {_Type.ARRAY, _Type.STRUCT, _Type.JSON}:
        raise unsupported(node, f"CAST to {target.value}")
    return None
